// udx-native streams against a Go peer.
// Usage: udx-peer.js streams bytes [mode]
// Binds a socket on 127.0.0.1, prints {"port", "ids"}, reads the Go side's
// {"port", "ids"} line from stdin and connects stream i to Go's id i.
// mode "transfer" (default): every stream sends `bytes` random bytes, ends,
//   reads to the end, and prints {"i", "sent", "received", "receivedBytes"}
//   with SHA-256 digests when it closes.
// mode "destroy": every stream destroys itself after receiving `bytes`
//   bytes and prints {"i", "destroyed": true}.
// mode "observe": streams only read, and print {"i", "error"} or
//   {"i", "ended": true} when the Go side destroys or ends them.
// Every 5 s it writes to stderr where each open stream stands, which a
// test shows when it fails.
const UDX = require('udx-native')
const crypto = require('crypto')
const readline = require('readline')

const [streamsArg, bytesArg, mode = 'transfer'] = process.argv.slice(2)
const count = Number(streamsArg)
const total = Number(bytesArg)
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

const u = new UDX()
const socket = u.createSocket()
socket.bind(0, '127.0.0.1')
const streams = []
for (let i = 0; i < count; i++) streams.push(u.createStream(crypto.randomInt(1, 2 ** 32 - 1)))
out({ port: socket.address().port, ids: streams.map((s) => s.id) })

let open = count
function done () {
  if (--open === 0) {
    socket.close()
    clearInterval(report)
  }
}

const state = streams.map(() => ({ written: 0, received: 0, waitingDrain: false, ended: false, remoteEnded: false, closed: false }))
const report = setInterval(() => {
  const open = state.map((st, i) => ({ i, ...st })).filter((st) => !st.closed)
  process.stderr.write(JSON.stringify({ at: new Date().toISOString(), open }) + '\n')
}, 5000)
report.unref()

const rl = readline.createInterface({ input: process.stdin })
rl.once('line', (line) => {
  const peer = JSON.parse(line)
  streams.forEach((s, i) => {
    s.connect(socket, peer.ids[i], peer.port, '127.0.0.1')
    if (mode === 'transfer') transfer(s, i)
    else if (mode === 'destroy') destroyAfter(s, i)
    else observe(s, i)
  })
})

function transfer (s, i) {
  const sent = crypto.createHash('sha256')
  const received = crypto.createHash('sha256')
  let receivedBytes = 0
  // The stream closes once both sides ended; this side ends when its own
  // writes are done, not when the other side's end arrives.
  const st = state[i]
  s.on('data', (d) => { received.update(d); receivedBytes += d.byteLength; st.received = receivedBytes })
  s.on('end', () => { st.remoteEnded = true })
  s.on('error', (err) => out({ i, error: err.code || err.message }))
  s.on('close', () => {
    st.closed = true
    out({ i, sent: sent.digest('hex'), received: received.digest('hex'), receivedBytes })
    done()
  })
  ;(async () => {
    let left = total
    while (left > 0) {
      const chunk = crypto.randomBytes(Math.min(left, 65536))
      sent.update(chunk)
      left -= chunk.byteLength
      st.written += chunk.byteLength
      if (!s.write(chunk)) {
        st.waitingDrain = true
        await new Promise((resolve) => s.once('drain', resolve))
        st.waitingDrain = false
      }
    }
    s.end()
    st.ended = true
  })()
}

function destroyAfter (s, i) {
  let got = 0
  s.on('error', () => {})
  s.on('close', () => { state[i].closed = true; out({ i, destroyed: true }); done() })
  s.on('data', (d) => {
    got += d.byteLength
    if (got >= total) s.destroy()
  })
}

function observe (s, i) {
  s.on('data', () => {})
  s.on('end', () => { out({ i, ended: true }); s.end() })
  s.on('error', (err) => out({ i, error: err.code || err.message }))
  s.on('close', () => { state[i].closed = true; done() })
}
