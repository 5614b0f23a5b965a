// hyperdht 6.x wire messages (lib/messages.js) through the package's own
// codecs. "encode": prints [{codec, value, hex}] for a fixed set of values
// covering every flag; "decode": reads [{codec, hex}] on stdin and prints
// [{codec, value, hex}] with the JS re-encoding.
const path = require('path')
const c = require('compact-encoding')
const b4a = require('b4a')
const m = require(path.join(path.dirname(require.resolve('hyperdht')), 'lib', 'messages.js'))
const { toJSON, readStdin } = require('./lib/json')

let seed = 3
const buf = (n) => b4a.from(Array.from({ length: n }, (_, i) => (seed++ * 13 + i) & 0xff))
const a4 = (i) => ({ host: `10.${i}.0.${i + 1}`, port: 1000 + i })
const a6 = (i) => ({ host: `2001:db8::${i + 1}`, port: 2000 + i })
const peer = (n) => ({ publicKey: buf(32), relayAddresses: Array.from({ length: n }, (_, i) => a4(i)) })

function values () {
  return [
    ['handshake', { mode: 0, noise: buf(48), peerAddress: null, relayAddress: null }],
    ['handshake', { mode: 2, noise: buf(300), peerAddress: a4(1), relayAddress: null }],
    ['handshake', { mode: 3, noise: buf(10), peerAddress: a4(2), relayAddress: a4(3) }],
    ['handshake', { mode: 4, noise: b4a.alloc(0), peerAddress: null, relayAddress: a4(4) }],
    ['noisePayload', { error: 0, firewall: 0 }],
    ['noisePayload', {
      error: 3,
      firewall: 2,
      holepunch: { id: 5, relays: [{ relayAddress: a4(1), peerAddress: a4(2) }, { relayAddress: a4(3), peerAddress: a4(4) }] },
      addresses4: [a4(5), a4(6)],
      addresses6: [a6(1)],
      udx: { reusableSocket: true, id: 0xfffffff0, seq: 300 },
      secretStream: {},
      relayThrough: { publicKey: buf(32), token: buf(32) },
      relayAddresses: [a4(7)]
    }],
    ['noisePayload', { error: 0, firewall: 1, addresses4: [a4(1)], udx: { reusableSocket: false, id: 7, seq: 0 }, secretStream: {}, relayAddresses: [] }],
    ['holepunch', { mode: 1, id: 0, payload: buf(60), peerAddress: null }],
    ['holepunch', { mode: 4, id: 70000, payload: buf(5), peerAddress: a4(9) }],
    ['holepunchPayload', { error: 0, firewall: 2, round: 0, connected: false, punching: false, addresses: null, remoteAddress: null, token: null, remoteToken: null }],
    ['holepunchPayload', { error: 3, firewall: 3, round: 9, connected: true, punching: true, addresses: [a4(1), a4(2)], remoteAddress: a4(3), token: buf(32), remoteToken: buf(32) }],
    ['holepunchPayload', { error: 0, firewall: 1, round: 1, connected: false, punching: true, addresses: [], remoteAddress: null, token: buf(32), remoteToken: null }],
    ['peer', peer(0)],
    ['peer', peer(3)],
    ['lookupRawReply', { peers: [], bump: 0 }],
    ['lookupRawReply', { peers: [peer(1), peer(0)].map((p) => c.encode(m.peer, p)), bump: 1732000000000 }],
    ['announce', { peer: null, refresh: null, signature: null, bump: 0 }],
    ['announce', { peer: peer(2), refresh: null, signature: buf(64), bump: 0 }],
    ['announce', { peer: peer(1), refresh: buf(32), signature: buf(64), bump: 1732000000000 }],
    ['mutableSignable', { seq: 0, value: buf(3) }],
    ['mutableSignable', { seq: 2 ** 40, value: buf(1000) }],
    ['mutablePutRequest', { publicKey: buf(32), seq: 7, value: buf(20), signature: buf(64) }],
    ['mutableGetResponse', { seq: 253, value: buf(1), signature: buf(64) }],
    ['pluginRequest', { plugin: 'blind-relay', version: 1, command: 0, value: null }],
    ['pluginRequest', { plugin: 'ümlaut', version: 300, command: 2, value: buf(40) }]
  ]
}

async function main () {
  let out
  if (process.argv[2] === 'encode') {
    out = values().map(([codec, value]) => {
      const enc = c.encode(m[codec], value)
      return { codec, value: toJSON(c.decode(m[codec], enc)), hex: b4a.toString(enc, 'hex') }
    })
  } else if (process.argv[2] === 'decode') {
    out = JSON.parse(await readStdin()).map(({ codec, hex }) => {
      const value = c.decode(m[codec], b4a.from(hex, 'hex'))
      let re = value
      if (codec === 'lookupRawReply') re = { ...value, peers: value.peers.map((p) => c.encode(m.peer, p)) }
      return { codec, value: toJSON(value), hex: b4a.toString(c.encode(m[codec], re), 'hex') }
    })
  } else throw new Error('usage: hyperdht-vectors.js encode|decode')
  process.stdout.write(JSON.stringify(out))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
