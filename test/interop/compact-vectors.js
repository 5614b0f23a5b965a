// compact-encoding 3.x and compact-encoding-net vectors.
// "encode": prints [{codec, value, hex}] for a fixed set of values.
// "decode": reads [{codec, hex}] on stdin and prints [{codec, value, hex}],
// where hex is the JS re-encoding of the decoded value.
const c = require('compact-encoding')
const net = require('compact-encoding-net')
const b4a = require('b4a')
const { toJSON, readStdin } = require('./lib/json')

const codecs = {
  uint: c.uint,
  int: c.int,
  uint8: c.uint8,
  uint16: c.uint16,
  uint24: c.uint24,
  uint32: c.uint32,
  uint64: c.uint64,
  bool: c.bool,
  buffer: c.buffer,
  string: c.string,
  fixed32: c.fixed32,
  fixed64: c.fixed64,
  uintArray: c.array(c.uint),
  ipv4Address: net.ipv4Address,
  ipv6Address: net.ipv6Address
}

function fromJSON (codec, v) {
  if (['buffer', 'fixed32', 'fixed64'].includes(codec)) return b4a.from(v, 'hex')
  return v
}

function values () {
  const boundaries = [0, 1, 0xfc, 0xfd, 0xfe, 0xff, 0x100, 0xfffe, 0xffff, 0x10000, 0xfffffffe, 0xffffffff, 0x100000000, 2 ** 53 - 1]
  const v = []
  for (const n of boundaries) v.push(['uint', n])
  for (const n of [0, -1, 1, -126, 126, -127, 127, -32768, 32767, -(2 ** 31), 2 ** 31 - 1, 2 ** 40, -(2 ** 40)]) v.push(['int', n])
  for (const n of [0, 255]) v.push(['uint8', n])
  for (const n of [0, 0x1234, 0xffff]) v.push(['uint16', n])
  for (const n of [0, 0x123456, 0xffffff]) v.push(['uint24', n])
  for (const n of [0, 0x12345678, 0xffffffff]) v.push(['uint32', n])
  for (const n of [0, 0x123456789a, 2 ** 53 - 1]) v.push(['uint64', n])
  v.push(['bool', true], ['bool', false])
  for (const n of [0, 1, 252, 253, 300, 65535, 65536]) v.push(['buffer', b4a.toString(b4a.alloc(n, n & 0xff), 'hex')])
  for (const s of ['', 'a', 'hyperswarm', 'Ærø ∑ 😀', 'x'.repeat(253)]) v.push(['string', s])
  v.push(['fixed32', b4a.toString(b4a.alloc(32, 7), 'hex')], ['fixed64', b4a.toString(b4a.alloc(64, 9), 'hex')])
  v.push(['uintArray', []], ['uintArray', [1, 300, 70000, 2 ** 40]])
  for (const a of [{ host: '127.0.0.1', port: 49737 }, { host: '0.0.0.0', port: 0 }, { host: '255.1.2.3', port: 65535 }]) v.push(['ipv4Address', a])
  for (const a of [{ host: '::1', port: 1 }, { host: '2001:db8::ff00:42:8329', port: 49737 }]) v.push(['ipv6Address', a])
  return v
}

async function main () {
  const mode = process.argv[2]
  let out
  if (mode === 'encode') {
    out = values().map(([codec, value]) => {
      const hex = b4a.toString(c.encode(codecs[codec], fromJSON(codec, value)), 'hex')
      return { codec, value: toJSON(c.decode(codecs[codec], b4a.from(hex, 'hex'))), hex }
    })
  } else if (mode === 'decode') {
    out = JSON.parse(await readStdin()).map(({ codec, hex }) => {
      const value = c.decode(codecs[codec], b4a.from(hex, 'hex'))
      return { codec, value: toJSON(value), hex: b4a.toString(c.encode(codecs[codec], value), 'hex') }
    })
  } else throw new Error('usage: compact-vectors.js encode|decode')
  process.stdout.write(JSON.stringify(out))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
