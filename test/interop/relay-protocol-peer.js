// The dht-relay 0.4.3 Protocol (its Protomux channel) over a
// @hyperswarm/secret-stream initiator on TCP.
// Usage: relay-protocol-peer.js HOST:PORT
// Sends every vector of relay-vectors.js once as single frames and once as a
// corked batch, opens a second channel on an unknown protocol, then prints
// every relay message it receives as a JSON line {type, hex} until the
// stream closes.
const net = require('net')
const SecretStream = require('@hyperswarm/secret-stream')
const Protomux = require('protomux')
const b4a = require('b4a')
const { relayRequire } = require('./lib/json')
const { Protocol } = relayRequire('./lib/protocol.js')
const m = relayRequire('./lib/messages.js')
const c = relayRequire('compact-encoding')
const { vectors, names } = require('./relay-vectors')

const [host, port] = process.argv[2].split(':')
const stream = new SecretStream(true, net.connect(Number(port), host))
const protocol = new Protocol(stream)
const mux = Protomux.from(stream)

for (const name of names) {
  protocol.on(name, (value) => {
    const hex = b4a.toString(c.encode(m[name], value), 'hex')
    process.stdout.write(JSON.stringify({ type: names.indexOf(name), hex }) + '\n')
  })
}
// ping and pong are consumed by the Protocol itself; report them too.
protocol.ping.onmessage = () => process.stdout.write(JSON.stringify({ type: 1, hex: '' }) + '\n')
protocol.pong.onmessage = () => process.stdout.write(JSON.stringify({ type: 2, hex: '' }) + '\n')

stream.on('error', (err) => { console.error(err); process.exit(1) })
stream.on('close', () => process.exit(0))

stream.once('open', () => {
  const vs = vectors()
  const send = (v) => protocol[v.name].send(c.decode(m[v.name], b4a.from(v.hex, 'hex')))
  for (const v of vs) send(v)
  mux.cork()
  for (const v of vs) send(v)
  mux.uncork()
  const other = mux.createChannel({ protocol: 'unknown-to-go', onclose: () => process.stdout.write(JSON.stringify({ rejected: true }) + '\n') })
  other.open()
})
