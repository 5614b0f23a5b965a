// One end of a udx-native throughput run.
// Usage: udx-bench.js send|recv bytes
// Prints {"port", "id"}, reads the peer's {"port", "id"} from stdin,
// connects, then the sender writes `bytes` and ends; the receiver reads to
// the end and prints {"bytes", "seconds", "mbps"} timed from its first byte.
const UDX = require('udx-native')
const readline = require('readline')

const [role, bytesArg] = process.argv.slice(2)
const total = Number(bytesArg)
const u = new UDX()
const socket = u.createSocket()
socket.bind(0, '127.0.0.1')
const stream = u.createStream(role === 'send' ? 1001 : 2002)
process.stdout.write(JSON.stringify({ port: socket.address().port, id: stream.id }) + '\n')

readline.createInterface({ input: process.stdin }).once('line', (line) => {
  const peer = JSON.parse(line)
  stream.connect(socket, peer.id, peer.port, '127.0.0.1')
  if (role === 'send') send()
  else recv()
})

async function send () {
  const chunk = Buffer.alloc(65536, 1)
  for (let sent = 0; sent < total; sent += chunk.byteLength) {
    if (!stream.write(chunk)) await new Promise((resolve) => stream.once('drain', resolve))
  }
  stream.end()
  stream.on('data', () => {})
  stream.on('end', () => stream.end())
  stream.on('close', () => socket.close())
}

function recv () {
  let got = 0
  let start = 0n
  stream.on('data', (d) => {
    if (start === 0n) start = process.hrtime.bigint()
    got += d.byteLength
  })
  stream.on('end', () => {
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    process.stdout.write(JSON.stringify({ bytes: got, seconds, mbps: got / seconds / 1e6 }) + '\n')
    stream.end()
  })
  stream.on('close', () => socket.close())
}
