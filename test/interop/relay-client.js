// The unchanged @hyperswarm/dht-relay client, over WebSocket or TCP.
// Usage: relay-client.js ws|tcp URL|HOST:PORT seedHex
// Creates the client's DHT on the transport (it sends its handshake at
// once, custodial), prints {"open": true} when the channel is up and
// {"closed": true} when the stream closes. Stays up until killed.
const DHT = require('@hyperswarm/dht-relay')
const Stream = require('@hyperswarm/dht-relay/ws')
const SecretStream = require('@hyperswarm/dht-relay/tcp')
const WebSocket = require('ws')
const net = require('net')
const b4a = require('b4a')

const [kind, where, seedHex] = process.argv.slice(2)
let stream
if (kind === 'ws') {
  stream = new Stream(true, new WebSocket(where))
} else {
  const [host, port] = where.split(':')
  stream = new SecretStream(true, net.connect(Number(port), host))
}
const keyPair = require('hyperdht').keyPair(b4a.from(seedHex, 'hex'))
const dht = new DHT(stream, { keyPair })
dht.ready().then(() => process.stdout.write(JSON.stringify({ open: true }) + '\n'))
dht._protocol._stream.on('close', () => {
  process.stdout.write(JSON.stringify({ closed: true }) + '\n')
  process.exit(0)
})
dht._protocol._stream.on('error', () => {})
