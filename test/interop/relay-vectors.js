// Encodes every dht-relay 0.4.3 message in every flag variant with the
// package's own codecs ("encode"), or decodes messages given on stdin as
// [{type, hex}] and re-encodes them ("decode"). Output is JSON on stdout.
const { toJSON, readStdin, relayRequire } = require('./lib/json')
const c = relayRequire('compact-encoding')
const b4a = require('b4a')
const m = relayRequire('./lib/messages.js')
const codecs = relayRequire('./lib/codecs.js')

const names = [
  'handshake', 'ping', 'pong', 'connect', 'connection', 'connected', 'incoming', 'deny', 'accept',
  'destroy', 'listen', 'listening', 'close', 'closed', 'open', 'end', 'data', 'result', 'finished',
  'lookup', 'announce', 'unannounce', 'signAnnounce', 'signUnannounce', 'signature', 'noiseSend',
  'noiseReceive', 'noiseReply'
]

let seed = 1
function buf (n) {
  const b = b4a.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (seed++ * 31 + i) & 0xff
  return b
}
let idSeed = 7
function id () {
  idSeed = (idSeed * 2654435761 + 1) >>> 0
  return idSeed
}

function announcers (peers) {
  return c.encode(codecs.announcers, {
    token: buf(32),
    from: { id: buf(32), host: '10.1.2.3', port: 49737 },
    to: { id: null, host: '127.0.0.1', port: 1 },
    peers: peers.map((n) => ({
      publicKey: buf(32),
      relayAddresses: Array.from({ length: n }, (_, i) => ({ host: '192.168.0.' + i, port: 1000 + i }))
    }))
  })
}

function vectors () {
  const v = []
  const add = (name, value) => v.push({ type: names.indexOf(name), name, value })
  for (const custodial of [false, true]) {
    const sk = custodial ? buf(64) : null
    add('handshake', { custodial, publicKey: buf(32), secretKey: sk })
    add('connect', { custodial, alias: id(), publicKey: buf(32), secretKey: sk, remotePublicKey: buf(32) })
    add('connection', { custodial, alias: id(), serverAlias: id(), remotePublicKey: buf(32), handshakeHash: custodial ? buf(64) : null, handshakeId: custodial ? null : id() })
    add('listen', { custodial, alias: id(), publicKey: buf(32), secretKey: sk })
    add('open', { custodial, alias: id(), remoteAlias: id(), handshakeHash: custodial ? buf(64) : null, handshakeId: custodial ? null : id() })
    add('announce', { custodial, id: id(), topic: buf(32), publicKey: buf(32), secretKey: sk })
    add('unannounce', { custodial, id: id(), topic: buf(32), publicKey: buf(32), secretKey: sk })
  }
  add('ping', {})
  add('pong', {})
  add('connected', { alias: id(), remoteAlias: id() })
  add('connected', { alias: 0, remoteAlias: 0xffffffff })
  add('incoming', { id: id(), serverAlias: id(), remotePublicKey: buf(32), payload: b4a.alloc(0) })
  add('incoming', { id: id(), serverAlias: id(), remotePublicKey: buf(32), payload: buf(300) })
  add('deny', { id: id() })
  add('accept', { id: id() })
  for (const paired of [false, true]) {
    for (const error of [null, 'PEER_NOT_FOUND: Peer not found', 'é∂ unicode']) {
      add('destroy', { paired, alias: paired ? id() : null, remoteAlias: paired ? null : id(), error })
    }
  }
  add('listening', { alias: id(), remoteAlias: id(), host: '1.2.3.4', port: 49737 })
  add('listening', { alias: id(), remoteAlias: id(), host: '255.255.255.255', port: 65535 })
  add('close', { alias: id() })
  add('closed', { alias: id() })
  add('end', { alias: id() })
  add('data', { alias: id(), data: [] })
  add('data', { alias: id(), data: [buf(5)] })
  add('data', { alias: id(), data: [buf(1), b4a.alloc(0), buf(70000), buf(252), buf(253)] })
  add('result', { id: id(), data: b4a.alloc(0) })
  add('result', { id: id(), data: announcers([0, 2]) })
  add('finished', { id: id() })
  add('lookup', { id: id(), topic: buf(32) })
  for (const name of ['signAnnounce', 'signUnannounce']) {
    add(name, { id: id(), signee: id(), token: buf(32), peerId: null, relayAddresses: [] })
    add(name, { id: id(), signee: id(), token: buf(32), peerId: buf(32), relayAddresses: [{ host: '8.8.4.4', port: 53 }, { host: '127.0.0.1', port: 49737 }] })
  }
  add('signature', { id: id(), signature: buf(64) })
  add('signature', { id: id(), signature: b4a.alloc(0) })
  for (const isInitiator of [false, true]) {
    for (const payload of [b4a.alloc(0), buf(48)]) {
      add('noiseSend', { isInitiator, id: id(), remoteStreamAlias: isInitiator ? id() : null, payload })
      add('noiseReceive', { isInitiator, id: id(), serverAlias: isInitiator ? null : id(), payload })
    }
    for (const complete of [false, true]) {
      add('noiseReply', {
        isInitiator,
        complete,
        id: id(),
        payload: buf(80),
        remotePublicKey: isInitiator || complete ? null : buf(32),
        remoteId: complete ? buf(32) : null,
        holepunchSecret: complete ? buf(32) : null
      })
    }
  }
  // The value reported is what the JS codec decodes from its own encoding,
  // so absent fields read as null the same way in both directions.
  return v.map((x) => {
    const enc = c.encode(m[x.name], x.value)
    return { type: x.type, name: x.name, value: toJSON(c.decode(m[x.name], enc)), hex: b4a.toString(enc, 'hex') }
  })
}

async function decode () {
  const input = JSON.parse(await readStdin())
  return input.map(({ type, hex }) => {
    const name = names[type]
    const value = c.decode(m[name], b4a.from(hex, 'hex'))
    return { type, name, value: toJSON(value), hex: b4a.toString(c.encode(m[name], value), 'hex') }
  })
}

function announcerVectors () {
  return [[], [0], [3, 0, 1]].map((p) => {
    const hex = b4a.toString(announcers(p), 'hex')
    return { hex, value: toJSON(c.decode(codecs.announcers, b4a.from(hex, 'hex'))) }
  })
}

async function main () {
  const mode = process.argv[2]
  let out
  if (mode === 'encode') out = vectors()
  else if (mode === 'decode') out = await decode()
  else if (mode === 'announcers') out = announcerVectors()
  else throw new Error('usage: relay-vectors.js encode|decode|announcers')
  process.stdout.write(JSON.stringify(out))
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

module.exports = { vectors, names }
