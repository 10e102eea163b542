// A raw Phoenix/Realtime WebSocket client for protocol-level assertions (built on `ws`).
//
// Every inbound frame is decoded into a uniform record:
//   text vsn 2.0.0: {kind:'text', join_ref, ref, topic, event, payload, raw}
//   text vsn 1.0.0: {kind:'text', join_ref (undefined unless present), ref, topic, event, payload, raw, object}
//   binary kind 4 : {kind:'binary', type:4, topic, event, meta (object|null), encoding, payload, rawBytes}
//   other binary  : {kind:'binary', type:<byte>, rawBytes}
// Records are queued; next(pred) takes the first matching record (earlier non-matching ones stay).

import http from 'node:http'
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import { safeJson } from './wait.mjs'

/** Encodes a kind-3 USER_BROADCAST_PUSH frame exactly as realtime-js 2.119.0 does. */
export function encodeUserBroadcastPush({ joinRef = '', ref = '', topic, event, metadata = '', encoding = 1, payload }) {
  const enc = (s) => Buffer.from(s ?? '', 'utf8')
  const jr = enc(joinRef)
  const r = enc(ref)
  const t = enc(topic)
  const e = enc(event)
  const m = enc(typeof metadata === 'string' ? metadata : JSON.stringify(metadata))
  let body
  if (encoding === 1) body = enc(JSON.stringify(payload ?? {}))
  else body = Buffer.from(payload instanceof ArrayBuffer ? new Uint8Array(payload) : payload)
  const header = Buffer.from([3, jr.length, r.length, t.length, e.length, m.length, encoding])
  return Buffer.concat([header, jr, r, t, e, m, body])
}

/** Decodes a binary frame; kind 4 is parsed, anything else is returned with its kind byte. */
export function decodeBinary(buf) {
  const bytes = Buffer.from(buf)
  const type = bytes[0]
  if (type !== 4) return { kind: 'binary', type, rawBytes: bytes }
  if (bytes.length < 5) throw new Error(`kind-4 frame too short: ${bytes.length} bytes`)
  const T = bytes[1]
  const E = bytes[2]
  const M = bytes[3]
  const encoding = bytes[4]
  let off = 5
  if (bytes.length < off + T + E + M) throw new Error(`kind-4 frame lengths exceed frame: ${bytes.toString('hex')}`)
  const topic = bytes.subarray(off, off + T).toString('utf8')
  off += T
  const event = bytes.subarray(off, off + E).toString('utf8')
  off += E
  const metaText = bytes.subarray(off, off + M).toString('utf8')
  off += M
  const body = bytes.subarray(off)
  const payload = encoding === 1 ? JSON.parse(body.toString('utf8')) : Uint8Array.from(body)
  return {
    kind: 'binary',
    type: 4,
    topic,
    event,
    meta: M > 0 ? JSON.parse(metaText) : null,
    encoding,
    payload,
    rawBytes: bytes,
  }
}

const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)
const isRef = (v) => v === null || typeof v === 'string'

/**
 * Returns why a decoded server frame breaks the rules realtime-js depends on (protocol §1.3, §8),
 * or null: vsn 2 text = array of exactly 5 with string/null refs; vsn 1 = object with exactly
 * topic/event/payload/ref; payload always a JSON object; binary only kind 4.
 */
export function frameProblem(rec, vsn) {
  if (rec.kind === 'undecodable') return `undecodable frame (${rec.error})`
  if (rec.kind === 'binary') return rec.type === 4 ? null : `binary frame of kind ${rec.type}`
  if (vsn === '2.0.0') {
    if (!rec.array) return 'vsn 2 text frame is not an array'
    if (rec.array.length !== 5) return `vsn 2 frame has ${rec.array.length} elements`
    if (!isRef(rec.join_ref) || !isRef(rec.ref)) return 'join_ref/ref not string or null'
  } else {
    if (!rec.object) return 'vsn 1 frame is not an object'
    const keys = Object.keys(rec.object).sort().join(',')
    if (keys !== 'event,payload,ref,topic') return `vsn 1 frame keys are ${keys}`
    if (!isRef(rec.ref)) return 'ref not string or null'
  }
  if (typeof rec.topic !== 'string' || typeof rec.event !== 'string') return 'topic/event not strings'
  if (!isPlainObject(rec.payload)) return 'payload is not a JSON object'
  return null
}

