// PGlite browser bridge, served by the realtime service at /pglite/v1/bridge.mjs.
//
// A page that keeps its database in PGlite calls
//
//   import { PGlite } from '<your copy of @electric-sql/pglite>'
//   import { startBridge } from 'https://<realtime>/pglite/v1/bridge.mjs'
//   const db = new PGlite('idb://my-project')
//   const bridge = await startBridge({ db, secret: BRIDGE_SECRET })
//
// and the service then reaches that database through this tab: it opens virtual connections over
// one WebSocket, each carrying the PostgreSQL wire protocol, and this module runs their messages
// through the PGlite instance one at a time (a transaction keeps the instance until it ends).
// Notifications are relayed to every virtual connection that ran LISTEN on their channel, including
// those caused by the page's own db.query writes. The tunnel is described in docs/pglite.md,
// "Browser bridge". No dependencies: it uses only the PGlite instance it is given.

const OP_OPEN = 1
const OP_DATA = 2
const OP_CLOSE = 3
const SSL_REQUEST = 80877103
const CANCEL_REQUEST = 80877102
const MSG_NOTIFICATION = 0x41 // 'A'
const MSG_TERMINATE = 0x58 // 'X'
const MSG_QUERY = 0x51 // 'Q'
const MSG_PARSE = 0x50 // 'P'
const MSG_SYNC = 0x53 // 'S'
const MSG_READY = 0x5a // 'Z'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The bridge endpoint: `url` (http(s) or ws(s), the service's base or the endpoint itself) or this module's origin. */
function endpoint(url) {
  const u = new URL(url ?? '/pglite/v1/bridge', import.meta.url)
  if (!u.pathname.endsWith('/pglite/v1/bridge')) u.pathname = u.pathname.replace(/\/?$/, '/pglite/v1/bridge')
  if (u.protocol === 'http:') u.protocol = 'ws:'
  if (u.protocol === 'https:') u.protocol = 'wss:'
  return u.toString()
}

function frame(op, id, payload) {
  const out = new Uint8Array(5 + (payload ? payload.length : 0))
  out[0] = op
  new DataView(out.buffer).setUint32(1, id)
  if (payload) out.set(payload, 5)
  return out
}

function concat(chunks) {
  if (chunks.length === 1) return chunks[0]
  let n = 0
  for (const c of chunks) n += c.length
  const out = new Uint8Array(n)
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return out
}

const int32 = (b, at) => new DataView(b.buffer, b.byteOffset, b.byteLength).getInt32(at)

/** A simple-protocol Query message running ROLLBACK, for a connection that closed in a transaction. */
const ROLLBACK_MESSAGE = (() => {
  const sql = encoder.encode('ROLLBACK')
  const out = new Uint8Array(1 + 4 + sql.length + 1)
  out[0] = MSG_QUERY
  new DataView(out.buffer).setInt32(1, 4 + sql.length + 1)
  out.set(sql, 5)
  return out
})()

/** The status of the last ReadyForQuery ('Z') message in a response ('I', 'T' or 'E'), or null. */
function readyStatus(out) {
  let status = null
  let at = 0
  while (at + 5 <= out.length) {
    const len = 1 + int32(out, at + 1)
    if (out[at] === MSG_READY && len >= 6 && at + 5 < out.length) status = String.fromCharCode(out[at + 5])
    at += len
  }
  return status
}

/** A NotificationResponse ('A') message for a notification the page's own queries caused. */
function notificationMessage(channel, payload) {
  const ch = encoder.encode(channel)
  const pl = encoder.encode(payload ?? '')
  const len = 4 + 4 + ch.length + 1 + pl.length + 1
  const out = new Uint8Array(1 + len)
  const dv = new DataView(out.buffer)
  out[0] = MSG_NOTIFICATION
  dv.setInt32(1, len)
  dv.setInt32(5, 0)
  out.set(ch, 9)
  out.set(pl, 10 + ch.length)
  return out
}

