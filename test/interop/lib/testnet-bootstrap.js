// Preloaded (node -r) into the JS relay's own bin, which has no bootstrap
// flag: every `new DHT()` joins the network at HYPERDHT_BOOTSTRAP
// (host:port) instead of the public bootstrap nodes. Nothing else changes.
const Module = require('module')
const [host, port] = process.env.HYPERDHT_BOOTSTRAP.split(':')
const load = Module._load
Module._load = function (request, parent, isMain) {
  const exported = load.apply(this, arguments)
  if (request !== 'hyperdht' || exported.__testnet) return exported
  class TestnetDHT extends exported {
    constructor (opts = {}) {
      super({ bootstrap: [{ host, port: Number(port) }], ...opts })
    }
  }
  TestnetDHT.__testnet = true
  return TestnetDHT
}