export class RawSocket {
  /**
   * Opens a socket. url: full ws:// URL including apikey and vsn query params.
   * vsn: '2.0.0' (arrays) or '1.0.0' (objects) — must match the URL's vsn.
   */
  static async connect(url, { vsn = '2.0.0', timeout = 10000 } = {}) {
    const s = new RawSocket(url, vsn)
    await s.opened(timeout)
    return s
  }

  constructor(url, vsn) {
    this.url = url
    this.vsn = vsn
    this.queue = []
    this.all = [] // every decoded inbound record, for diagnostics
    this.waiters = []
    this.refCounter = 100
    this.closed = null // {code, reason} once closed
    this.violations = [] // inbound frames that break the wire rules every client relies on
    this.ws = new WebSocket(url, { perMessageDeflate: false })
    this.ws.binaryType = 'nodebuffer'
    this._closedPromise = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString('utf8') }
        this._notify()
        resolve(this.closed)
      })
    })
    this.ws.on('error', (err) => {
      this.error = err
      this._notify()
    })
    this.ws.on('message', (data, isBinary) => {
      let rec
      try {
        rec = isBinary ? decodeBinary(data) : this._decodeText(data.toString('utf8'))
      } catch (err) {
        rec = { kind: 'undecodable', error: err.message, rawBytes: Buffer.from(data) }
      }
      const problem = frameProblem(rec, this.vsn)
      if (problem) this.violations.push(`${problem}: ${rec.raw ?? rec.rawBytes?.toString('hex')}`)
      this.queue.push(rec)
      this.all.push(rec)
      this._notify()
    })
  }

  _decodeText(text) {
    const v = JSON.parse(text)
    if (Array.isArray(v)) {
      const [join_ref, ref, topic, event, payload] = v
      return { kind: 'text', join_ref, ref, topic, event, payload, raw: text, array: v }
    }
    return {
      kind: 'text',
      join_ref: v.join_ref,
      ref: v.ref,
      topic: v.topic,
      event: v.event,
      payload: v.payload,
      raw: text,
      object: v,
    }
  }

  _notify() {
    for (const w of [...this.waiters]) w()
  }

  opened(timeout = 10000) {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState === WebSocket.OPEN) return resolve()
      const timer = setTimeout(() => reject(new Error(`raw socket ${this.url} did not open within ${timeout} ms`)), timeout)
      this.ws.once('open', () => {
        clearTimeout(timer)
        resolve()
      })
      this.ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer)
        reject(new Error(`raw socket upgrade refused: HTTP ${res.statusCode}`))
      })
      this.ws.once('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
    })
  }

  /** Next decoded ref (decimal string), strictly increasing like the real client. */
  makeRef() {
    this.refCounter += 1
    return String(this.refCounter)
  }

  sendText(text) {
    this.ws.send(text)
  }

  sendBinary(buf) {
    this.ws.send(Buffer.from(buf), { binary: true })
  }

  /** Sends one message in this socket's vsn encoding (array for 2.0.0, object for 1.0.0). */
  sendMessage({ join_ref = null, ref = null, topic, event, payload }) {
    if (this.vsn === '1.0.0') this.sendText(JSON.stringify({ topic, event, payload, ref, join_ref }))
    else this.sendText(JSON.stringify([join_ref, ref, topic, event, payload]))
  }

  /** Sends a push and returns its ref. opts.joinRef sets join_ref (default null). */
  push(topic, event, payload, { joinRef = null, ref } = {}) {
    const r = ref ?? this.makeRef()
    this.sendMessage({ join_ref: joinRef, ref: r, topic, event, payload })
    return r
  }

  /**
   * Resolves with (and removes from the queue) the first queued or future record matching
   * `pred`. Rejects after `timeout` ms, or as soon as the socket closes without a match.
   */
  next(pred = () => true, timeout = 10000, what = 'matching frame') {
    return new Promise((resolve, reject) => {
      const check = () => {
        const idx = this.queue.findIndex((r) => {
          try {
            return pred(r)
          } catch {
            return false
          }
        })
        if (idx >= 0) {
          const [rec] = this.queue.splice(idx, 1)
          done()
          resolve(rec)
          return
        }
        if (this.closed) {
          done()
          reject(
            new Error(
              `socket closed (code ${this.closed.code} ${this.closed.reason}) while waiting for ${what}; ` +
                `frames received: ${this.describeAll()}`
            )
          )
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`no ${what} within ${timeout} ms; frames received: ${this.describeAll()}`))
      }, timeout)
      const done = () => {
        clearTimeout(timer)
        this.waiters = this.waiters.filter((w) => w !== check)
      }
      this.waiters.push(check)
      check()
    })
  }

  /** Waits for the phx_reply to `ref` on `topic` (any join_ref). */
  reply(ref, topic, timeout = 15000) {
    return this.next(
      (r) => r.kind === 'text' && r.event === 'phx_reply' && r.ref === ref && (topic === undefined || r.topic === topic),
      timeout,
      `phx_reply to ref ${ref}${topic ? ' on ' + topic : ''}`
    )
  }

  /** Sends phx_join and returns {joinRef, reply}. */
  async join(topic, config = {}, { accessToken, extra = {}, timeout = 15000 } = {}) {
    const fullConfig = {
      broadcast: { ack: false, self: false },
      presence: { key: '', enabled: false },
      postgres_changes: [],
      private: false,
      ...config,
    }
    const payload = { config: fullConfig, ...extra }
    if (accessToken) payload.access_token = accessToken
    const ref = this.makeRef()
    this.sendMessage({ join_ref: ref, ref, topic, event: 'phx_join', payload })
    const reply = await this.reply(ref, topic, timeout)
    return { joinRef: ref, reply }
  }

  /** Sends a heartbeat and returns its reply record. */
  async heartbeat(timeout = 10000) {
    const ref = this.push('phoenix', 'heartbeat', {})
    return this.reply(ref, 'phoenix', timeout)
  }

  /** Compact description of every frame received so far (for error messages). */
  describeAll(max = 3000) {
    return safeJson(
      this.all.map((r) =>
        r.kind === 'text'
          ? r.raw
          : r.kind === 'binary'
            ? { binary: r.type, topic: r.topic, event: r.event, payload: r.payload, hex: r.rawBytes?.subarray(0, 64).toString('hex') }
            : r
      ),
      max
    )
  }

  /** Resolves when the socket is closed (by either side). */
  waitClosed(timeout = 10000) {
    return Promise.race([
      this._closedPromise,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`socket not closed within ${timeout} ms`)), timeout)),
    ])
  }

  /** Closes the socket (idempotent) and waits briefly for the close to complete. */
  async close() {
    if (this.closed) return
    try {
      this.ws.close(1000)
    } catch {
      this.ws.terminate()
    }
    await Promise.race([this._closedPromise, new Promise((r) => setTimeout(r, 2000))])
    if (!this.closed) this.ws.terminate()
  }
}

