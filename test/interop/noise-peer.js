// One side of a Noise handshake run by noise-handshake with noise-curve-ed.
// Usage: noise-peer.js IK|XX initiator|responder seedHex prologueHex [remotePublicKeyHex]
// Reads the other side's messages as hex lines on stdin; writes
// "send <hex>" for each message it sends, "recv <payloadHex>" for each it
// receives, and finally "done <json>" with the split keys and hash.
const Noise = require('noise-handshake')
const curve = require('noise-curve-ed')
const b4a = require('b4a')
const readline = require('readline')

const [pattern, role, seedHex, prologueHex, remoteHex] = process.argv.slice(2)
const initiator = role === 'initiator'
const keyPair = curve.generateKeyPair(b4a.from(seedHex, 'hex'))
const noise = new Noise(pattern, initiator, keyPair, { curve })
noise.initialise(b4a.from(prologueHex, 'hex'), remoteHex ? b4a.from(remoteHex, 'hex') : undefined)

let step = 0
const out = (s) => process.stdout.write(s + '\n')
function sendIfTurn () {
  while (!noise.complete && (step % 2 === 0) === initiator) {
    out('send ' + b4a.toString(noise.send(b4a.from('js payload ' + step)), 'hex'))
    step++
  }
  if (noise.complete) finish()
}
function finish () {
  out('done ' + JSON.stringify({
    tx: b4a.toString(noise.tx, 'hex'),
    rx: b4a.toString(noise.rx, 'hex'),
    hash: b4a.toString(noise.hash, 'hex'),
    remoteStatic: b4a.toString(noise.rs, 'hex'),
    publicKey: b4a.toString(keyPair.publicKey, 'hex')
  }))
  process.exit(0)
}

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', (line) => {
  out('recv ' + b4a.toString(noise.recv(b4a.from(line, 'hex')), 'hex'))
  step++
  sendIfTurn()
})
sendIfTurn()
