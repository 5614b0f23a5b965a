// A hyperdht testnet on loopback, driven over stdin for dht-rpc interop.
// Usage: dht-testnet.js size
// Prints {"bootstrap": "host:port", "nodes": ["host:port", ...]} once the
// testnet is up, then answers one JSON line per command line:
//   query <targetHex>   closest nodes a fresh JS client node finds:
//                       {"closest": ["host:port", ...]}
//   knows <host:port>   how many testnet nodes have that node in their
//                       routing table: {"knows": n}
//   ping <host:port>    a JS ping: {"ok": true} or {"error": "..."}
//   load <seconds> <n>  n find_node queries for random targets kept running
//                       for that long: {"requests": n, "responses": n,
//                       "seconds": s} counted by the client node
const createTestnet = require('hyperdht/testnet')
const b4a = require('b4a')
const crypto = require('crypto')
const readline = require('readline')

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

async function main () {
  const size = Number(process.argv[2] || 10)
  const testnet = await createTestnet(size, { host: '127.0.0.1' })
  const addr = (n) => `127.0.0.1:${n.address().port}`
  out({ bootstrap: `${testnet.bootstrap[0].host}:${testnet.bootstrap[0].port}`, nodes: testnet.nodes.map(addr) })

  const client = testnet.createNode()
  await client.fullyBootstrapped()

  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    const [cmd, arg, arg2] = line.split(' ')
    try {
      if (cmd === 'query') {
        const q = client.findNode(b4a.from(arg, 'hex'))
        await q.finished()
        out({ closest: q.closestReplies.map((r) => `${r.from.host}:${r.from.port}`) })
      } else if (cmd === 'knows') {
        const [host, port] = arg.split(':')
        let knows = 0
        for (const n of testnet.nodes) {
          for (const node of n.toArray()) {
            if (node.host === host && node.port === Number(port)) knows++
          }
        }
        out({ knows })
      } else if (cmd === 'load') {
        const before = { ...client.stats.requests }
        const t0 = Date.now()
        const until = t0 + Number(arg) * 1000
        await Promise.all(Array.from({ length: Number(arg2) }, async () => {
          while (Date.now() < until) await client.findNode(crypto.randomBytes(32)).finished()
        }))
        const r = client.stats.requests
        out({ requests: r.total - before.total, responses: r.responses - before.responses, seconds: (Date.now() - t0) / 1000 })
      } else if (cmd === 'ping') {
        const [host, port] = arg.split(':')
        await client.ping({ host, port: Number(port) })
        out({ ok: true })
      }
    } catch (err) {
      out({ error: err.message })
    }
  }
  await testnet.destroy()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
