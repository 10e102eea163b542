#!/usr/bin/env node
// pglite-bridge: one PGlite instance behind the PostgreSQL wire protocol on
// a TCP port (PGLiteSocketServer of @electric-sql/pglite-socket), with
// notifications relayed to every socket that ran LISTEN, the host's own
// writes included (fanout.mjs). It takes pglite-server's flags, so it
// stands in for it. See docs/pglite.md ("Node bridge").
//
//   node bridge.mjs --db=./pgdata --port=5433 --max-connections=8
//
// Every flag has an environment variable (flag wins): PGLITE_BRIDGE_DB,
// PGLITE_BRIDGE_HOST, PGLITE_BRIDGE_PORT, PGLITE_BRIDGE_MAX_CONNECTIONS,
// PGLITE_BRIDGE_MODULE, PGLITE_BRIDGE_EXIT_ON_STDIN_EOF, PGLITE_BRIDGE_DEBUG.
//
// It shuts down cleanly (sockets closed, PGlite closed so the data
// directory is consistent) on SIGINT, SIGTERM, when its parent process
// exits (it checks its parent pid every 250 ms), and, with
// --exit-on-stdin-eof, when its standard input ends: a parent that gives it
// a pipe it never writes makes it exit at once when the parent dies, however
// it dies.

import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

import { relayNotifications } from './fanout.mjs'

const usage = `usage: pglite-bridge [options]
  -d, --db=PATH              data directory, or memory:// (default memory://)  [PGLITE_BRIDGE_DB]
  -h, --host=HOST            address to listen on (default 127.0.0.1)          [PGLITE_BRIDGE_HOST]
  -p, --port=PORT            TCP port (default 5432; 0 picks one)               [PGLITE_BRIDGE_PORT]
  -m, --max-connections=N    concurrent sockets (default 8)                     [PGLITE_BRIDGE_MAX_CONNECTIONS]
      --module=PATH          ES module whose default export is called with
                             { db, server } after the start; it may return a
                             function that is awaited at shutdown               [PGLITE_BRIDGE_MODULE]
      --exit-on-stdin-eof    shut down when standard input ends                [PGLITE_BRIDGE_EXIT_ON_STDIN_EOF=1]
  -v, --debug=LEVEL          PGlite debug level 0-5 (default 0)                 [PGLITE_BRIDGE_DEBUG]
      --help`

function log(msg) {
  process.stderr.write(`pglite-bridge: ${msg}\n`)
}

function config() {
  const { values } = parseArgs({
    options: {
      db: { type: 'string', short: 'd' },
      host: { type: 'string', short: 'h' },
      port: { type: 'string', short: 'p' },
      'max-connections': { type: 'string', short: 'm' },
      module: { type: 'string' },
      'exit-on-stdin-eof': { type: 'boolean' },
      debug: { type: 'string', short: 'v' },
      help: { type: 'boolean' },
    },
  })
  if (values.help) {
    console.log(usage)
    process.exit(0)
  }
  const env = process.env
  const int = (name, v, dflt) => {
    if (v === undefined || v === '') return dflt
    const n = Number(v)
    if (!Number.isInteger(n) || n < 0) {
      log(`invalid ${name}: ${v}`)
      process.exit(2)
    }
    return n
  }
  const truthy = (v) => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false'
  return {
    db: values.db ?? env.PGLITE_BRIDGE_DB ?? 'memory://',
    host: values.host ?? env.PGLITE_BRIDGE_HOST ?? '127.0.0.1',
    port: int('port', values.port ?? env.PGLITE_BRIDGE_PORT, 5432),
    maxConnections: Math.max(1, int('max-connections', values['max-connections'] ?? env.PGLITE_BRIDGE_MAX_CONNECTIONS, 8)),
    module: values.module ?? env.PGLITE_BRIDGE_MODULE ?? '',
    exitOnStdinEOF: values['exit-on-stdin-eof'] ?? truthy(env.PGLITE_BRIDGE_EXIT_ON_STDIN_EOF),
    debug: int('debug', values.debug ?? env.PGLITE_BRIDGE_DEBUG, 0),
  }
}

async function main() {
  const cfg = config()
  const parent = process.ppid

  let db = null
  let server = null
  let cleanup = null
  let stopping = null
  const shutdown = (why, code = 0) => {
    if (stopping) return stopping
    log(`shutting down (${why})`)
    // A wedged PGlite must not keep the process alive.
    setTimeout(() => {
      log('shutdown timed out; exiting')
      process.exit(1)
    }, 10_000).unref()
    stopping = (async () => {
      try {
        if (cleanup) await cleanup()
      } catch (err) {
        log(`module cleanup failed: ${err?.message ?? err}`)
      }
      try {
        if (server) await server.stop()
        if (db) await db.close()
      } catch (err) {
        log(`shutdown failed: ${err?.message ?? err}`)
        code = code || 1
      }
      log('stopped')
      process.exit(code)
    })()
    return stopping
  }
  process.on('SIGINT', () => shutdown('SIGINT'))
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGHUP', () => shutdown('SIGHUP'))
  // Never outlive the parent: when it dies we are reparented (to init or a
  // subreaper) and the parent pid changes.
  if (parent > 1) {
    setInterval(() => {
      if (process.ppid !== parent) shutdown(`parent process ${parent} exited`)
    }, 250).unref()
  }
  if (cfg.exitOnStdinEOF) {
    process.stdin.on('end', () => shutdown('standard input ended'))
    process.stdin.on('error', () => shutdown('standard input failed'))
    process.stdin.resume()
  }

  log(`opening PGlite at ${cfg.db}`)
  db = await PGlite.create(cfg.db, { debug: cfg.debug })
  if (stopping) return
  const pid = (await db.query('SELECT pg_backend_pid() AS pid')).rows[0].pid
  server = new PGLiteSocketServer({
    db,
    host: cfg.host,
    port: cfg.port,
    maxConnections: cfg.maxConnections,
    inspect: cfg.debug > 0,
  })
  relayNotifications(server, db, { backendPid: pid, log })
  server.addEventListener('error', (e) => log(`socket server error: ${e.detail?.message ?? e.detail}`))
  await server.start()
  if (cfg.module) {
    const mod = await import(pathToFileURL(path.resolve(cfg.module)).href)
    if (typeof mod.default !== 'function') throw new Error(`module ${cfg.module} has no default export function`)
    const ret = await mod.default({ db, server })
    if (typeof ret === 'function') cleanup = ret
  }
  log(`listening on ${server.getServerConn()} (max ${cfg.maxConnections} connections; notifications relayed to every listening socket)`)
}

main().catch((err) => {
  log(`failed: ${err?.stack ?? err}`)
  process.exit(1)
})