/** The channel of a NotificationResponse message. */
function notificationChannel(msg) {
  let end = 9
  while (end < msg.length && msg[end] !== 0) end++
  return decoder.decode(msg.subarray(9, end))
}

/**
 * The LISTEN / UNLISTEN statements of sql, in order, as [{ listen, channel }] (channel '*' for
 * UNLISTEN *): only whole top-level statements count; comments, string literals and dollar-quoted
 * bodies are skipped; quoted channel names are kept as written and bare ones folded to lower case
 * (docs/pglite.md, "Notifications"). The Node bridge (cmd/pglite-bridge) uses it too.
 */
export function listenStatements(sql) {
  if (!/listen/i.test(sql)) return []
  const out = []
  for (const stmt of splitStatements(sql)) {
    const m = /^\s*(UN)?LISTEN\s+(\*|"(?:[^"]|"")+"|[^\s";]+)\s*$/i.exec(stmt)
    if (!m) continue
    let channel = m[2]
    if (channel.startsWith('"')) channel = channel.slice(1, -1).replaceAll('""', '"')
    else if (channel !== '*') channel = channel.replace(/[A-Z]/g, (ch) => ch.toLowerCase())
    if (channel === '*' && !m[1]) continue
    out.push({ listen: !m[1], channel })
  }
  return out
}

/** Applies the LISTEN / UNLISTEN statements of sql to a connection's set of channels. Exported for its tests. */
export function trackListens(sql, listens) {
  for (const st of listenStatements(sql)) {
    if (st.listen) listens.add(st.channel)
    else if (st.channel === '*') listens.clear()
    else listens.delete(st.channel)
  }
}

/** Cuts sql at top-level semicolons: comments dropped, quoted identifiers kept, string literals and dollar-quoted bodies emptied. */
function splitStatements(sql) {
  const out = []
  let cur = ''
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i]
    if (ch === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i)
      i = nl < 0 ? sql.length : nl
      cur += ' '
    } else if (ch === '/' && sql[i + 1] === '*') {
      // Block comments nest in PostgreSQL.
      let depth = 1
      let j = i + 2
      while (j < sql.length && depth > 0) {
        if (sql[j] === '/' && sql[j + 1] === '*') {
          depth++
          j += 2
        } else if (sql[j] === '*' && sql[j + 1] === '/') {
          depth--
          j += 2
        } else j++
      }
      i = j - 1
      cur += ' '
    } else if (ch === "'") {
      // E'' strings may escape a quote with a backslash.
      const escapes = /[eE]$/.test(cur) && !/[\w$]$/.test(cur.slice(0, -1))
      let j = i + 1
      while (j < sql.length) {
        if (escapes && sql[j] === '\\') j += 2
        else if (sql[j] === "'" && sql[j + 1] === "'") j += 2
        else if (sql[j] === "'") break
        else j++
      }
      i = j
      cur += "''"
    } else if (ch === '"') {
      let j = i + 1
      while (j < sql.length && !(sql[j] === '"' && sql[j + 1] !== '"')) j += sql[j] === '"' ? 2 : 1
      cur += sql.slice(i, j + 1)
      i = j
    } else if (ch === '$' && !/[\w$]$/.test(cur)) {
      const tag = /^\$(?:[A-Za-z_\x80-\uffff][\w\x80-\uffff]*)?\$/.exec(sql.slice(i))
      if (!tag) {
        cur += ch
        continue
      }
      const e = sql.indexOf(tag[0], i + tag[0].length)
      i = e < 0 ? sql.length : e + tag[0].length - 1
      cur += "''"
    } else if (ch === ';') {
      out.push(cur)
      cur = ''
    } else {
      cur += ch
    }
  }
  out.push(cur)
  return out
}

