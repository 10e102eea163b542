// PGlite in the browser as the project's database (docs/pglite.md, "Browser bridge"): headless
// Chromium (Debian's /usr/bin/chromium via playwright-core) loads a page, served here by a tiny
// static server, that opens PGlite on IndexedDB (the browser build from @electric-sql/pglite),
// applies the demo schema (owner-only `todos` under RLS) and calls startBridge() from the module
// the service serves. The service runs `--db-url pglite-bridge:// --source notify` with a one-hour
// poll interval, so every change reaches it through relayed notifications. supabase-js clients in
// Node subscribe as two users and must get only their own rows, each exactly once, across a page
// reload in the middle of the stream. A wrong secret, the anon key and a second tab are refused.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { createReadStream, existsSync, readFileSync, realpathSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { ClientPool, subscribed } from '../lib/client.mjs'
import { ServerProcess, freePort, serverBinary } from '../lib/server.mjs'
import { userToken } from '../lib/tokens.mjs'
import { Collector, safeJson, waitFor } from '../lib/wait.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const PGLITE_DIST = path.resolve(here, '../node_modules/@electric-sql/pglite/dist')
const SCHEMA = readFileSync(path.resolve(here, '../../internal/demo/schema.sql'), 'utf8')
const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
]
const BRIDGE_SECRET = `bridge-${randomUUID()}`
const SLOW = 120000 // PGlite's first start in a fresh IndexedDB runs initdb in wasm

// The test page: PGlite on IndexedDB (or memory), the demo schema, then the bridge. It reports
// 'ok' or 'refused <code>: <reason>' in window.started.
const PAGE = `<!doctype html><meta charset="utf-8"><title>pglite bridge test</title>
<script type="module">
import { PGlite } from '/pglite/index.js'
const q = new URLSearchParams(location.search)
window.started = (async () => {
  const db = new PGlite(q.get('db'))
  await db.waitReady
  window.db = db
  if (q.get('schema') === '1') await db.exec(await (await fetch('/schema.sql')).text())
  const { startBridge } = await import(q.get('service') + '/pglite/v1/bridge.mjs')
  try {
    window.bridge = await startBridge({ db, secret: q.get('secret') })
    return 'ok'
  } catch (err) {
    return 'refused ' + err.code + ': ' + err.message
  }
})()
</script>`

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' }

/** Serves the page, the schema and PGlite's dist directory on a free port. */
async function startWeb() {
  const dist = realpathSync(PGLITE_DIST)
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x')
    if (url.pathname === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html' })
      return res.end(PAGE)
    }
    if (url.pathname === '/schema.sql') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      return res.end(SCHEMA)
    }
    if (url.pathname.startsWith('/pglite/')) {
      const file = path.join(dist, path.normalize(url.pathname.slice('/pglite/'.length)))
      if (file.startsWith(dist + path.sep) && existsSync(file)) {
        res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' })
        return createReadStream(file).pipe(res)
      }
    }
    res.writeHead(404)
    res.end()
  })
  const port = await freePort()
  await new Promise((r) => server.listen(port, '127.0.0.1', r))
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) }
}

/** Starts the service on the browser bridge; resolves once it answers HTTP (not yet ready). */
async function startBridgeServer(extraArgs = []) {
  const bin = serverBinary()
  const port = await freePort()
  const secret = randomBytes(32).toString('hex')
  const args = [
    'serve', '--addr', `127.0.0.1:${port}`, '--jwt-secret', secret,
    '--source', 'notify', '--db-url', 'pglite-bridge://', '--pglite-bridge-secret', BRIDGE_SECRET,
    '--poll-interval', '1h', ...extraArgs,
  ]
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const srv = new ServerProcess({ proc, port, secret, args })
  await waitFor(
    async () => {
      if (srv.exited) throw new Error(`server exited: ${srv.logTail()}`)
      const res = await fetch(`${srv.httpUrl}/healthz`, { signal: AbortSignal.timeout(1000) })
      await res.body?.cancel()
      return true
    },
    { timeout: 20000, message: () => srv.logTail() }
  )
  return srv
}

async function healthz(srv) {
  const res = await fetch(`${srv.httpUrl}/healthz`, { signal: AbortSignal.timeout(2000) })
  await res.body?.cancel()
  return res.status
}

