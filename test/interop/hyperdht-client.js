// A JS hyperdht client connecting to a server by public key.
// Usage: hyperdht-client.js HOST:PORT publicKeyHex bytes
// Joins through the bootstrap node, connects, sends `bytes` random bytes,
// reads the echo and prints {"ok": true, "bytes": n, "remotePublicKey": hex}
// or {"error": "CODE: message"}. Progress goes to stderr, which a failing
// test shows.
const DHT = require('hyperdht')
const crypto = require('crypto')
const b4a = require('b4a')

async function main () {
  const [host, port] = process.argv[2].split(':')
  const total = Number(process.argv[4] || 1024)
  const node = new DHT({ bootstrap: [{ host, port: Number(port) }], host: '127.0.0.1' })
  await node.fullyBootstrapped()
  console.error('bootstrapped; connecting')
  const socket = node.connect(b4a.from(process.argv[3], 'hex'))
  const data = crypto.randomBytes(total)
  const chunks = []
  let got = 0
  await new Promise((resolve, reject) => {
    socket.on('error', reject)
    socket.on('data', (d) => {
      chunks.push(d)
      got += d.byteLength
      if (got >= total) resolve()
    })
    socket.once('open', () => {
      console.error('connection open')
      socket.write(data)
    })
  })
  const ok = Buffer.concat(chunks).equals(data)
  process.stdout.write(JSON.stringify(ok ? { ok: true, bytes: got, remotePublicKey: b4a.toString(socket.remotePublicKey, 'hex') } : { error: 'echo differs' }) + '\n')
  socket.on('error', () => {})
  socket.destroy()
  await node.destroy()
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: err.message }) + '\n')
  process.exit(0)
})
