// Starting and stopping the realtime server binary for end-to-end tests.
//
// Each call to startServer spawns its own process on a free loopback port with a random JWT
// secret, waits until GET /healthz answers 200, and keeps the process's stderr/stdout so a
// failing test can show what the server logged. Set E2E_SERVER_LOG=1 to stream it live.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { anonKey } from './tokens.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))

/** Absolute path of the server binary: $REALTIME_BIN or ../bin/realtime relative to e2e/. */
export function serverBinary() {
  const fromEnv = process.env.REALTIME_BIN
  if (fromEnv) return path.resolve(fromEnv)
  return path.resolve(here, '..', '..', 'bin', 'realtime')
}

/** Asks the kernel for a free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

const MAX_LOG_CHARS = 200_000

/**
 * A running server process.
 * Fields: port, secret, httpUrl ('http://127.0.0.1:<port>'), wsBase ('ws://127.0.0.1:<port>'),
 * anonKey (a valid anon JWT for this server), args (command-line flags used).
 */
export class ServerProcess {
  constructor({ proc, port, secret, args }) {
    this.proc = proc
    this.port = port
    this.secret = secret
    this.args = args
    this.httpUrl = `http://127.0.0.1:${port}`
    this.wsBase = `ws://127.0.0.1:${port}`
    this.anonKey = anonKey(secret)
    this.output = ''
    this.exited = null // {code, signal} once the process is gone
    this.exitPromise = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exited = { code, signal }
        resolve(this.exited)
      })
    })
    const capture = outputCapture(this, () => `server:${port}`)
    proc.stderr.on('data', capture)
    proc.stdout.on('data', capture)
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

  /** Sends SIGTERM, waits up to 5 s for exit, then SIGKILL. Safe to call twice. */
  async stop() {
    return terminate(this, 5000)
  }
}

/**
 * Returns the stdout/stderr chunk handler of a handle of these helpers: it keeps the last
 * MAX_LOG_CHARS characters in h.output and, with E2E_SERVER_LOG set, echoes them prefixed with
 * [label()].
 */
export function outputCapture(h, label) {
  return (chunk) => {
    const s = chunk.toString('utf8')
    if (process.env.E2E_SERVER_LOG) process.stderr.write(`[${label()}] ${s}`)
    h.output += s
    if (h.output.length > MAX_LOG_CHARS) h.output = h.output.slice(-MAX_LOG_CHARS)
  }
}

/**
 * Sends SIGTERM to the child process of a handle of these helpers ({ proc, exited, exitPromise }),
 * then SIGKILL if it has not exited after graceMs; resolves with its exit. Safe to call twice.
 */
export async function terminate(h, graceMs) {
  if (h.exited) return h.exited
  h.proc.kill('SIGTERM')
  const timer = setTimeout(() => {
    if (!h.exited) h.proc.kill('SIGKILL')
  }, graceMs)
  const res = await h.exitPromise
  clearTimeout(timer)
  return res
}

/**
 * Starts the server binary and resolves once /healthz answers 200.
 * opts: maxChannelsPerClient, maxPayloadBytes, maxJoinsPerSecond, extraArgs (string[]), env.
 */
export async function startServer(opts = {}) {
  const bin = serverBinary()
  if (!existsSync(bin)) {
    throw new Error(
      `realtime binary not found at ${bin}; build it with ` +
        '`go build -o bin/realtime ./cmd/realtime` in the repository root or set REALTIME_BIN'
    )
  }
  let lastErr
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const secret = randomBytes(32).toString('hex')
    const args = ['serve', '--addr', `127.0.0.1:${port}`, '--jwt-secret', secret]
    if (opts.maxChannelsPerClient != null)
      args.push('--max-channels-per-client', String(opts.maxChannelsPerClient))
    if (opts.maxPayloadBytes != null) args.push('--max-payload-bytes', String(opts.maxPayloadBytes))
    if (opts.maxJoinsPerSecond != null)
      args.push('--max-joins-per-second', String(opts.maxJoinsPerSecond))
    if (opts.extraArgs) args.push(...opts.extraArgs)
    const proc = spawn(bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(opts.env || {}) },
    })
    const srv = new ServerProcess({ proc, port, secret, args })
    try {
      await waitHealthy(srv, opts.startTimeoutMs ?? 20000)
      return srv
    } catch (err) {
      lastErr = err
      await srv.stop()
      // Retry only when another process grabbed the port between freePort() and bind.
      if (!/address already in use/i.test(srv.output)) break
    }
  }
  throw lastErr
}

async function waitHealthy(srv, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (srv.exited) {
      throw new Error(
        `realtime server exited before becoming healthy (code ${srv.exited.code}, signal ` +
          `${srv.exited.signal}); args: ${srv.args.join(' ')}\n--- server output ---\n${srv.logTail()}`
      )
    }
    try {
      const res = await fetch(`${srv.httpUrl}/healthz`, { signal: AbortSignal.timeout(1000) })
      await res.body?.cancel()
      if (res.status === 200) return
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(
    `realtime server did not answer 200 on /healthz within ${timeoutMs} ms\n` +
      `--- server output ---\n${srv.logTail()}`
  )
}

/**
 * Wraps a test body so that, when it throws, the tail of the server's output is appended to the
 * error message. `getServer` is a function returning the ServerProcess (or several) in use.
 */
export function withServerLog(getServer, fn) {
  return async (t) => {
    try {
      return await fn(t)
    } catch (err) {
      let servers = getServer()
      if (!Array.isArray(servers)) servers = [servers]
      const logs = servers
        .filter(Boolean)
        .map((s) => `--- server ${s.port} output (tail) ---\n${s.logTail(4000)}`)
        .join('\n')
      if (logs && err && typeof err === 'object') {
        try {
          err.message = `${err.message}\n${logs}`
        } catch {
          // some errors have read-only messages; fall through
        }
      }
      throw err
    }
  }
}
