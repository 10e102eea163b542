// Server-Sent Events clients for the SSE transport: real `curl -N` processes whose stdout is
// parsed into events, and the npm `eventsource` package. Both record what they receive so tests
// can wait for events with time bounds.

import { spawn } from 'node:child_process'
import { EventSource } from 'eventsource'
import { safeJson, waitFor } from './wait.mjs'

/**
 * Incremental parser of an SSE byte stream (per the HTML spec's line rules): records
 * {id, event, data, json} per dispatched event and the text of every comment line.
 */
export class SSEParser {
  constructor() {
    this.buf = ''
    this.events = []
    this.comments = []
    this._reset()
  }

  _reset() {
    this.cur = { id: undefined, event: undefined, data: [] }
  }

  feed(text) {
    this.buf += text
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf)
      if (!m) return
      const line = this.buf.slice(0, m.index)
      this.buf = this.buf.slice(m.index + m[0].length)
      this._line(line)
    }
  }

  _line(line) {
    if (line === '') {
      if (this.cur.data.length || this.cur.event !== undefined || this.cur.id !== undefined) {
        const data = this.cur.data.join('\n')
        let json
        try {
          json = JSON.parse(data)
        } catch {
          json = undefined
        }
        this.events.push({ id: this.cur.id, event: this.cur.event ?? 'message', data, json })
      }
      this._reset()
      return
    }
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).trim())
      return
    }
    const i = line.indexOf(':')
    const field = i < 0 ? line : line.slice(0, i)
    let value = i < 0 ? '' : line.slice(i + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') this.cur.data.push(value)
    else if (field === 'event') this.cur.event = value
    else if (field === 'id') this.cur.id = value
  }
}

/**
 * `curl -sS -N -i <url>` with optional headers; the response head (status line + headers) and the
 * event stream are parsed from stdout. Fields: status, headers (lower-cased names), events,
 * comments, exited.
 */
export class CurlSSE {
  constructor(url, { headers = {} } = {}) {
    this.url = url
    const args = ['-sS', '-N', '-i', '--max-time', '170']
    for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`)
    args.push(url)
    this.proc = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.raw = ''
    this.stderr = ''
    this.status = undefined
    this.headers = undefined
    this.parser = new SSEParser()
    this.exited = null
    this._head = ''
    this.proc.stdout.on('data', (chunk) => {
      const s = chunk.toString('utf8')
      this.raw += s
      if (this.headers) return this.parser.feed(s)
      this._head += s
      const end = this._head.search(/\r?\n\r?\n/)
      if (end < 0) return
      const head = this._head.slice(0, end)
      const rest = this._head.slice(end).replace(/^\r?\n\r?\n/, '')
      const [statusLine, ...lines] = head.split(/\r?\n/)
      this.status = Number(statusLine.split(' ')[1])
      this.headers = {}
      for (const l of lines) {
        const i = l.indexOf(':')
        if (i > 0) this.headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
      }
      this.parser.feed(rest)
    })
    this.proc.stderr.on('data', (c) => (this.stderr += c.toString('utf8')))
    this.exitPromise = new Promise((resolve) =>
      this.proc.on('exit', (code, signal) => {
        this.exited = { code, signal }
        resolve(this.exited)
      })
    )
  }

  get events() {
    return this.parser.events
  }

  get comments() {
    return this.parser.comments
  }

  /** Events named `name` (e.g. 'postgres_changes'). */
  named(name) {
    return this.events.filter((e) => e.event === name)
  }

  describe() {
    return `curl ${this.url}: status ${this.status}, exited ${safeJson(this.exited)}, stderr ${this.stderr.trim()}, ` +
      `stdout ${safeJson(this.raw, 3000)}`
  }

  /** Waits until the response head arrived. */
  async waitHead(timeout = 10000) {
    await waitFor(() => this.headers || this.exited, { timeout, message: () => this.describe() })
    if (!this.headers) throw new Error(`curl exited without a response head: ${this.describe()}`)
    return this
  }

  /** Waits for the first event matching pred (index >= from) and returns it. */
  async waitEvent(pred, { timeout = 10000, from = 0 } = {}) {
    return waitFor(() => this.events.slice(from).find(pred), {
      timeout,
      message: () => `no matching SSE event; ${this.describe()}`,
    })
  }

  /** Waits until at least n events named `name` arrived and returns them. */
  async waitNamed(name, n, timeout = 10000) {
    await waitFor(() => this.named(name).length >= n, {
      timeout,
      message: () => `wanted ${n} '${name}' events; ${this.describe()}`,
    })
    return this.named(name)
  }

  /** Waits for the whole response (curl exit) — for non-streaming error answers. */
  async waitExit(timeout = 10000) {
    await waitFor(() => this.exited, { timeout, message: () => `curl did not exit; ${this.describe()}` })
    return this
  }

  /** The body after the head (for JSON error answers). */
  body() {
    const m = /\r?\n\r?\n/.exec(this.raw)
    return m ? this.raw.slice(m.index + m[0].length) : ''
  }

  /** Kills curl (idempotent) and waits for it to exit. */
  async close() {
    if (!this.exited) this.proc.kill('SIGTERM')
    await this.exitPromise
  }
}

/**
 * An `eventsource` EventSource that records named events (postgres_changes, system, broadcast,
 * presence_state, presence_diff), `open` and `error` occurrences.
 * Fields: es, events [{id, event, data, json}], errors [{code, message}], opened.
 */
export class RecordedEventSource {
  constructor(url, names = ['postgres_changes', 'system', 'broadcast']) {
    this.url = url
    this.es = new EventSource(url)
    this.events = []
    this.errors = []
    this.opened = 0
    this.es.addEventListener('open', () => (this.opened += 1))
    this.es.addEventListener('error', (e) => this.errors.push({ code: e.code, message: e.message }))
    for (const name of names) {
      this.es.addEventListener(name, (e) => {
        let json
        try {
          json = JSON.parse(e.data)
        } catch {
          json = undefined
        }
        this.events.push({ id: e.lastEventId, event: name, data: e.data, json })
      })
    }
  }

  named(name) {
    return this.events.filter((e) => e.event === name)
  }

  describe() {
    return `EventSource ${this.url}: readyState ${this.es.readyState}, errors ${safeJson(this.errors)}, events ${safeJson(this.events, 3000)}`
  }

  async waitEvent(pred, timeout = 10000) {
    return waitFor(() => this.events.find(pred), { timeout, message: () => `no matching event; ${this.describe()}` })
  }

  async waitNamed(name, n, timeout = 10000) {
    await waitFor(() => this.named(name).length >= n, {
      timeout,
      message: () => `wanted ${n} '${name}' events; ${this.describe()}`,
    })
    return this.named(name)
  }

  close() {
    this.es.close()
  }
}

/** Tracks curl processes and EventSources opened by a test so teardown can end them. */
export class SSEPool {
  constructor() {
    this.items = []
  }

  curl(url, opts) {
    const c = new CurlSSE(url, opts)
    this.items.push(c)
    return c
  }

  eventSource(url, names) {
    const e = new RecordedEventSource(url, names)
    this.items.push(e)
    return e
  }

  async closeAll() {
    const all = this.items.splice(0)
    await Promise.all(all.map((i) => Promise.resolve(i.close()).catch(() => {})))
  }
}
