// Shared helpers for the interop programs: a JSON form of decoded values
// (buffers as hex) and line-oriented stdin reading.
const b4a = require('b4a')

function toJSON (v) {
  if (v === null || v === undefined) return null
  if (b4a.isBuffer(v) || v instanceof Uint8Array) return b4a.toString(v, 'hex')
  if (Array.isArray(v)) return v.map(toJSON)
  if (typeof v === 'object') {
    const out = {}
    for (const k of Object.keys(v)) out[k] = toJSON(v[k])
    return out
  }
  return v
}

async function readStdin () {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  return Buffer.concat(chunks).toString()
}

module.exports = { toJSON, readStdin }

// The relay package exports no subpaths, so its codecs are loaded by file,
// together with the compact-encoding 2.x it encodes with.
const path = require('path')
const relayDir = path.dirname(require.resolve('@hyperswarm/dht-relay'))
function relayRequire (p) {
  if (p.startsWith('.')) return require(path.join(relayDir, p))
  return require(require.resolve(p, { paths: [relayDir] }))
}
module.exports.relayRequire = relayRequire
