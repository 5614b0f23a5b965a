// The unchanged @hyperswarm/dht-relay client driven over stdin, one JSON
// command per line, one JSON answer per command.
// Usage: relay-user.js ws|tcp URL|HOST:PORT custodial|noncustodial seedHex
// Prints {"ready": true} once the relay answered the handshake. Commands:
//   {"cmd":"connect","key":hex,"bytes":n}        echo n random bytes through a
//       connection to key: {"ok":true,"ms":connect ms,"mbps":MB/s} or {"error":msg}
//   {"cmd":"streams","key":hex,"n":k,"bytes":n}  k such echoes at once: {"ok":true}
//   {"cmd":"pingpong","key":hex,"n":k,"bytes":b} connects and sends b bytes k times,
//       each once the last came back: {"ok":true,"ms":[each round trip]}
//   {"cmd":"mux","key":hex}                      connects and talks over four Protomux
//       channels with a peer doing the same (lib/mux-talk.js), 50 messages each way
//       on each: {"ok":true,"got":[per channel]} or {"error":msg}
//   {"cmd":"listen","seed":hex,"deny":bool}      an echo server (its firewall
//       denying everything when deny): {"ok":true,"publicKey":hex}
//   {"cmd":"close"}                              closes the servers: {"ok":true}
//   {"cmd":"lookup","topic":hex}                 {"peers":[publicKeyHex...]}
//   {"cmd":"announce","topic":hex,"seed":hex}    {"ok":true} once finished
//   {"cmd":"unannounce","topic":hex,"seed":hex}  {"ok":true}
//   {"cmd":"swarm","topic":hex,"text":s}         joins a Hyperswarm over the relayed
//       node, writes text to every connection and prints {"swarm":text received}
//   {"cmd":"upload","key":hex,"bytes":n}         writes n bytes at once to a sink
//       server (hyperdht-peer.js listenSink) and ends: {"ok":true,"mbps":MB/s} once
//       the sink counted all of them
//   {"cmd":"sizes","key":hex,"sizes":[n...]}    writes a buffer of each size in one tick
//       to a server that answers each message with its length (hyperdht-peer.js
//       listenSizes): {"ok":true,"got":[the lengths the server received]}
//   {"cmd":"reads","key":hex}                    reads to the end from a server that
//       writes buffers (hyperdht-peer.js listenWrites): {"ok":true,"got":[each data
//       event's length]}
//   {"cmd":"sink","key":hex,"pauseMs":n}        connects and reads nothing for
//       pauseMs, then reads to the end: {"ok":true,"bytes":n,"mbps":MB/s after the pause}
// When the relay goes away it prints {"closed":true,"reason":error or null}.
const DHT = require('@hyperswarm/dht-relay')
const Stream = require('@hyperswarm/dht-relay/ws')
const SecretStream = require('@hyperswarm/dht-relay/tcp')
const Hyperswarm = require('hyperswarm')
const WebSocket = require('ws')
const net = require('net')
const crypto = require('crypto')
const b4a = require('b4a')
const readline = require('readline')
const muxTalk = require('./lib/mux-talk')

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const buf = (h) => b4a.from(h, 'hex')
const hex = (b) => b4a.toString(b, 'hex')

const [kind, where, mode, seedHex] = process.argv.slice(2)
let socket
let stream
if (kind === 'ws') {
  socket = new WebSocket(where)
  stream = new Stream(true, socket)
} else {
  const [host, port] = where.split(':')
  socket = net.connect(Number(port), host)
  stream = new SecretStream(true, socket)
}
const keyPair = DHT.keyPair(buf(seedHex))
const node = new DHT(stream, { keyPair, custodial: mode === 'custodial' })
const servers = []

let closeReason = null
node._protocol._stream.on('error', (err) => { closeReason = err.message })
node._protocol._stream.on('close', () => out({ closed: true, reason: closeReason }))

function echo (key, total) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    let t1 = 0n
    const s = node.connect(buf(key))
    const data = crypto.randomBytes(total)
    const chunks = []
    let got = 0
    s.on('error', reject)
    s.once('open', () => {
      t1 = process.hrtime.bigint()
      for (let i = 0; i < total; i += 65536) s.write(data.subarray(i, i + 65536))
    })
    s.on('data', (d) => {
      chunks.push(d)
      got += d.byteLength
      if (got < total) return
      const t2 = process.hrtime.bigint()
      s.end()
      if (!b4a.equals(Buffer.concat(chunks), data)) return reject(new Error('echo differs'))
      resolve({ ok: true, ms: Number(t1 - t0) / 1e6, mbps: total / (Number(t2 - t1) / 1e9) / 1e6 })
    })
  })
}

