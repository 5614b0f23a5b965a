// Bundles browser/entry.js for the browser, serves it on loopback and runs
// it in headless Chromium: echo through the relay from a real page.
// Usage: browser-run.js wsURL publicKeyHex bytes
// Prints {"result": "ok"} or {"error": message}.
const path = require('path')
const http = require('http')
const esbuild = require('esbuild')
const { chromium } = require('playwright-core')

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'

async function main () {
  const [url, key, bytes] = process.argv.slice(2)
  const bundle = await esbuild.build({
    entryPoints: [path.join(__dirname, 'browser', 'entry.js')],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'iife',
    define: { global: 'globalThis' },
    logLevel: 'error'
  })
  const js = bundle.outputFiles[0].text
  const server = http.createServer((req, res) => {
    if (req.url === '/bundle.js') {
      res.setHeader('content-type', 'text/javascript')
      return res.end(js)
    }
    res.setHeader('content-type', 'text/html')
    res.end('<!doctype html><html><body><script src="/bundle.js"></script></body></html>')
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking']
  })
  try {
    const page = await browser.newPage()
    const errors = []
    page.on('pageerror', (err) => errors.push(err.message))
    await page.goto(`http://127.0.0.1:${server.address().port}/`)
    await page.waitForFunction(() => typeof window.echo === 'function', null, { timeout: 30000 })
    const result = await page.evaluate(([u, k, n]) => window.echo(u, k, n), [url, key, Number(bytes)])
    process.stdout.write(JSON.stringify(errors.length ? { error: errors.join('; '), result } : { result }) + '\n')
  } finally {
    await browser.close()
    server.close()
  }
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ error: err.message }) + '\n')
  process.exit(1)
})
