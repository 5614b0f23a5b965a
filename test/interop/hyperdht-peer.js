// A hyperdht testnet with a JS client node, driven over stdin, for record
// interop. Usage: hyperdht-peer.js size
// Prints {"bootstrap": "host:port"}, then one JSON line per command:
//   announce <topicHex> <seedHex>     {"ok": true}
//   unannounce <topicHex> <seedHex>   {"ok": true}
//   lookup <topicHex>                 {"peers": [publicKeyHex, ...]}
//   immutablePut <valueHex>           {"hash": hex}
//   immutableGet <hashHex>            {"value": hex | null}
//   mutablePut <seedHex> <valueHex> <seq>  {"ok": true}
//   mutableGet <publicKeyHex> <seq>   {"value": hex | null, "seq": n}
//   findPeer <publicKeyHex>           {"found": bool}
//   listen <seedHex>                  {"ok": true}, an echo server
//   listenSource <seedHex> <bytes>    {"ok": true}, a server that sends bytes
//   listenSink <seedHex>              {"ok": true}, a server that reads to the
//                                     end, then sends the byte count (8 bytes, LE)
//   listenSizes <seedHex>             {"ok": true}, a server that answers each
//                                     message (data event) with its length (4 bytes, LE)
//   listenWrites <seedHex> <n,n,...>  {"ok": true}, a server that writes a buffer
//                                     of each length, then ends
//   fetch <publicKeyHex>              {"bytes": n, "mbps": MB/s} reading to the end
//   listenMux <seedHex>               {"ok": true}, a server that talks over
//                                     four Protomux channels (lib/mux-talk.js)
//   echo <publicKeyHex> <bytes>       {"ok": true} once that many random bytes
//                                     came back intact, or {"error": "CODE: ..."}
//   echoMany <publicKeyHex> <bytes> <n>  n JS nodes echoing at once: {"ok": true}
//                                     or {"error": every failure}
const createTestnet = require('hyperdht/testnet')
const DHT = require('hyperdht')
const b4a = require('b4a')
const readline = require('readline')
const muxTalk = require('./lib/mux-talk')

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const hex = (b) => (b ? b4a.toString(b, 'hex') : null)
const buf = (h) => b4a.from(h, 'hex')

// echo connects from node to key, writes bytes random bytes and resolves
// once they all came back intact.
async function echo (node, key, bytes) {
  const socket = node.connect(key)
  const data = require('crypto').randomBytes(bytes)
  const chunks = []
  let got = 0
  await new Promise((resolve, reject) => {
    socket.on('error', reject)
    socket.once('open', () => socket.write(data))
    socket.on('data', (d) => {
      chunks.push(d)
      got += d.byteLength
      if (got >= data.byteLength) resolve()
    })
  })
  socket.end()
  socket.on('error', () => {})
  if (!b4a.equals(Buffer.concat(chunks), data)) throw new Error('echo differs')
}