async function handle (c) {
  if (c.cmd === 'connect') return echo(c.key, c.bytes)
  if (c.cmd === 'streams') {
    await Promise.all(Array.from({ length: c.n }, () => echo(c.key, c.bytes)))
    return { ok: true }
  }
  if (c.cmd === 'pingpong') {
    const s = node.connect(buf(c.key))
    s.on('error', () => {})
    await new Promise((resolve, reject) => { s.once('open', resolve); s.once('error', reject) })
    const msg = crypto.randomBytes(c.bytes)
    const ms = []
    for (let i = 0; i < c.n; i++) {
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
    s.destroy()
    return { ok: true, ms }
  }
  if (c.cmd === 'mux') {
    const s = node.connect(buf(c.key))
    const timeout = new Promise((resolve, reject) => setTimeout(() => reject(new Error('timed out')), 20000))
    try {
      const got = await Promise.race([muxTalk(s, 50), timeout])
      return { ok: true, got }
    } finally {
      s.destroy()
    }
  }
  if (c.cmd === 'listen') {
    const server = node.createServer({ firewall: () => !!c.deny }, (s) => {
      s.on('error', () => {})
      s.pipe(s)
    })
    await server.listen(DHT.keyPair(buf(c.seed)))
    servers.push(server)
    return { ok: true, publicKey: hex(server.publicKey) }
  }
  if (c.cmd === 'close') {
    await Promise.all(servers.splice(0).map((s) => s.close()))
    return { ok: true }
  }
  if (c.cmd === 'lookup') {
    const peers = new Set()
    for await (const r of node.lookup(buf(c.topic))) for (const p of r.peers) peers.add(hex(p.publicKey))
    return { peers: [...peers] }
  }
  if (c.cmd === 'announce') {
    await node.announce(buf(c.topic), DHT.keyPair(buf(c.seed))).resume().finished()
    return { ok: true }
  }
  if (c.cmd === 'unannounce') {
    await node.unannounce(buf(c.topic), DHT.keyPair(buf(c.seed)))
    return { ok: true }
  }
  if (c.cmd === 'swarm') {
    const swarm = new Hyperswarm({ dht: node })
    swarm.on('connection', (conn) => {
      conn.on('error', () => {})
      conn.write(c.text)
      conn.once('data', (d) => out({ swarm: d.toString() }))
    })
    swarm.join(buf(c.topic), { server: true, client: true })
    return { ok: true }
  }
  if (c.cmd === 'upload') {
    const s = node.connect(buf(c.key))
    let t0 = 0n
    const reply = []
    await new Promise((resolve, reject) => {
      s.on('error', reject)
      s.once('open', () => {
        t0 = process.hrtime.bigint()
        const chunk = Buffer.alloc(65536, 1)
        for (let i = 0; i < c.bytes; i += chunk.byteLength) s.write(chunk)
        s.end()
      })
      s.on('data', (d) => reply.push(d))
      s.on('end', resolve)
    })
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    const counted = Number(Buffer.concat(reply).readBigUInt64LE(0))
    if (counted !== c.bytes) throw new Error('the sink counted ' + counted + ' of ' + c.bytes)
    return { ok: true, mbps: counted / seconds / 1e6 }
  }
  if (c.cmd === 'sizes') {
    const s = node.connect(buf(c.key))
    const got = []
    let pending = b4a.alloc(0)
    await new Promise((resolve, reject) => {
      s.on('error', reject)
      s.once('open', () => {
        for (const n of c.sizes) s.write(b4a.alloc(n, n & 0xff))
      })
      s.on('data', (d) => {
        pending = b4a.concat([pending, d])
        while (pending.byteLength >= 4) {
          got.push(pending.readUInt32LE(0))
          pending = pending.subarray(4)
        }
        if (got.length >= c.sizes.length) resolve()
      })
      s.on('close', resolve)
    })
    s.destroy()
    return { ok: true, got }
  }
  if (c.cmd === 'reads') {
    const s = node.connect(buf(c.key))
    const got = []
    await new Promise((resolve, reject) => {
      s.on('error', reject)
      s.on('data', (d) => got.push(d.byteLength))
      s.on('end', resolve)
    })
    s.end()
    return { ok: true, got }
  }
  if (c.cmd === 'sink') {
    const s = node.connect(buf(c.key))
    let got = 0
    let t0 = 0n
    await new Promise((resolve, reject) => {
      s.on('error', reject)
      s.once('open', () => {
        s.pause()
        setTimeout(() => {
          t0 = process.hrtime.bigint()
          s.on('data', (d) => { got += d.byteLength })
          s.resume()
        }, c.pauseMs)
      })
      s.on('end', resolve)
    })
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    s.end()
    return { ok: true, bytes: got, mbps: got / seconds / 1e6 }
  }
  throw new Error('unknown command ' + c.cmd)
}

async function main () {
  await node.ready()
  out({ ready: true })
  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    if (!line.trim()) continue
    const c = JSON.parse(line)
    handle(c).then(out, (err) => out({ error: err.message, cmd: c.cmd }))
  }
}

main().catch((err) => {
  out({ error: err.message })
  process.exit(1)
})
