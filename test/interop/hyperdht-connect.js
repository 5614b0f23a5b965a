// A JS hyperdht server and client that only know the given bootstrap node.
// Usage: hyperdht-connect.js HOST:PORT bytes
// The server listens on a fresh key pair and echoes; the client connects by
// public key, sends `bytes` random bytes and checks the echo. Prints
// {"ok": true, "bytes": n} or {"error": "..."}.
const DHT = require('hyperdht')
const crypto = require('crypto')

async function main () {
  const [host, port] = process.argv[2].split(':')
  const total = Number(process.argv[3] || 1024)
  const bootstrap = [{ host, port: Number(port) }]
  const a = new DHT({ bootstrap, host: '127.0.0.1' })
  const b = new DHT({ bootstrap, host: '127.0.0.1' })
  await a.fullyBootstrapped()
  await b.fullyBootstrapped()
  const server = a.createServer((socket) => {
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  const kp = DHT.keyPair()
  await server.listen(kp)
  const socket = b.connect(kp.publicKey)
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
    socket.write(data)
  })
  const ok = Buffer.concat(chunks).equals(data)
  process.stdout.write(JSON.stringify(ok ? { ok: true, bytes: got } : { error: 'echo differs' }) + '\n')
  socket.on('error', () => {})
  socket.destroy()
  await server.close()
  await a.destroy()
  await b.destroy()
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: err.message }) + '\n')
  process.exit(0)
})
