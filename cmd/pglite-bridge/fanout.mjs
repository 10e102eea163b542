// Notification fan-out for PGLiteSocketServer (@electric-sql/pglite-socket).
//
// Every socket of a PGLiteSocketServer is multiplexed onto PGlite's one
// backend session, and the backend writes a NotificationResponse ('A'
// message) into the output of the exchange that committed, so stock
// pglite-server hands each notification to the committing socket and never
// to the sockets that ran LISTEN. relayNotifications fixes that: it keeps,
// per socket, the channels that socket LISTENs on, cuts the 'A' messages out
// of every exchange's output and writes each to the sockets subscribed to
// its channel (the committing one included when it listens), and turns the
// notifications of the host's own db.query/db.exec writes into 'A' messages
// for them too. See docs/pglite.md ("Node bridge").
//
// Only Uint8Array and TextDecoder are used, no Node API. The SQL of LISTEN
// statements is read by the browser bridge's parser (one rule for both).

import { listenStatements as sqlListenStatements } from '../../realtime/pglitebridge/bridge.mjs'

const MSG_QUERY = 0x51 // 'Q'
const MSG_PARSE = 0x50 // 'P'
const MSG_NOTIFICATION = 0x41 // 'A'

// Handler ids of PGLiteSocketHandler start at 1; 0 marks the bridge's own
// statements (the re-LISTEN after another socket's UNLISTEN).
const BRIDGE_HANDLER = 0

const utf8 = new TextDecoder()
const utf8enc = new TextEncoder()

/**
 * Relays notifications to every listening socket of server (a
 * PGLiteSocketServer over db), by wrapping its query queue. Call it before
 * server.start(). Returns a function that undoes the host-notification
 * listener.
 *
 * @param {import('@electric-sql/pglite-socket').PGLiteSocketServer} server
 * @param {import('@electric-sql/pglite').PGlite} db
 * @param {{ backendPid?: number, log?: (msg: string) => void }} [opts]
 */
export function relayNotifications(server, db, opts = {}) {
  const queue = server.queryQueue
  if (!queue || typeof queue.enqueue !== 'function' || typeof queue.clearQueueForHandler !== 'function') {
    throw new Error('pglite-bridge: unsupported @electric-sql/pglite-socket version (no query queue to wrap)')
  }
  const log = opts.log ?? (() => {})
  const backendPid = opts.backendPid ?? 0
  /** @type {Map<number, Set<string>>} channels each socket LISTENs on */
  const subs = new Map()
  /** @type {Map<number, (data: Uint8Array) => void>} each socket's writer */
  const writers = new Map()

  const deliver = (frame, channel) => {
    for (const [hid, chans] of subs) {
      if (!chans.has(channel)) continue
      const w = writers.get(hid)
      if (w) w(frame)
    }
  }

  const origEnqueue = queue.enqueue.bind(queue)
  const enqueue = (hid, message, onData) => {
    if (hid !== BRIDGE_HANDLER) writers.set(hid, onData)
    const stmts = listenStatements(message)
    let relisten = []
    for (const st of stmts) {
      let chans = subs.get(hid)
      if (st.listen) {
        if (!chans) subs.set(hid, (chans = new Set()))
        chans.add(st.channel)
        continue
      }
      // UNLISTEN runs on the shared backend: listen again for the
      // channels other sockets still hold.
      const dropped = st.channel === '*' ? [...(chans ?? [])] : [st.channel]
      if (st.channel === '*') chans?.clear()
      else chans?.delete(st.channel)
      if (st.channel === '*') {
        relisten = [...heldChannels(subs)]
      } else if (dropped.some((c) => heldBy(subs, c))) {
        relisten.push(st.channel)
      }
    }
    const split = splitter(onData, (frame) => {
      const channel = notificationChannel(frame)
      if (channel !== null) deliver(frame, channel)
    })
    const done = origEnqueue(hid, message, split)
    return done.then(
      (n) => {
        split.flush()
        if (relisten.length > 0) {
          const sql = relisten.map((c) => `LISTEN ${quoteIdent(c)}`).join('; ')
          enqueue(BRIDGE_HANDLER, queryMessage(sql), () => {}).catch((err) =>
            log(`re-LISTEN after UNLISTEN failed: ${err?.message ?? err}`),
          )
        }
        return n
      },
      (err) => {
        split.flush()
        throw err
      },
    )
  }
  queue.enqueue = enqueue

  // A closed socket stops receiving; the backend keeps listening (harmless:
  // notifications nobody holds are dropped here).
  const origClear = queue.clearQueueForHandler.bind(queue)
  queue.clearQueueForHandler = (hid) => {
    subs.delete(hid)
    writers.delete(hid)
    return origClear(hid)
  }

  // The host's own writes: PGlite parses their output and calls its
  // notification listeners (the raw stream of the sockets never does).
  const off = db.onNotification((channel, payload) => {
    deliver(notificationMessage(backendPid, channel, payload), channel)
  })
  return off
}

