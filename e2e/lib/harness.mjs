// Per-file/per-suite test fixture: one server for the suite, client and raw-socket pools that are
// emptied after every test, and a `test` wrapper that appends the server log to failures.
//
//   import { describe } from 'node:test'
//   import { useServer } from '../lib/harness.mjs'
//   describe('broadcast', () => {
//     const h = useServer()                       // or useServer({ maxPayloadBytes: 1024 })
//     h.test('peers receive', async () => { const a = h.client(); ... })
//   })

import { after, afterEach, before, test as nodeTest } from 'node:test'
import { ClientPool } from './client.mjs'
import { RawPool } from './raw.mjs'
import { startServer, withServerLog } from './server.mjs'

export function useServer(serverOpts = {}) {
  return useFixture(startServer, serverOpts)
}

/**
 * The fixture behind useServer() and useDevServer(): `start(opts)` starts a server (an object
 * with stop(), anonKey and wsUrl()). Functions registered with h.defer run after each test,
 * before the pools are emptied.
 */
export function useFixture(start, startOpts = {}) {
  const h = {
    srv: null,
    clients: new ClientPool(),
    raws: new RawPool(),
    extraServers: [],
    cleanups: [],
  }

  before(async () => {
    h.srv = await start(startOpts)
  })

  afterEach(async () => {
    for (const fn of h.cleanups.splice(0).reverse()) await fn()
    await h.clients.closeAll()
    await h.raws.closeAll()
    const extra = h.extraServers.splice(0)
    await Promise.all(extra.map((s) => s.stop()))
  })

  after(async () => {
    await h.clients.closeAll()
    await h.raws.closeAll()
    if (h.srv) await h.srv.stop()
  })

  /** A supabase-js client on the suite server (or opts.server). See ClientPool.create. */
  h.client = (opts = {}) => h.clients.create(opts.server ?? h.srv, opts)

  /** A raw socket on the suite server. opts: vsn, key, path, query, server. */
  h.raw = (opts = {}) => {
    const s = opts.server ?? h.srv
    const vsn = opts.vsn ?? '2.0.0'
    const query = { apikey: opts.key ?? s.anonKey, ...(opts.query || {}), vsn }
    return h.raws.connect(s.wsUrl(query, opts.path), { vsn })
  }

  /** Registers a function run after the current test (before clients are closed). */
  h.defer = (fn) => h.cleanups.push(fn)

  /** Starts an additional server (stopped after the current test). */
  h.startExtraServer = async (opts) => {
    const s = await start(opts)
    h.extraServers.push(s)
    return s
  }

  /** node:test `test` whose failures include the tail of the server log(s). */
  h.test = (name, optsOrFn, maybeFn) => {
    const fn = typeof optsOrFn === 'function' ? optsOrFn : maybeFn
    const opts = typeof optsOrFn === 'function' ? {} : optsOrFn
    return nodeTest(name, opts, withServerLog(() => [h.srv, ...h.extraServers], fn))
  }

  return h
}