const READ_ONLY_TAGS = /^(SELECT|SHOW|LISTEN|UNLISTEN|BEGIN|START TRANSACTION|SET|RESET|FETCH|DECLARE|CLOSE|DEALLOCATE|DISCARD|EXPLAIN|COMMIT|ROLLBACK)\b/
const MSG_COMMAND_COMPLETE = 0x43 // 'C'

/**
 * Whether a message's statements may have changed the database: any command tag but a read's
 * (SELECT and the like, and the end of a transaction). Messages that complete no statement
 * (startup, Parse, Bind, Sync, errors) count as reads. A SELECT that calls a writing function is
 * not synced at once; the next write syncs it.
 */
function mayHaveWritten(msg, out) {
  if (msg[0] !== MSG_QUERY && msg[0] !== 0x45 /* Execute */) return false
  let at = 0
  while (at + 5 <= out.length) {
    const len = 1 + int32(out, at + 1)
    if (out[at] === MSG_COMMAND_COMPLETE) {
      let end = at + 5
      while (end < at + len && out[end] !== 0) end++
      if (!READ_ONLY_TAGS.test(decoder.decode(out.subarray(at + 5, end)))) return true
    }
    at += len
  }
  return false
}

class Tunnel {
  constructor(db, ws, log, relaxed) {
    this.db = db
    this.ws = ws
    this.log = log
    this.relaxed = relaxed // answer writes before their IndexedDB sync ends, as the page's PGlite does
    this.conns = new Map() // id -> {id, buf, started, listens, closed, status, sequence}
    this.queue = [] // {conn, msg} in arrival order
    this.running = false // pump is running: only it takes PGlite's lock for virtual connections
    this.wake = null // resolves the turn waiting for its connection's next message or close
    this.dirty = false // written since the last sync to IndexedDB
    this.stats = { messages: 0, relayed: 0, hostNotifications: 0 }
    this.unsubscribe = db.onNotification((channel, payload) => {
      this.stats.hostNotifications++
      this.relay(channel, notificationMessage(channel, payload), null)
    })
  }

  onFrame(data) {
    const b = new Uint8Array(data)
    if (b.length < 5) return
    const op = b[0]
    const id = new DataView(b.buffer, b.byteOffset).getUint32(1)
    if (op === OP_OPEN) {
      // status: the last ReadyForQuery status; sequence: an extended-protocol sequence awaits its Sync.
      this.conns.set(id, { id, buf: new Uint8Array(0), started: false, listens: new Set(), closed: false, status: 'I', sequence: false })
      return
    }
    const conn = this.conns.get(id)
    if (!conn) return
    if (op === OP_CLOSE) this.drop(conn, false)
    else if (op === OP_DATA) {
      conn.buf = conn.buf.length ? concat([conn.buf, b.subarray(5)]) : b.slice(5)
      this.split(conn)
    }
  }

  /** Cuts a connection's buffered bytes into protocol messages and queues them. */
  split(conn) {
    while (!conn.closed) {
      const buf = conn.buf
      let len
      if (!conn.started) {
        if (buf.length < 8) return
        len = int32(buf, 0)
        if (buf.length < len) return
        const code = int32(buf, 4)
        conn.buf = buf.slice(len)
        if (code === SSL_REQUEST) {
          this.send(conn, encoder.encode('N')) // no TLS inside the tunnel
          continue
        }
        if (code === CANCEL_REQUEST) continue // not supported
        conn.started = true
        this.enqueue(conn, buf.subarray(0, len), true)
        continue
      }
      if (buf.length < 5) return
      len = 1 + int32(buf, 1)
      if (buf.length < len) return
      const msg = buf.subarray(0, len)
      conn.buf = buf.slice(len)
      if (msg[0] === MSG_TERMINATE) {
        this.drop(conn, true)
        return
      }
      if (msg[0] === MSG_QUERY) trackListens(decoder.decode(msg.subarray(5, len - 1)), conn.listens)
      else if (msg[0] === MSG_PARSE) {
        let at = 5
        while (at < len && msg[at] !== 0) at++
        let end = at + 1
        while (end < len && msg[end] !== 0) end++
        trackListens(decoder.decode(msg.subarray(at + 1, end)), conn.listens)
      }
      this.enqueue(conn, msg)
    }
  }

