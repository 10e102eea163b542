// `realtime dev --projects N [--pglite-projects M]` for the many-projects tests
// (docs/projects.md "Trying it"): one process serving N projects, the first N-M on databases of one
// throwaway PostgreSQL (logical replication), the last M on PGlite bridges (the notify source).
// It prints one line per project (URL, database, JWT secret, anon and service keys); SIGTERM stops
// it and removes the databases.
//
//   import { describe } from 'node:test'
//   import { useDevProjects } from '../lib/devprojects.mjs'
//   describe('...', () => {
//     const h = useDevProjects({ n: 12, pglite: 2 })
//     h.test('...', async () => { const p = h.srv.projects[0]; await p.sql('INSERT ...'); h.projectClient(p) })
//   })

import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { useFixture } from './harness.mjs'
import { LocalhostWebSocket, localhostFetch } from './localhost.mjs'
import { outputCapture, serverBinary, terminate } from './server.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const pgliteBridge = path.resolve(here, '../../cmd/pglite-bridge/bridge.mjs')
const projectLine = /^(project\d+)  http:\/\/(\S+)  db (\S+)  secret (\S+)  anon (\S+)  service (\S+)  curl /

/**
 * One project of the process: ref, httpUrl (http://<ref>.localhost:<port>), host, dbUrl (the
 * database superuser), secret, anonKey, serviceKey, source ('logical' or 'notify'), and
 * sql(text, params) on its database (one pooled connection on PGlite, whose bridge shares a
 * session between sockets).
 */
export class DevProject {
  constructor(m, source) {
    ;[, this.ref, this.host, this.dbUrl, this.secret, this.anonKey, this.serviceKey] = m
    this.httpUrl = `http://${this.host}`
    this.source = source
    this.pool = new pg.Pool({ connectionString: this.dbUrl, max: source === 'notify' ? 1 : 2 })
    this.pool.on('error', () => {}) // the databases go away at stop(); idle clients then error
  }

  /** Runs one SQL statement as the database superuser. */
  sql(text, params) {
    return this.pool.query(text, params)
  }
}

/** A running `realtime dev --projects` process: port, projects, logTail(), wsUrl(), stop(). */
export class DevProjects {
  constructor(proc, args, { n, pglite }) {
    this.proc = proc
    this.args = args
    this.output = ''
    this.projects = []
    this.exited = null
    this.exitPromise = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exited = { code, signal }
        resolve(this.exited)
      })
    })
    this.ready = new Promise((resolve, reject) => {
      let buf = ''
      proc.stdout.on('data', (chunk) => {
        buf += chunk.toString('utf8')
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const m = projectLine.exec(buf.slice(0, nl))
          buf = buf.slice(nl + 1)
          if (!m || this.projects.length === n) continue
          this.projects.push(new DevProject(m, this.projects.length >= n - pglite ? 'notify' : 'logical'))
          if (this.projects.length === n) {
            this.port = Number(this.projects[0].host.split(':')[1])
            resolve()
          }
        }
      })
      this.exitPromise.then((e) => reject(new Error(`realtime dev exited before it was ready (code ${e.code}, signal ${e.signal})\n${this.logTail()}`)))
    })
    const capture = outputCapture(this, () => `dev-projects`)
    proc.stderr.on('data', capture)
    proc.stdout.on('data', capture)
  }

  /** The last `chars` characters the process printed. */
  logTail(chars = 6000) {
    return this.output.slice(-chars)
  }

  /** WebSocket URL on 127.0.0.1 (the project is named by a Host header or X-Project-Ref). */
  wsUrl(query = {}, wsPath = '/realtime/v1/websocket') {
    const qs = new URLSearchParams(query).toString()
    return `ws://127.0.0.1:${this.port}${wsPath}${qs ? '?' + qs : ''}`
  }

  /** Closes the pg pools, sends SIGTERM, waits up to 30 s (databases removed), then SIGKILL. */
  async stop() {
    await Promise.all(this.projects.map((p) => p.pool.end().catch(() => {})))
    return terminate(this, 30000)
  }
}

/**
 * Starts `realtime dev --addr 127.0.0.1:0 --projects n --pglite-projects pglite [extraArgs]` and
 * resolves once every project line arrived. opts: n, pglite (default 0), extraArgs, env,
 * startTimeoutMs (default 240 s: a new PGlite data directory takes a while).
 */
export async function startDevProjects(opts = {}) {
  const bin = serverBinary()
  if (!existsSync(bin)) throw new Error(`realtime binary not found at ${bin}; build it with \`go build -o bin/realtime ./cmd/realtime\``)
  const n = opts.n
  const pglite = opts.pglite ?? 0
  const args = ['dev', '--addr', '127.0.0.1:0', '--projects', String(n), '--pglite-projects', String(pglite), ...(opts.extraArgs || [])]
  const env = { ...process.env, PGLITE_BRIDGE: process.env.PGLITE_BRIDGE || pgliteBridge, ...(opts.env || {}) }
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
  const srv = new DevProjects(proc, args, { n, pglite })
  const timeout = opts.startTimeoutMs ?? 240000
  let timer
  try {
    await Promise.race([
      srv.ready,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`realtime dev --projects not ready within ${timeout} ms\n${srv.logTail()}`)), timeout)
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
 * Per-file fixture on one `realtime dev --projects` process (see useFixture), plus
 * `h.projectClient(p, opts)`: a supabase-js client of project p through http://<ref>.localhost.
 */
export function useDevProjects(opts) {
  const h = useFixture(startDevProjects, opts)
  h.projectClient = (p, o = {}) =>
    h.client({ ...o, server: p, key: o.key ?? p.anonKey, realtime: { transport: LocalhostWebSocket, fetch: localhostFetch, ...(o.realtime || {}) } })
  return h
}
