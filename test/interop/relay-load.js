// Many sessions of the unchanged @hyperswarm/dht-relay client against one
// relay, for the DHT load benchmarks. Prints one JSON line with the result.
// Usage: relay-load.js URL MODE ARGS...
//   dht N TOPIC        N sessions at once, each announcing a topic of its own
//                      and then looking up TOPIC:
//                      {"ms": all done, "found": lookups that found a peer, "failed": n}
//   setup TOTAL AT KEY TOTAL sessions, AT at a time, each opening a session and
//                      echoing one byte through a stream to KEY, then closing:
//                      {"perSecond": sessions a second, "failed": n}
//   lookups K TOPIC    one session looking TOPIC up K times, one after another:
//                      {"ms": [each lookup's time], "found": n}
//   flood QUERIES STREAMS
//                      one session keeping QUERIES lookups of random topics and
//                      STREAMS connects to keys nobody serves running until stdin
//                      closes; prints {"ready": true} once started and
//                      {"lookups": n, "connects": n} at the end
const DHT = require('@hyperswarm/dht-relay')
const Stream = require('@hyperswarm/dht-relay/ws')
const WebSocket = require('ws')
const crypto = require('crypto')
const b4a = require('b4a')

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const [url, mode, ...args] = process.argv.slice(2)

async function session () {
  const node = new DHT(new Stream(true, new WebSocket(url)), { keyPair: DHT.keyPair() })
  await node.ready()
  return node
}

async function found (node, topic) {
  let n = 0
  for await (const r of node.lookup(topic)) n += r.peers.length
  return n > 0
}

function echoOne (node, key) {
  return new Promise((resolve, reject) => {
    const s = node.connect(key)
    s.on('error', reject)
    s.once('open', () => s.write(b4a.from([7])))
    s.once('data', () => { s.destroy(); resolve() })
  })
}

async function dht (n, topic) {
  const t0 = Date.now()
  let hits = 0
  let failed = 0
  await Promise.all(Array.from({ length: n }, async () => {
    let node
    try {
      node = await session()
      await node.announce(crypto.randomBytes(32), DHT.keyPair()).resume().finished()
      if (await found(node, topic)) hits++
    } catch {
      failed++
    } finally {
      if (node) node.destroy()
    }
  }))
  return { ms: Date.now() - t0, found: hits, failed }
}

async function setup (total, at, key) {
  const t0 = Date.now()
  let next = 0
  let failed = 0
  await Promise.all(Array.from({ length: at }, async () => {
    while (next < total) {
      next++
      let node
      try {
        node = await session()
        await echoOne(node, key)
      } catch {
        failed++
      } finally {
        if (node) node.destroy()
      }
    }
  }))
  return { perSecond: total / ((Date.now() - t0) / 1000), failed }
}

async function lookups (k, topic) {
  const node = await session()
  const ms = []
  let hits = 0
  for (let i = 0; i < k; i++) {
    const t0 = process.hrtime.bigint()
    if (await found(node, topic)) hits++
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  node.destroy()
  return { ms, found: hits }
}

async function flood (queries, streams) {
  const node = await session()
  let running = true
  let nLookups = 0
  let nConnects = 0
  const loops = []
  for (let i = 0; i < queries; i++) {
    loops.push((async () => {
      while (running) {
        try { await found(node, crypto.randomBytes(32)) } catch {}
        nLookups++
      }
    })())
  }
  for (let i = 0; i < streams; i++) {
    loops.push((async () => {
      while (running) {
        await new Promise((resolve) => {
          const s = node.connect(DHT.keyPair().publicKey)
          s.on('error', resolve)
          s.on('close', resolve)
          s.once('open', () => s.destroy())
        })
        nConnects++
      }
    })())
  }
  out({ ready: true })
  await new Promise((resolve) => {
    process.stdin.on('end', resolve)
    process.stdin.resume()
  })
  running = false
  node.destroy()
  return { lookups: nLookups, connects: nConnects }
}

async function main () {
  const hexBuf = (h) => b4a.from(h, 'hex')
  if (mode === 'dht') return dht(Number(args[0]), hexBuf(args[1]))
  if (mode === 'setup') return setup(Number(args[0]), Number(args[1]), hexBuf(args[2]))
  if (mode === 'lookups') return lookups(Number(args[0]), hexBuf(args[1]))
  if (mode === 'flood') return flood(Number(args[0]), Number(args[1]))
  throw new Error('unknown mode ' + mode)
}

main().then((r) => { out(r); process.exit(0) }, (err) => { out({ error: err.message }); process.exit(1) })