  enqueue(conn, msg, startup = false) {
    this.queue.push({ conn, msg, startup })
    this.wakeTurn()
    this.pump()
  }

  /** Wakes a turn waiting for its connection's next message (or its close). */
  wakeTurn() {
    const w = this.wake
    this.wake = null
    w?.()
  }

  /**
   * Gives PGlite to one virtual connection at a time, in order of arrival (docs/pglite.md §Browser
   * bridge). A turn holds PGlite's lock, so the page's own db.query / db.exec cannot run between
   * the connection's messages: it lasts from the connection's first queued message until the
   * connection is idle again (see turn).
   */
  async pump() {
    if (this.running) return
    this.running = true
    try {
      while (this.queue.length) {
        const { conn } = this.queue[0]
        await this.db.runExclusive(() => this.turn(conn))
      }
    } finally {
      this.running = false
    }
  }

  /**
   * Runs `conn`'s messages while holding PGlite's lock, until PGlite answered an idle
   * ReadyForQuery ('Z' with status 'I') with no extended-protocol sequence left open (the last
   * Parse/Bind/Execute answered by a Sync). In a transaction or mid-sequence it waits for the
   * connection's next message; if the connection closes instead, its transaction is rolled back.
   */
  async turn(conn) {
    for (;;) {
      const i = this.queue.findIndex((e) => e.conn === conn)
      if (i < 0) {
        if (conn.closed) {
          if (this.db.isInTransaction()) await this.run(ROLLBACK_MESSAGE)
          conn.status = 'I'
          conn.sequence = false
          return
        }
        if (conn.status === 'I' && !conn.sequence) return
        await new Promise((resolve) => (this.wake = resolve))
        continue
      }
      const { msg, startup } = this.queue.splice(i, 1)[0]
      if (conn.closed) continue
      this.stats.messages++
      let out
      try {
        out = await this.run(msg)
      } catch (err) {
        this.log?.('pglite bridge: message failed', err)
        this.drop(conn, true)
        continue
      }
      // Query and Sync end a sequence (each answers with ReadyForQuery); the startup message is
      // answered the same way. Every other message (Parse, Bind, Describe, Execute, Close, Flush)
      // belongs to a sequence that a Sync ends.
      conn.sequence = !startup && msg[0] !== MSG_QUERY && msg[0] !== MSG_SYNC
      const status = readyStatus(out)
      if (status) conn.status = status
      // Persist to IndexedDB only after statements that may have written: syncing the whole
      // file system after every read would make each of the service's polls cost a sync.
      if (mayHaveWritten(msg, out)) this.dirty = true
      if (this.dirty && !this.db.isInTransaction()) {
        this.dirty = false // a transaction's writes are synced once, when it has ended
        if (this.relaxed) this.db.syncToFs().catch((err) => this.log?.('pglite bridge: sync failed', err))
        else await this.db.syncToFs()
      }
      if (out.length) this.route(conn, out)
    }
  }

  /** Runs one protocol message through PGlite (the caller holds its lock); resolves with the response bytes. */
  async run(msg) {
    const chunks = []
    await this.db.execProtocolRawStream(msg, { syncToFs: false, onRawData: (d) => chunks.push(d.slice()) })
    return chunks.length ? concat(chunks) : new Uint8Array(0)
  }

  /** Sends a response to its connection, except notifications, which go to every listener of their channel. */
  route(conn, bytes) {
    const mine = []
    let at = 0
    while (at + 5 <= bytes.length) {
      const len = 1 + int32(bytes, at + 1)
      const msg = bytes.subarray(at, at + len)
      at += len
      if (msg[0] !== MSG_NOTIFICATION) {
        mine.push(msg)
        continue
      }
      const channel = notificationChannel(msg)
      if (conn.listens.has(channel)) mine.push(msg)
      this.relay(channel, msg, conn)
    }
    if (at < bytes.length) mine.push(bytes.subarray(at))
    if (mine.length) this.send(conn, concat(mine))
  }

