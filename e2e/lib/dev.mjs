// `realtime dev` servers for postgres_changes / SSE tests: the binary starts a throwaway
// PostgreSQL with the demo schema (internal/demo/schema.sql) and serves on it; it prints one
// JSON line with the URLs, the database URL, ready-made keys and the inspector's admin token
// once it is ready. SIGTERM stops it and removes the cluster.
//
//   import { describe } from 'node:test'
//   import { useDevServer } from '../lib/dev.mjs'
//   describe('postgres_changes', () => {
//     const h = useDevServer()                    // or useDevServer({ extraArgs: ['--sse-heartbeat', '1s'] })
//     h.test('...', async () => { await h.sql('INSERT ...'); const sb = h.client({ key: h.srv.userKey }) })
//   })

import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import http from 'node:http'
import pg from 'pg'
import { useFixture } from './harness.mjs'
import { outputCapture, serverBinary, terminate } from './server.mjs'
import { waitFor } from './wait.mjs'


/**
 * A running `realtime dev` process. Same surface as ServerProcess (port, httpUrl, wsBase,
 * anonKey, wsUrl(), logTail(), stop()) plus the dev details: dbUrl, secret, serviceKey,
 * userKey/userId, user2Key/user2Id, adminUrl/adminToken (given with --admin-token or generated),
 * and `pool` (a pg.Pool on the database, closed by stop()).
 */
export class DevServer {
  constructor(proc, args, opts = {}) {
    this.proc = proc
    this.args = args
    this.poolMax = opts.poolMax ?? 4
    this.output = ''
    this.info = null
    this.exited = null
    this.exitPromise = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exited = { code, signal }
        resolve(this.exited)
      })
    })
    let stdoutBuf = ''
    this.ready = new Promise((resolve, reject) => {
      this._readyResolve = resolve
      this._readyReject = reject
    })
    const capture = outputCapture(this, () => `dev:${this.port ?? '?'}`)
    proc.stderr.on('data', capture)
    proc.stdout.on('data', (chunk) => {
      capture(chunk)
      if (this.info) return
      stdoutBuf += chunk.toString('utf8')
      const nl = stdoutBuf.indexOf('\n')
      if (nl < 0) return
      try {
        this._setInfo(JSON.parse(stdoutBuf.slice(0, nl)))
        this._readyResolve()
      } catch (err) {
        this._readyReject(new Error(`realtime dev printed a non-JSON first line: ${stdoutBuf.slice(0, nl)} (${err.message})`))
      }
    })
    this.exitPromise.then((e) => {
      if (!this.info)
        this._readyReject(
          new Error(`realtime dev exited before it was ready (code ${e.code}, signal ${e.signal})\n${this.logTail()}`)
        )
    })
  }

  _setInfo(info) {
    this.info = info
    this.httpUrl = info.url
    this.port = Number(new URL(info.url).port)
    this.wsBase = info.url.replace(/^http/, 'ws')
    this.dbUrl = info.db_url
    this.secret = info.jwt_secret
    this.anonKey = info.anon_key
    this.serviceKey = info.service_key
    this.userKey = info.user_key
    this.userId = info.user_id
    this.user2Key = info.user2_key
    this.user2Id = info.user2_id
    this.adminUrl = info.admin_url
    this.adminToken = info.admin_token
    this.pool = new pg.Pool({ connectionString: info.db_url, max: this.poolMax })
    this.pool.on('error', () => {}) // the cluster goes away at stop(); idle clients then error
  }

  /** The last `chars` characters the server printed (stderr and stdout interleaved). */
  logTail(chars = 6000) {
    return this.output.slice(-chars)
  }

  /** WebSocket URL for a path (default the supabase-js path) with the given query params. */
  wsUrl(query = {}, wsPath = '/realtime/v1/websocket') {
    const qs = new URLSearchParams(query).toString()
    return `${this.wsBase}${wsPath}${qs ? '?' + qs : ''}`
  }

  /** Runs one SQL statement (or several without params) as the database superuser. */
  sql(text, params) {
    return this.pool.query(text, params)
  }

  /** Closes the pg pool, sends SIGTERM, waits up to 15 s for exit (cluster removal), then SIGKILL. */
  async stop() {
    if (this.pool) {
      const p = this.pool
      this.pool = null
      await p.end().catch(() => {})
    }
    return terminate(this, 15000)
  }
}

/**
 * Starts `realtime dev --addr 127.0.0.1:0 --json [extraArgs]` and resolves once its JSON line
 * arrived. opts: extraArgs (string[]), env, startTimeoutMs (default 60 s), poolMax (pg pool size,
 * default 4; use 1 on PGlite, whose bridge may interleave pooled sockets' messages).
 */
export async function startDevServer(opts = {}) {
  const bin = serverBinary()
  if (!existsSync(bin)) {
    throw new Error(
      `realtime binary not found at ${bin}; build it with ` +
        '`go build -o bin/realtime ./cmd/realtime` in the repository root or set REALTIME_BIN'
    )
  }
  const args = ['dev', '--addr', '127.0.0.1:0', '--json', ...(opts.extraArgs || [])]
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(opts.env || {}) } })
  const srv = new DevServer(proc, args, opts)
  const timeout = opts.startTimeoutMs ?? 60000
  let timer
  try {
    await Promise.race([
      srv.ready,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`realtime dev not ready within ${timeout} ms\n${srv.logTail()}`)),
          timeout
        )
      }),
    ])
  } catch (err) {
    await srv.stop()
    throw err
  } finally {
    clearTimeout(timer)
  }
  return srv
}

/**
 * Creates a table (DDL given by the caller), adds it to the supabase_realtime publication and
 * grants it to the API roles, then waits until the server accepts a postgres_changes binding on
 * it (the published-table list is cached for about a second), using a probe SSE request.
 */
export async function createPublishedTable(srv, name, ddl, { grant = true } = {}) {
  await srv.sql(ddl)
  if (grant) await srv.sql(`GRANT SELECT, INSERT, UPDATE, DELETE ON public.${name} TO anon, authenticated, service_role`)
  await srv.sql(`ALTER PUBLICATION supabase_realtime ADD TABLE public.${name}`)
  await waitPublished(srv, name)
}

/**
 * Waits until a binding on public.<table> is accepted: an SSE request for that table must get
 * 200 (it answers 400 while the table is unknown to the server's published-table cache).
 */
export async function waitPublished(srv, table, timeout = 15000) {
  let last = ''
  const url = `${srv.httpUrl}/realtime/v1/sse?apikey=${encodeURIComponent(srv.serviceKey)}&schema=public&table=${encodeURIComponent(table)}`
  await waitFor(
    async () => {
      const status = await probeStatus(url)
      last = status
      return status === 200
    },
    { timeout, interval: 100, message: () => `table public.${table} never accepted for postgres_changes (last answer: ${last})` }
  )
}

/** GETs `url` and resolves with the status code, destroying the connection right after the head. */
function probeStatus(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 5000 }, (res) => {
      resolve(res.statusCode)
      res.destroy()
      req.destroy()
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)))
    req.on('error', reject)
  })
}

/**
 * Per-file fixture on one `realtime dev` server: like useServer() (client and raw-socket pools
 * emptied after each test, a `test` wrapper appending the server log to failures), plus
 * `h.sql(text, params)` on the server's database. opts: extraArgs, env.
 */
export function useDevServer(opts = {}) {
  const h = useFixture(startDevServer, opts)
  /** SQL on the suite server's database as the superuser. */
  h.sql = (text, params) => h.srv.sql(text, params)
  return h
}
