// A hyperswarm peer on a topic. Usage: hyperswarm-peer.js HOST:PORT topicHex
// Prints {"publicKey": hex} once joined; for every connection writes
// "hello from js" and prints {"remotePublicKey": hex, "data": text} for each
// message it receives.
const Hyperswarm = require('hyperswarm')
const b4a = require('b4a')

async function main () {
  const [host, port] = process.argv[2].split(':')
  const swarm = new Hyperswarm({ bootstrap: [{ host, port: Number(port) }] })
  swarm.on('connection', (conn, info) => {
    conn.on('error', () => {})
    const remotePublicKey = b4a.toString(conn.remotePublicKey, 'hex')
    conn.write('hello from js')
    conn.on('data', (d) => process.stdout.write(JSON.stringify({ remotePublicKey, data: d.toString() }) + '\n'))
  })
  const discovery = swarm.join(b4a.from(process.argv[3], 'hex'), { server: true, client: true })
  await discovery.flushed()
  process.stdout.write(JSON.stringify({ publicKey: b4a.toString(swarm.keyPair.publicKey, 'hex') }) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