/**
 * Performs a bare WebSocket upgrade request and reports the outcome without completing a
 * WebSocket session: resolves {status, headers, body, json} for a refused upgrade, or
 * {status: 101} when the server accepted (the connection is then destroyed).
 */
export function probeUpgrade(url, { timeout = 15000, headers = {} } = {}) {
  const u = new URL(url.replace(/^ws/, 'http'))
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      method: 'GET',
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        ...headers,
      },
      timeout,
    })
    req.on('upgrade', (res, socket) => {
      socket.destroy()
      resolve({ status: res.statusCode, headers: res.headers, body: '', json: undefined })
    })
    req.on('response', (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        let json
        try {
          json = JSON.parse(body)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode, headers: res.headers, body, json })
      })
    })
    req.on('timeout', () => req.destroy(new Error(`upgrade probe to ${url} timed out after ${timeout} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/** Sets of open raw sockets for teardown. */
export class RawPool {
  constructor() {
    this.sockets = []
  }

  async connect(url, opts) {
    const s = await RawSocket.connect(url, opts)
    this.sockets.push(s)
    return s
  }

  /** Closes every socket; throws if any of them received a frame that breaks the wire rules. */
  async closeAll() {
    const all = this.sockets.splice(0)
    await Promise.all(all.map((s) => s.close().catch(() => {})))
    const bad = all.flatMap((s) => s.violations)
    if (bad.length) throw new Error(`server sent malformed frames:\n${bad.slice(0, 10).join('\n')}`)
  }
}
