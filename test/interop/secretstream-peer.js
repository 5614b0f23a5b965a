// A @hyperswarm/secret-stream peer over TCP.
// Usage: secretstream-peer.js initiator|responder HOST:PORT bytes seedHex
// Connects to HOST:PORT, runs the XX handshake in the given role, sends
// `bytes` random bytes and reads until the other side ends, then prints one
// JSON line with the SHA-256 of what it sent and received, how many messages
// (data events) it received, and the handshake outcome.
const net = require('net')
const crypto = require('crypto')
const SecretStream = require('@hyperswarm/secret-stream')
const b4a = require('b4a')

const [role, addr, bytesArg, seedHex] = process.argv.slice(2)
const [host, port] = addr.split(':')
const total = Number(bytesArg)
const keyPair = SecretStream.keyPair(b4a.from(seedHex, 'hex'))

const socket = net.connect(Number(port), host)
const s = new SecretStream(role === 'initiator', socket, { keyPair })
const sent = crypto.createHash('sha256')
const received = crypto.createHash('sha256')
let receivedBytes = 0
let messages = 0

s.on('data', (d) => { received.update(d); receivedBytes += d.byteLength; messages++ })
s.on('error', (err) => { console.error(err); process.exit(1) })
// The stream closes once both sides ended; this side ends when its own
// writes are done, not when the other side's end arrives.
s.on('close', () => {
  process.stdout.write(JSON.stringify({
    sent: sent.digest('hex'),
    received: received.digest('hex'),
    receivedBytes,
    messages,
    hash: b4a.toString(s.handshakeHash, 'hex'),
    publicKey: b4a.toString(s.publicKey, 'hex'),
    remotePublicKey: b4a.toString(s.remotePublicKey, 'hex')
  }) + '\n')
})

s.once('connect', async () => {
  let left = total
  while (left > 0) {
    const n = Math.min(left, 65536 + (left % 977))
    const chunk = crypto.randomBytes(n)
    sent.update(chunk)
    left -= n
    if (!s.write(chunk)) await new Promise((resolve) => s.once('drain', resolve))
  }
  s.end()
})
