// JS-to-JS hyperdht connection setup and echo throughput.
// Usage: hyperdht-bench.js HOST:PORT bytes
// A server node and a client node join through the bootstrap node; the
// client connects by public key, writes `bytes` and reads the echo. Prints
// {"connectMs": t, "mbps": MB/s of the echo}.
const DHT = require('hyperdht')

async function main () {
  const [host, port] = process.argv[2].split(':')
  const total = Number(process.argv[3])
  const bootstrap = [{ host, port: Number(port) }]
  const a = new DHT({ bootstrap, host: '127.0.0.1' })
  const b = new DHT({ bootstrap, host: '127.0.0.1' })
  await a.fullyBootstrapped()
  await b.fullyBootstrapped()
  const server = a.createServer((s) => {
    s.on('error', () => {})
    s.pipe(s)
  })
  const kp = DHT.keyPair()
  await server.listen(kp)
  const t0 = process.hrtime.bigint()
  const socket = b.connect(kp.publicKey)
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('open', resolve))
  const connectMs = Number(process.hrtime.bigint() - t0) / 1e6
  const chunk = Buffer.alloc(65536, 1)
  const t1 = process.hrtime.bigint()
  let got = 0
  const done = new Promise((resolve) => {
    socket.on('data', (d) => {
      got += d.byteLength
      if (got >= total) resolve()
    })
  })
  for (let sent = 0; sent < total; sent += chunk.byteLength) {
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve))
  }
  await done
  const seconds = Number(process.hrtime.bigint() - t1) / 1e9
  process.stdout.write(JSON.stringify({ connectMs, mbps: total / seconds / 1e6 }) + '\n')
  socket.destroy()
  await server.close()
  await a.destroy()
  await b.destroy()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
