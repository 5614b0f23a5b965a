// Both sides of the Protomux test over one connection: four channels made
// with Protomux.from(socket), each sending count small messages once open.
// Resolves with the messages received on each channel once every channel
// got count of them, in order; rejects when the socket fails first.
const Protomux = require('protomux')
const c = require('compact-encoding')

const CHANNELS = 4

module.exports = function muxTalk (socket, count) {
  const mux = Protomux.from(socket)
  const got = new Array(CHANNELS).fill(0)
  return new Promise((resolve, reject) => {
    let done = 0
    socket.on('error', reject)
    socket.on('close', () => reject(new Error('closed after ' + got.join('/') + ' messages')))
    for (let i = 0; i < CHANNELS; i++) {
      const ch = mux.createChannel({ protocol: 'dht-relay-test/mux/' + i })
      const m = ch.addMessage({
        encoding: c.string,
        onmessage (s) {
          if (s !== 'm' + got[i]) return reject(new Error(`channel ${i}: got ${s} for message ${got[i]}`))
          if (++got[i] === count && ++done === CHANNELS) resolve(got)
        }
      })
      ch.open()
      for (let k = 0; k < count; k++) m.send('m' + k)
    }
  })
}
