// The page's script: the unchanged @hyperswarm/dht-relay client over the
// browser's own WebSocket. Bundled by browser-run.js.
const DHT = require('@hyperswarm/dht-relay')
const Stream = require('@hyperswarm/dht-relay/ws')

// echo connects through the relay at url to the server with keyHex, sends
// size random bytes and resolves to 'ok' when they came back intact.
window.echo = async function echo (url, keyHex, size) {
  const socket = new WebSocket(url)
  const node = new DHT(new Stream(true, socket))
  await node.ready()
  const key = new Uint8Array(keyHex.match(/../g).map((h) => parseInt(h, 16)))
  const stream = node.connect(key)
  const data = new Uint8Array(size)
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(i + 65536, size)))
  const got = new Uint8Array(size)
  let n = 0
  await new Promise((resolve, reject) => {
    stream.on('error', reject)
    stream.once('open', () => stream.write(data))
    stream.on('data', (d) => {
      got.set(d, n)
      n += d.byteLength
      if (n >= size) resolve()
    })
  })
  stream.end()
  await node.destroy()
  for (let i = 0; i < size; i++) if (got[i] !== data[i]) return 'differs at ' + i
  return 'ok'
}