  relay(channel, msg, except) {
    for (const c of this.conns.values()) {
      if (c !== except && c.listens.has(channel)) {
        this.stats.relayed++
        this.send(c, msg)
      }
    }
  }

  send(conn, bytes) {
    if (conn.closed || this.ws.readyState !== WebSocket.OPEN) return
    this.ws.send(frame(OP_DATA, conn.id, bytes))
  }

  drop(conn, tell) {
    if (conn.closed) return
    conn.closed = true
    this.conns.delete(conn.id)
    this.queue = this.queue.filter((e) => e.conn !== conn)
    if (tell && this.ws.readyState === WebSocket.OPEN) this.ws.send(frame(OP_CLOSE, conn.id))
    this.wakeTurn()
    this.pump()
  }

  end() {
    this.unsubscribe?.()
    for (const c of [...this.conns.values()]) this.drop(c, false)
  }
}

/**
 * Connects `db` (a PGlite instance) to the realtime service. Resolves once the service accepted the
 * bridge, with `{ close(), closed, connections }`: `closed` resolves with `{ code, reason }` when
 * the bridge ends. Rejects with an Error (its `code` is the WebSocket close code, e.g. 4001 for a
 * wrong secret, 4009 when another tab holds the bridge) when the service refuses it.
 *
 * @param {object} opts
 * @param {import('@electric-sql/pglite').PGlite} opts.db the page's PGlite
 * @param {string} opts.secret the project's bridge secret (or its service-role key; never the anon key)
 * @param {string} [opts.url] the service (http(s)/ws(s) base URL or the endpoint); default: where this module came from
 * @param {(msg: string, ...args: any[]) => void} [opts.log] diagnostics
 * @param {boolean} [opts.relaxedDurability] pass true when `db` was opened with PGlite's
 *   relaxedDurability: the service's writes are then answered before their IndexedDB sync ends,
 *   as the page's own are (docs/pglite.md, "Browser bridge")
 */
export async function startBridge({ db, secret, url, log, relaxedDurability = false } = {}) {
  if (!db || typeof db.execProtocolRawStream !== 'function') throw new TypeError('startBridge: db must be a PGlite instance')
  await db.waitReady
  const ws = new WebSocket(endpoint(url))
  ws.binaryType = 'arraybuffer'
  let tunnel = null
  let resolveClosed
  const closed = new Promise((r) => (resolveClosed = r))
  return new Promise((resolve, reject) => {
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', secret }))
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        if (!tunnel && JSON.parse(ev.data).type === 'ready') {
          tunnel = new Tunnel(db, ws, log, relaxedDurability)
          const onHide = () => ws.close(1000, 'page hidden')
          addEventListener('pagehide', onHide)
          closed.then(() => removeEventListener('pagehide', onHide))
          resolve({
            close: () => ws.close(1000, 'closed by the page'),
            closed,
            get connections() {
              return tunnel.conns.size
            },
            /** Counters and each virtual connection's LISTEN channels, for diagnostics. */
            get stats() {
              const listening = {}
              for (const c of tunnel.conns.values()) listening[c.id] = [...c.listens]
              return { ...tunnel.stats, inTransaction: db.isInTransaction(), queued: tunnel.queue.length, listening }
            },
          })
        }
        return
      }
      tunnel?.onFrame(ev.data)
    }
    ws.onclose = (ev) => {
      tunnel?.end()
      resolveClosed({ code: ev.code, reason: ev.reason })
      if (!tunnel) {
        const err = new Error(ev.reason || `pglite bridge: connection closed (code ${ev.code})`)
        err.code = ev.code
        reject(err)
      }
    }
  })
}
