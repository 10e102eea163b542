// Benchmark: commit→client latency and delivered rate of single-row inserts made in a browser tab's
// PGlite (IndexedDB) and streamed through the browser bridge (docs/pglite.md, "Browser bridge") to
// one supabase-js subscriber in Node. Usage, from e2e/ after `go build -o ../bin/realtime ../cmd/realtime`:
//
//   node_modules/.bin/node bench/pglite_browser.mjs --rate 200 --rows 2000
//   node_modules/.bin/node bench/pglite_browser.mjs --rate 0 --rows 2000     # as fast as PGlite accepts
//   add --relaxed 1 for PGlite's relaxedDurability
//
// Latency is measured from the moment db.query() resolved in the page (the commit, synced to
// IndexedDB) to the subscriber's callback; both run on this machine's clock. Prints one JSON line.

import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { createReadStream, readFileSync, realpathSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from '@supabase/supabase-js'
import { chromium } from 'playwright-core'
import { freePort, serverBinary } from '../lib/server.mjs'
import { anonKey, userToken } from '../lib/tokens.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : def
}
const RATE = arg('rate', 200) // inserts per second; 0 = back to back
const ROWS = arg('rows', 2000)
// --relaxed 1: PGlite's relaxedDurability (a query resolves before its IndexedDB sync ends).
const RELAXED = arg('relaxed', 0) === 1
const dist = realpathSync(path.resolve(here, '../node_modules/@electric-sql/pglite/dist'))
const SCHEMA = readFileSync(path.resolve(here, '../../internal/demo/schema.sql'), 'utf8')
const BRIDGE_SECRET = randomUUID()

const [port, webPort] = [await freePort(), await freePort()]
const jwt = randomBytes(32).toString('hex')
const srv = spawn(serverBinary(), ['serve', '--addr', `127.0.0.1:${port}`, '--jwt-secret', jwt, '--source', 'notify',
  '--db-url', 'pglite-bridge://', '--pglite-bridge-secret', BRIDGE_SECRET, '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] })
const service = `http://127.0.0.1:${port}`

const PAGE = `<!doctype html><script type="module">
import { PGlite } from '/pglite/index.js'
window.started = (async () => {
  const db = new PGlite('idb://realtime-bench-${randomUUID()}', { relaxedDurability: ${RELAXED} })
  await db.waitReady
  window.db = db
  await db.exec(await (await fetch('/schema.sql')).text())
  const { startBridge } = await import('${service}/pglite/v1/bridge.mjs')
  window.bridge = await startBridge({ db, secret: '${BRIDGE_SECRET}', relaxedDurability: ${RELAXED} })
  return 'ok'
})()
window.run = async (user, rows, rate) => {
  const t0 = performance.now()
  for (let i = 0; i < rows; i++) {
    if (rate > 0) { const due = t0 + (i * 1000) / rate; const wait = due - performance.now(); if (wait > 0) await new Promise((r) => setTimeout(r, wait)) }
    await window.db.query('INSERT INTO todos (user_id, title) VALUES ($1, $2)', [user, 'bench'])
    window.committed.push(performance.timeOrigin + performance.now())
  }
  return (rows * 1000) / (performance.now() - t0)
}
window.committed = []
</script>`
const web = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x')
  if (u.pathname === '/index.html') return res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE)
  if (u.pathname === '/schema.sql') return res.end(SCHEMA)
  const f = path.join(dist, path.normalize(u.pathname.slice('/pglite/'.length)))
  if (!f.startsWith(dist + path.sep)) return res.writeHead(404).end()
  res.writeHead(200, { 'content-type': f.endsWith('.js') ? 'text/javascript' : f.endsWith('.wasm') ? 'application/wasm' : 'application/octet-stream' })
  createReadStream(f).on('error', () => res.end()).pipe(res)
})
await new Promise((r) => web.listen(webPort, '127.0.0.1', r))

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'], headless: true })
try {
  const page = await (await browser.newContext()).newPage()
  await page.goto(`http://127.0.0.1:${webPort}/index.html`)
  if ((await page.evaluate(() => window.started)) !== 'ok') throw new Error('bridge did not start')
  for (let i = 0; i < 600; i++) {
    const r = await fetch(`${service}/healthz`).catch(() => null)
    if (r?.status === 200) break
    await new Promise((r) => setTimeout(r, 100))
  }
  const user = randomUUID()
  const key = userToken(jwt, { sub: user })
  const client = createClient(service, anonKey(jwt), { accessToken: async () => key, auth: { persistSession: false } })
  await client.realtime.setAuth(key)
  const received = []
  const ch = client.channel('bench').on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'todos' }, () => received.push(Date.now()))
  await new Promise((resolve, reject) => ch.subscribe((s, err) => (s === 'SUBSCRIBED' ? resolve() : s !== 'CLOSED' && err && reject(err))))
  await new Promise((r) => setTimeout(r, 1000))
  const t0 = Date.now()
  const insertRate = await page.evaluate(([u, n, r]) => window.run(u, n, r), [user, ROWS, RATE])
  const deadline = Date.now() + 120000
  while (received.length < ROWS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  const committed = await page.evaluate(() => window.committed)
  const lat = received.slice(0, committed.length).map((t, i) => t - committed[i]).sort((a, b) => a - b)
  const q = (p) => Math.round(lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] * 10) / 10
  console.log(JSON.stringify({
    scenario: 'pglite-browser-bridge', target_rate: RATE || 'max', rows: ROWS, delivered: received.length,
    insert_rate: Math.round(insertRate), delivered_rate: Math.round((received.length * 1000) / ((received.at(-1) ?? t0) - t0)),
    latency_ms: { p50: q(50), p90: q(90), p99: q(99), max: q(100) },
  }))
  await client.removeAllChannels()
} finally {
  await browser.close()
  srv.kill('SIGTERM')
  web.close()
}
