// A JS hyperdht node on a testnet that connects to a key and sends bytes
// n times, each once the last came back: the round trip with no relay.
// Usage: hyperdht-pingpong.js BOOTSTRAP KEY N BYTES
// Prints {"ok": true, "ms": [each round trip]}.
const DHT = require('hyperdht')
const b4a = require('b4a')
const crypto = require('crypto')

async function main () {
  const [bootstrap, key, n, bytes] = process.argv.slice(2)
  const [host, port] = bootstrap.split(':')
  const node = new DHT({ bootstrap: [{ host, port: Number(port) }] })
  await node.fullyBootstrapped()
  const s = node.connect(b4a.from(key, 'hex'))
  s.on('error', () => {})
  await new Promise((resolve, reject) => { s.once('open', resolve); s.once('error', reject) })
  const msg = crypto.randomBytes(Number(bytes))
  const ms = []
  for (let i = 0; i < Number(n); i++) {
    const t0 = process.hrtime.bigint()
    let got = 0
    await new Promise((resolve) => {
      const ondata = (d) => {
        got += d.byteLength
        if (got < msg.byteLength) return
        s.off('data', ondata)
        resolve()
      }
      s.on('data', ondata)
      s.write(msg)
    })
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  process.stdout.write(JSON.stringify({ ok: true, ms }) + '\n')
  s.destroy()
  await node.destroy()
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: err.message }) + '\n')
  process.exit(1)
})