async function main () {
  const testnet = await createTestnet(Number(process.argv[2] || 10), { host: '127.0.0.1' })
  out({ bootstrap: `${testnet.bootstrap[0].host}:${testnet.bootstrap[0].port}` })
  const node = testnet.createNode()
  await node.fullyBootstrapped()
  const servers = []

  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    const [cmd, a, b, c] = line.split(' ')
    try {
      if (cmd === 'announce') {
        await node.announce(buf(a), DHT.keyPair(buf(b)), []).finished()
        out({ ok: true })
      } else if (cmd === 'unannounce') {
        await node.unannounce(buf(a), DHT.keyPair(buf(b)))
        out({ ok: true })
      } else if (cmd === 'lookup') {
        const peers = new Set()
        for await (const r of node.lookup(buf(a))) for (const p of r.peers) peers.add(hex(p.publicKey))
        out({ peers: [...peers] })
      } else if (cmd === 'immutablePut') {
        const { hash } = await node.immutablePut(buf(a))
        out({ hash: hex(hash) })
      } else if (cmd === 'immutableGet') {
        const r = await node.immutableGet(buf(a))
        out({ value: r ? hex(r.value) : null })
      } else if (cmd === 'mutablePut') {
        await node.mutablePut(DHT.keyPair(buf(a)), buf(b), { seq: Number(c) })
        out({ ok: true })
      } else if (cmd === 'mutableGet') {
        const r = await node.mutableGet(buf(a), { seq: Number(b) })
        out({ value: r ? hex(r.value) : null, seq: r ? r.seq : null })
      } else if (cmd === 'findPeer') {
        let found = false
        for await (const r of node.findPeer(buf(a))) if (r.peer) found = true
        out({ found })
      } else if (cmd === 'listenSource') {
        const s = node.createServer((socket) => {
          socket.on('error', () => {})
          const chunk = Buffer.alloc(65536, 1)
          let left = Number(b)
          const pump = () => {
            while (left > 0) {
              left -= chunk.byteLength
              if (!socket.write(chunk)) return socket.once('drain', pump)
            }
            socket.end()
          }
          pump()
        })
        await s.listen(DHT.keyPair(buf(a)))
        servers.push(s)
        out({ ok: true })
      } else if (cmd === 'listenSink') {
        const s = node.createServer((socket) => {
          socket.on('error', () => {})
          let got = 0
          socket.on('data', (d) => { got += d.byteLength })
          socket.on('end', () => {
            const n = Buffer.alloc(8)
            n.writeBigUInt64LE(BigInt(got))
            socket.end(n)
          })
        })
        await s.listen(DHT.keyPair(buf(a)))
        servers.push(s)
        out({ ok: true })
      } else if (cmd === 'listenSizes') {
        const s = node.createServer((socket) => {
          socket.on('error', () => {})
          socket.on('data', (d) => {
            const n = Buffer.alloc(4)
            n.writeUInt32LE(d.byteLength)
            socket.write(n)
          })
          socket.on('end', () => socket.end())
        })
        await s.listen(DHT.keyPair(buf(a)))
        servers.push(s)
        out({ ok: true })
      } else if (cmd === 'listenWrites') {
        const sizes = b.split(',').map(Number)
        const s = node.createServer((socket) => {
          socket.on('error', () => {})
          for (const n of sizes) socket.write(Buffer.alloc(n, n & 0xff))
          socket.end()
        })
        await s.listen(DHT.keyPair(buf(a)))
        servers.push(s)
        out({ ok: true })
      } else if (cmd === 'fetch') {
        const t0 = process.hrtime.bigint()
        const socket = node.connect(buf(a))
        let got = 0
        await new Promise((resolve, reject) => {
          socket.on('error', reject)
          socket.on('data', (d) => { got += d.byteLength })
          socket.on('end', resolve)
        })
        socket.end()
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9
        out({ bytes: got, mbps: got / seconds / 1e6 })
      } else if (cmd === 'echo') {
        await echo(node, buf(a), Number(b))
        out({ ok: true })
      } else if (cmd === 'echoMany') {
        // c JS nodes of the testnet, each echoing b bytes at once
        const nodes = Array.from({ length: Number(c) }, () => testnet.createNode())
        try {
          await Promise.all(nodes.map((n) => n.fullyBootstrapped()))
          const results = await Promise.allSettled(nodes.map((n) => echo(n, buf(a), Number(b))))
          const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason.message)
          out(failed.length ? { error: failed.join('; ') } : { ok: true })
        } finally {
          await Promise.all(nodes.map((n) => n.destroy()))
        }
      } else if (cmd === 'listenMux') {
        const s = node.createServer((socket) => {
          socket.on('error', () => {})
          muxTalk(socket, 50).catch(() => {})
        })
        await s.listen(DHT.keyPair(buf(a)))
        servers.push(s)
        out({ ok: true })
      } else if (cmd === 'listen') {
        const s = node.createServer((socket) => {
          socket.on('error', () => {})
          socket.pipe(socket)
        })
        await s.listen(DHT.keyPair(buf(a)))
        servers.push(s)
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
