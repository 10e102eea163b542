// The browser bridge module (realtime/pglitebridge/bridge.mjs) keeps a virtual connection's turn
// on PGlite until that connection is idle (docs/pglite.md §Browser bridge, "One connection at a
// time"): the page's own db.query writes must never run inside the service's open transaction, nor
// between the messages of its extended-protocol sequence. Headless Chromium runs the module against
// a page that inserts rows in a tight loop; this test plays the service's side of the tunnel (the
// hello / frame protocol of docs/pglite.md §Browser bridge, spoken over a `ws` server) and sends,
// through one virtual connection, transactions and Parse/Bind/Execute/Sync sequences with pauses
// between their messages, which is where the page's writes would slip in.

import assert from 'node:assert/strict'
import { createReadStream, existsSync, readFileSync, realpathSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { WebSocketServer } from 'ws'
import { freePort } from '../lib/server.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const PGLITE_DIST = path.resolve(here, '../node_modules/@electric-sql/pglite/dist')
const MODULE = path.resolve(here, '../../realtime/pglitebridge/bridge.mjs')
const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run']
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' }

const OP_OPEN = 1
const OP_DATA = 2
const OP_CLOSE = 3

// The page: PGlite in memory, a table whose rows record the transaction that wrote them, the
// bridge, and window.startLoop() which inserts 'page' rows one db.query per task until
// window.stopLoop() and counts them.
const PAGE = `<!doctype html><meta charset="utf-8"><title>bridge lock test</title>
<script type="module">
import { PGlite } from '/pglite/index.js'
import { startBridge } from '/pglite/v1/bridge.mjs'
window.started = (async () => {
  const db = new PGlite('memory://')
  await db.exec("CREATE TABLE t (id serial PRIMARY KEY, who text NOT NULL, tx bigint NOT NULL DEFAULT txid_current())")
  window.db = db
  window.bridge = await startBridge({ db, secret: 's' })
  return 'ok'
})()
let running = false
window.pageRows = 0
window.startLoop = () => {
  running = true
  window.loop = (async () => {
    while (running) {
      await window.db.query("INSERT INTO t (who) VALUES ('page')")
      window.pageRows++
      // Yield to the event loop (as a page's UI would): PGlite answers within microtasks, so a
      // bare await loop would starve the WebSocket and everything else on the page.
      await new Promise((r) => setTimeout(r, 0))
    }
  })()
}
window.stopLoop = async () => { running = false; await window.loop; return window.pageRows }
</script>`

const enc = new TextEncoder()
const dec = new TextDecoder()

function frame(op, id, payload = new Uint8Array(0)) {
  const out = Buffer.alloc(5 + payload.length)
  out[0] = op
  out.writeUInt32BE(id, 1)
  Buffer.from(payload).copy(out, 5)
  return out
}

/** A protocol message: type byte, length, body. */
function message(type, ...parts) {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p + '\0') : p)))
  const head = Buffer.alloc(5)
  head[0] = type.charCodeAt(0)
  head.writeInt32BE(4 + body.length, 1)
  return Buffer.concat([head, body])
}

const int16 = (n) => {
  const b = Buffer.alloc(2)
  b.writeInt16BE(n)
  return b
}
const int32 = (n) => {
  const b = Buffer.alloc(4)
  b.writeInt32BE(n)
  return b
}

function startup() {
  const body = Buffer.from('user\0postgres\0database\0postgres\0\0')
  return Buffer.concat([int32(8 + body.length), int32(196608), body])
}

/** One virtual connection of the fake service: sends messages, reads responses up to ReadyForQuery. */
class VirtualConn {
  constructor(ws, id) {
    this.ws = ws
    this.id = id
    this.buf = Buffer.alloc(0)
    this.msgs = []
    this.waiter = null
    ws.send(frame(OP_OPEN, id))
  }

  onData(bytes) {
    this.buf = Buffer.concat([this.buf, bytes])
    while (this.buf.length >= 5) {
      const len = 1 + this.buf.readInt32BE(1)
      if (this.buf.length < len) break
      this.msgs.push(this.buf.subarray(0, len))
      this.buf = this.buf.subarray(len)
    }
    this.waiter?.()
  }

  send(...msgs) {
    this.ws.send(frame(OP_DATA, this.id, Buffer.concat(msgs)))
  }

  /** Resolves with the messages up to and including the next ReadyForQuery. */
  async ready() {
    for (;;) {
      const i = this.msgs.findIndex((m) => m[0] === 0x5a)
      if (i >= 0) return this.msgs.splice(0, i + 1)
      await new Promise((r) => (this.waiter = r))
    }
  }

  /** Runs a simple query; resolves with {rows, error, status}. */
  async query(sql) {
    this.send(message('Q', sql))
    return result(await this.ready())
  }

  close() {
    this.ws.send(frame(OP_CLOSE, this.id))
  }
}

/** Decodes a response: DataRow text columns, the first ErrorResponse's message, the final status. */
function result(msgs) {
  const rows = []
  let error = null
  for (const m of msgs) {
    if (m[0] === 0x44) {
      const n = m.readInt16BE(5)
      const row = []
      let at = 7
      for (let c = 0; c < n; c++) {
        const len = m.readInt32BE(at)
        at += 4
        row.push(len < 0 ? null : dec.decode(m.subarray(at, at + len)))
        if (len > 0) at += len
      }
      rows.push(row)
    } else if (m[0] === 0x45 && !error) {
      const fields = m.subarray(5).toString().split('\0')
      error = fields.find((f) => f.startsWith('M'))?.slice(1) ?? 'error'
    }
  }
  return { rows, error, status: String.fromCharCode(msgs.at(-1)[5]) }
}