// heldChannels returns every channel some socket listens on.
function heldChannels(subs) {
  const all = new Set()
  for (const chans of subs.values()) for (const c of chans) all.add(c)
  return all
}

function heldBy(subs, channel) {
  for (const chans of subs.values()) if (chans.has(channel)) return true
  return false
}

/**
 * splitter returns an output callback that passes complete protocol
 * messages on to onData, except 'A' messages, which go to onNote. A message
 * cut between two chunks is held until its end arrives; flush passes on
 * whatever is left (nothing, for a well-formed exchange).
 */
function splitter(onData, onNote) {
  let rest = null
  const fn = (chunk) => {
    let buf = chunk
    if (rest) {
      buf = new Uint8Array(rest.length + chunk.length)
      buf.set(rest, 0)
      buf.set(chunk, rest.length)
      rest = null
    }
    let pos = 0
    let passFrom = 0
    while (pos + 5 <= buf.length) {
      const len = readInt32(buf, pos + 1)
      const end = pos + 1 + len
      if (len < 4 || end > buf.length) break
      if (buf[pos] === MSG_NOTIFICATION) {
        if (pos > passFrom) onData(buf.subarray(passFrom, pos))
        onNote(buf.slice(pos, end))
        passFrom = end
      }
      pos = end
    }
    if (pos > passFrom) onData(buf.subarray(passFrom, pos))
    if (pos < buf.length) rest = buf.slice(pos)
  }
  fn.flush = () => {
    if (rest) {
      const r = rest
      rest = null
      onData(r)
    }
  }
  return fn
}

function readInt32(b, at) {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0
}

function writeInt32(b, at, v) {
  b[at] = (v >>> 24) & 0xff
  b[at + 1] = (v >>> 16) & 0xff
  b[at + 2] = (v >>> 8) & 0xff
  b[at + 3] = v & 0xff
}

// notificationChannel returns the channel of an 'A' message, or null.
function notificationChannel(frame) {
  if (frame.length < 10) return null
  const start = 9 // type, length, backend pid
  const nul = frame.indexOf(0, start)
  if (nul < 0) return null
  return utf8.decode(frame.subarray(start, nul))
}

/** notificationMessage encodes a NotificationResponse. */
export function notificationMessage(pid, channel, payload) {
  const c = utf8enc.encode(channel)
  const p = utf8enc.encode(payload)
  const len = 4 + 4 + c.length + 1 + p.length + 1
  const b = new Uint8Array(1 + len)
  b[0] = MSG_NOTIFICATION
  writeInt32(b, 1, len)
  writeInt32(b, 5, pid)
  b.set(c, 9)
  b.set(p, 9 + c.length + 1)
  return b
}

// queryMessage encodes a simple-protocol Query.
function queryMessage(sql) {
  const q = utf8enc.encode(sql)
  const b = new Uint8Array(1 + 4 + q.length + 1)
  b[0] = MSG_QUERY
  writeInt32(b, 1, 4 + q.length + 1)
  b.set(q, 5)
  return b
}

function quoteIdent(s) {
  return '"' + s.replaceAll('"', '""') + '"'
}

/**
 * listenStatements returns the LISTEN and UNLISTEN statements of a Query or
 * Parse message, in order: [{ listen: bool, channel }], channel '*' for
 * UNLISTEN *. The SQL is read by the browser bridge's parser, so both
 * bridges follow the same rule (comments, literals and dollar-quoted bodies
 * skipped; a statement counts only when LISTEN/UNLISTEN is all it does).
 */
export function listenStatements(message) {
  if (message.length < 6) return []
  let sql
  if (message[0] === MSG_QUERY) {
    const nul = message.indexOf(0, 5)
    sql = utf8.decode(message.subarray(5, nul < 0 ? message.length : nul))
  } else if (message[0] === MSG_PARSE) {
    const nameEnd = message.indexOf(0, 5)
    if (nameEnd < 0) return []
    const nul = message.indexOf(0, nameEnd + 1)
    sql = utf8.decode(message.subarray(nameEnd + 1, nul < 0 ? message.length : nul))
  } else {
    return []
  }
  return sqlListenStatements(sql)
}
