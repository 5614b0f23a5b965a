// Throughput of @hyperswarm/secret-stream: an initiator and a responder in
// this process joined by their in-memory bridges, one encrypting and the
// other decrypting. Usage: secretstream-bench.js totalBytes messageBytes
// Prints {"bytes": n, "seconds": s, "mbps": MB/s}.
const SecretStream = require('@hyperswarm/secret-stream')
const b4a = require('b4a')

const total = Number(process.argv[2] || 256 * 1024 * 1024)
const size = Number(process.argv[3] || 65536)

const a = new SecretStream(true)
const b = new SecretStream(false)
a.rawStream.pipe(b.rawStream).pipe(a.rawStream)

const chunk = b4a.alloc(size, 7)
let received = 0
let start = 0

b.on('data', (d) => {
  received += d.byteLength
  if (received >= total) {
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    process.stdout.write(JSON.stringify({ bytes: received, seconds, mbps: received / seconds / 1e6 }) + '\n')
    process.exit(0)
  }
})

a.once('connect', async () => {
  start = process.hrtime.bigint()
  let sent = 0
  while (sent < total) {
    sent += size
    if (!a.write(chunk)) await new Promise((resolve) => a.once('drain', resolve))
  }
})
