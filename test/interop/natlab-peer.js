// A JS hyperdht node for the NAT lab, run inside a lab namespace.
// Usage:
//   natlab-peer.js bootstrap HOST SIZE   a testnet of SIZE nodes on HOST;
//                                        prints {"bootstrap": "HOST:PORT"}
//   natlab-peer.js server BOOT SEEDHEX   joins through BOOT, listens on the
//                                        seed's key and echoes; prints
//                                        {"listening": true, "firewalled": b}
//   natlab-peer.js client BOOT KEYHEX N [RELAYHEX]
//                                        connects (through the blind relay
//                                        RELAYHEX if punching fails), echoes
//                                        N random bytes; prints {"ok": true}
//                                        or {"error": "..."}
//   natlab-peer.js relay BOOT SEEDHEX    a blind relay on the seed's key;
//                                        prints {"listening": true}
// The long-running roles stop when stdin closes.
const DHT = require('hyperdht')
const createTestnet = require('hyperdht/testnet')
const crypto = require('crypto')
const b4a = require('b4a')
const BlindRelay = require('blind-relay')

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const untilStdinCloses = () => new Promise((resolve) => {
  process.stdin.on('end', resolve).on('close', resolve).resume()
})
const bootOf = (s) => { const [host, port] = s.split(':'); return [{ host, port: Number(port) }] }

async function main () {
  const [role, a, b, c, d] = process.argv.slice(2)
  if (role === 'bootstrap') {
    const testnet = await createTestnet(Number(b), { host: a })
    out({ bootstrap: `${a}:${testnet.bootstrap[0].port}` })
    await untilStdinCloses()
    await testnet.destroy()
    return
  }
  // A blind relay is a public node: it says so from the start instead of
  // waiting to prove it, so that peers reach it without punching.
  const node = new DHT({ bootstrap: bootOf(a), firewalled: role !== 'relay' })
  await node.fullyBootstrapped()
  if (role === 'relay') {
    const relay = new BlindRelay.Server({
      createStream: (opts) => node.createRawStream({ ...opts, framed: true })
    })
    const server = node.createServer((socket) => {
      socket.on('error', () => {})
      relay.accept(socket, { id: socket.remotePublicKey }).on('error', () => {})
    })
    await server.listen(DHT.keyPair(b4a.from(b, 'hex')))
    out({ listening: true })
    await untilStdinCloses()
    await node.destroy()
    return
  }
  if (role === 'server') {
    // Each connection says on stderr where its stream sends, when it
    // comes and when it closes, which a failed cell prints.
    const server = node.createServer((socket) => {
      const raw = socket.rawStream
      let echoed = 0
      const say = (what) => process.stderr.write(`${what}: stream to ${raw.remoteHost}:${raw.remotePort}, ${echoed} bytes echoed\n`)
      say('connection')
      socket.on('data', (d) => { echoed += d.byteLength })
      socket.on('error', (err) => say(`error ${err.message}`))
      socket.on('close', () => say('closed'))
      socket.pipe(socket)
    })
    await server.listen(DHT.keyPair(b4a.from(b, 'hex')))
    out({ listening: true, firewalled: node.firewalled })
    await untilStdinCloses()
    await node.destroy()
    return
  }
  const total = Number(c)
  const socket = node.connect(b4a.from(b, 'hex'), d ? { relayThrough: b4a.from(d, 'hex') } : {})
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
    socket.once('open', () => socket.write(data))
  })
  out(Buffer.concat(chunks).equals(data) ? { ok: true, firewalled: node.firewalled } : { error: 'echo differs' })
  socket.on('error', () => {})
  socket.destroy()
  await node.destroy()
}

main().catch((err) => {
  out({ error: err.message })
  process.exit(0)
})