describe('PGlite in the browser through the bridge', () => {
  let srv, web, browser, context
  const clients = new ClientPool()
  const pages = []

  before(async () => {
    assert.ok(existsSync(PGLITE_DIST), `missing ${PGLITE_DIST}: run npm ci in e2e/`)
    web = await startWeb()
    srv = await startBridgeServer(process.env.E2E_BRIDGE_DEBUG ? ['--log-level', 'debug'] : [])
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
    // One browser profile: every tab sees the same IndexedDB, as in a user's browser.
    context = await browser.newContext()
  })

  after(async () => {
    await clients.closeAll()
    for (const p of pages) await p.close().catch(() => {})
    await browser?.close()
    await srv?.stop()
    await web?.close()
  })

  /** Opens the test page in a new tab; resolves with [page, window.started]. */
  async function openPage({ db, secret = BRIDGE_SECRET, schema = true }) {
    const page = await context.newPage()
    pages.push(page)
    const problems = []
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
    page.problems = problems
    const qs = new URLSearchParams({ db, secret, schema: schema ? '1' : '0', service: srv.httpUrl })
    await page.goto(`${web.url}/index.html?${qs}`)
    const started = await page.evaluate(() => window.started)
    return [page, started]
  }

  function withLog(fn) {
    return async (t) => {
      try {
        await fn(t)
      } catch (err) {
        err.message += `\n--- server output (tail) ---\n${srv.logTail(5000)}`
        throw err
      }
    }
  }

  async function userChannel(key, name) {
    const c = clients.create(srv, { accessToken: async () => key })
    await c.realtime.setAuth(key)
    const ch = c.channel(name)
    const rows = new Collector(`rows on ${name}`)
    const sys = new Collector(`system on ${name}`)
    ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'todos' }, rows.push)
    ch.on('system', {}, sys.push)
    await subscribed(ch)
    const m = await sys.waitFor((p) => p.extension === 'postgres_changes', 30000)
    assert.equal(m.status, 'ok', safeJson(m))
    return { rows, sys }
  }

  const insert = (page, userId, title) =>
    page.evaluate(
      async ([u, t]) => (await window.db.query('INSERT INTO todos (user_id, title) VALUES ($1, $2) RETURNING id', [u, t])).rows[0].id,
      [userId, title]
    )

  test(
    'rows inserted in the page reach their owner only, each once, across a reload; a second tab and wrong secrets are refused',
    { timeout: 300000 },
    withLog(async () => {
      const dbName = `idb://realtime-bridge-${randomUUID()}`
      let [page, started] = await openPage({ db: dbName })
      assert.equal(started, 'ok', page.problems.join('\n'))
      // The source streams through the tab: the service becomes ready.
      await waitFor(async () => (await healthz(srv)) === 200, { timeout: SLOW, message: () => srv.logTail() })

      // Refusals while the first tab holds the bridge: another tab, a wrong secret, the anon key.
      const [, second] = await openPage({ db: 'memory://', schema: false })
      assert.match(second, /^refused 4009: .*another bridge already holds this database/)
      const [, wrong] = await openPage({ db: 'memory://', schema: false, secret: 'not-the-secret' })
      assert.match(wrong, /^refused 4001: .*invalid bridge secret/)
      const [, anon] = await openPage({ db: 'memory://', schema: false, secret: srv.anonKey })
      assert.match(anon, /^refused 4001: /)
      // None of them disturbed the first tab's bridge.
      assert.equal(await page.evaluate(() => window.bridge.connections > 0), true)

      const alice = { id: randomUUID() }
      const bob = { id: randomUUID() }
      alice.key = userToken(srv.secret, { sub: alice.id })
      bob.key = userToken(srv.secret, { sub: bob.id })
      const a = await userChannel(alice.key, 'browser-alice')
      const b = await userChannel(bob.key, 'browser-bob')

      const want = { alice: [], bob: [] }
      const write = async (who, title) => want[who].push(Number(await insert(page, who === 'alice' ? alice.id : bob.id, title)))
      for (let i = 0; i < 5; i++) {
        await write('alice', `a${i}`)
        if (i % 2 === 0) await write('bob', `b${i}`)
      }
      await a.rows.waitForCount(want.alice.length, 30000)
      await b.rows.waitForCount(want.bob.length, 30000)

      // Mid-stream: more rows, then the tab reloads before they are necessarily delivered.
      for (let i = 5; i < 10; i++) await write(i % 2 ? 'bob' : 'alice', `r${i}`)
      const downBefore = a.sys.items.filter((m) => m.status === 'error').length
      await page.reload()
      started = await page.evaluate(() => window.started)
      assert.equal(started, 'ok', page.problems.join('\n'))
      // Subscribers were told the database went away, and that it is back.
      await a.sys.waitFor((m) => m.extension === 'postgres_changes' && m.status === 'error', 30000)
      assert.ok(a.sys.items.filter((m) => m.status === 'error').length > downBefore)
      await waitFor(() => a.sys.items.at(-1)?.status === 'ok', { timeout: SLOW, message: () => safeJson(a.sys.items) })

      // The reloaded tab reopened the same IndexedDB database: its rows survived.
      const count = await page.evaluate(async () => Number((await window.db.query('SELECT count(*) AS n FROM todos')).rows[0].n))
      assert.equal(count, want.alice.length + want.bob.length)

      for (let i = 10; i < 16; i++) await write(i % 3 ? 'alice' : 'bob', `after${i}`)
      // Barriers: the last row of each user; changes arrive in id order, so a duplicate of an
      // earlier row would have arrived before them.
      await write('alice', 'last-alice')
      await write('bob', 'last-bob')
      await a.rows.waitFor((p) => p.new.title === 'last-alice', 60000)
      await b.rows.waitFor((p) => p.new.title === 'last-bob', 60000)

      const ids = (c) => c.rows.items.map((p) => Number(p.new.id))
      assert.deepEqual(ids(a), want.alice, 'alice: every row of hers exactly once, in order')
      assert.deepEqual(ids(b), want.bob, 'bob: every row of his exactly once, in order')
      for (const p of a.rows.items) assert.equal(p.new.user_id, alice.id)
      for (const p of b.rows.items) assert.equal(p.new.user_id, bob.id)
      for (const p of [...a.rows.items, ...b.rows.items]) assert.ok(!('secret' in p.new), safeJson(p))
      assert.deepEqual(page.problems, [])

      // Closing the tab frees the bridge for another one.
      await page.close()
      const [page2, again] = await openPage({ db: dbName, schema: false })
      assert.equal(again, 'ok', page2.problems.join('\n'))
      await write2(page2, alice.id, 'from-second-tab')
      const m = await a.rows.waitFor((p) => p.new.title === 'from-second-tab', 60000)
      assert.equal(m.new.user_id, alice.id)
      assert.equal(a.rows.items.length, want.alice.length + 1)
    })
  )

  const write2 = (page, userId, title) => insert(page, userId, title)
})