describe('browser bridge: a connection keeps PGlite until it is idle', () => {
  let server, wss, browser, page, sock
  const conns = new Map()
  let nextId = 1

  before(async () => {
    assert.ok(existsSync(PGLITE_DIST), `missing ${PGLITE_DIST}: run npm ci in e2e/`)
    const dist = realpathSync(PGLITE_DIST)
    server = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://x')
      if (url.pathname === '/index.html') {
        res.writeHead(200, { 'content-type': 'text/html' })
        return res.end(PAGE)
      }
      if (url.pathname === '/pglite/v1/bridge.mjs') {
        res.writeHead(200, { 'content-type': 'text/javascript' })
        return res.end(readFileSync(MODULE))
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
    wss = new WebSocketServer({ server, path: '/pglite/v1/bridge' })
    const hello = new Promise((resolve) =>
      wss.on('connection', (ws) => {
        ws.once('message', (data, binary) => {
          assert.equal(binary, false)
          assert.equal(JSON.parse(data.toString()).type, 'hello')
          ws.on('message', (d) => {
            const b = Buffer.from(d)
            const c = conns.get(b.readUInt32BE(1))
            if (c && b[0] === OP_DATA) c.onData(b.subarray(5))
          })
          ws.send(JSON.stringify({ type: 'ready' }))
          resolve(ws)
        })
      })
    )
    const port = await freePort()
    await new Promise((r) => server.listen(port, '127.0.0.1', r))
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
    page = await browser.newPage()
    const problems = []
    page.on('pageerror', (err) => problems.push(err.message))
    await page.goto(`http://127.0.0.1:${port}/index.html`)
    assert.equal(await page.evaluate(() => window.started), 'ok', problems.join('\n'))
    sock = await hello
  })

  after(async () => {
    await browser?.close()
    wss?.close()
    await new Promise((r) => (server ? server.close(r) : r()))
  })

  async function open() {
    const c = new VirtualConn(sock, nextId++)
    conns.set(c.id, c)
    c.send(startup())
    const r = result(await c.ready())
    assert.equal(r.error, null)
    assert.equal(r.status, 'I')
    return c
  }

  /** Waits until the page inserted at least one more row than `n` (the loop is running). */
  async function pageProgressed(n) {
    for (;;) {
      if ((await page.evaluate(() => window.pageRows)) > n) return
      await sleep(5)
    }
  }

  const pause = () => sleep(30) // room for the page's loop to run, were it allowed to

  test('transactions, sequences and a close mid-transaction never let the page in', { timeout: 180000 }, async () => {
    const svc = await open()
    await page.evaluate(() => window.startLoop())
    await pageProgressed(0)

    const serviceTx = []
    for (let k = 0; k < 10; k++) {
      assert.equal((await svc.query('BEGIN')).status, 'T')
      await pause()
      const ins = await svc.query(`INSERT INTO t (who) VALUES ('svc') RETURNING tx`)
      assert.equal(ins.error, null)
      serviceTx.push(ins.rows[0][0])
      await pause()
      const again = await svc.query('SELECT txid_current()')
      assert.equal(again.rows[0][0], ins.rows[0][0])
      await pause()
      assert.equal((await svc.query('COMMIT')).status, 'I')
      // The page is not starved between the service's transactions.
      await pageProgressed(await page.evaluate(() => window.pageRows))
    }

    // A transaction the service rolls back: the page's rows written meanwhile (if any slipped in)
    // would go with it; the page's count below catches that.
    for (let k = 0; k < 5; k++) {
      await svc.query('BEGIN')
      await svc.query(`INSERT INTO t (who) VALUES ('svc-rolled-back')`)
      await pause()
      assert.equal((await svc.query('ROLLBACK')).status, 'I')
    }

    // Extended protocol: the unnamed statement and portal must survive pauses between messages.
    for (let k = 0; k < 10; k++) {
      svc.send(message('P', '', "INSERT INTO t (who) VALUES ($1) RETURNING who", int16(0)))
      await pause()
      svc.send(message('B', '', '', int16(0), int16(1), int32(7), Buffer.from(`svc-ext`), int16(0)))
      await pause()
      svc.send(message('E', '', int32(0)))
      await pause()
      svc.send(message('S'))
      const r = result(await svc.ready())
      assert.equal(r.error, null)
      assert.deepEqual(r.rows, [['svc-ext']])
      assert.equal(r.status, 'I')
    }

    // A connection that goes away mid-transaction: rolled back, and the page carries on.
    const gone = await open()
    await gone.query('BEGIN')
    await gone.query(`INSERT INTO t (who) VALUES ('svc-closed')`)
    await pause()
    const before = await page.evaluate(() => window.pageRows)
    gone.close()
    await pageProgressed(before)

    const pageRows = await page.evaluate(() => window.stopLoop())
    const count = async (sql) => Number((await svc.query(sql)).rows[0][0])
    assert.equal(await count(`SELECT count(*) FROM t WHERE who = 'page'`), pageRows, 'no page row was rolled back with the service')
    const list = serviceTx.map((x) => `'${x}'`).join(',')
    assert.equal(await count(`SELECT count(*) FROM t WHERE who = 'page' AND tx::text IN (${list})`), 0, "no page row ran in the service's transaction")
    assert.equal(await count(`SELECT count(*) FROM t WHERE who = 'svc'`), 10)
    assert.equal(await count(`SELECT count(*) FROM t WHERE who = 'svc-ext'`), 10)
    assert.equal(await count(`SELECT count(*) FROM t WHERE who IN ('svc-rolled-back', 'svc-closed')`), 0)
    assert.equal(await page.evaluate(() => window.db.isInTransaction()), false)
  })
})
