// Creating real @supabase/supabase-js clients against a test server, and watching channels.

import { createClient } from '@supabase/supabase-js'
import { Collector, safeJson, waitFor } from './wait.mjs'

/**
 * Tracks the clients a test creates so teardown can close them all.
 * Usage: const clients = new ClientPool(); const sb = clients.create(srv, {...}); ... await clients.closeAll()
 */
export class ClientPool {
  constructor() {
    this.clients = []
  }

  /**
   * Creates a supabase-js client for `srv`.
   * opts: key (apikey, default srv.anonKey), vsn ('1.0.0' | '2.0.0'), heartbeatIntervalMs,
   * accessToken (async () => token), params (extra realtime query params), timeout (push/join
   * timeout ms), heartbeatCallback, logger, reconnectAfterMs, realtime (extra realtime options).
   */
  create(srv, opts = {}) {
    const realtime = {
      params: { ...(opts.params || {}) },
      ...(opts.realtime || {}),
    }
    for (const k of ['vsn', 'heartbeatIntervalMs', 'timeout', 'heartbeatCallback', 'logger', 'reconnectAfterMs']) {
      if (opts[k] !== undefined) realtime[k] = opts[k]
    }
    const options = {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      realtime,
    }
    if (opts.accessToken) options.accessToken = opts.accessToken
    const client = createClient(srv.httpUrl, opts.key ?? srv.anonKey, options)
    this.clients.push(client)
    return client
  }

  /** Removes every channel and disconnects every client created by this pool. */
  async closeAll() {
    const clients = this.clients.splice(0)
    await Promise.all(
      clients.map(async (c) => {
        try {
          for (const ch of c.realtime.getChannels()) ch.teardown?.()
          c.realtime.channels = []
          await c.realtime.disconnect()
        } catch {
          // best effort
        }
      })
    )
  }
}

/**
 * Records every status the subscribe callback reports for a channel and subscribes it.
 * Returns { statuses: [{status, err}], waitFor(status, timeout) }.
 */
export function subscribeRecorded(channel, timeout) {
  const statuses = []
  const cb = (status, err) => statuses.push({ status, err })
  if (timeout !== undefined) channel.subscribe(cb, timeout)
  else channel.subscribe(cb)
  return {
    statuses,
    async waitFor(status, waitTimeout = 15000) {
      return waitFor(() => statuses.find((s) => s.status === status), {
        timeout: waitTimeout,
        message: () =>
          `channel ${channel.topic} never reported ${status}; statuses so far: ` +
          safeJson(statuses.map((s) => [s.status, s.err?.message])),
      })
    },
  }
}

/**
 * Subscribes `channel` and resolves when it reports SUBSCRIBED; rejects with the first
 * CHANNEL_ERROR / TIMED_OUT / CLOSED (including the error message) or after `timeout` ms.
 */
export function subscribed(channel, timeout = 15000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`channel ${channel.topic} not SUBSCRIBED within ${timeout} ms (state ${channel.state})`)),
      timeout
    )
    channel.subscribe((status, err) => {
      if (status === 'SUBSCRIBED') {
        clearTimeout(timer)
        resolve(channel)
      } else {
        clearTimeout(timer)
        reject(new Error(`channel ${channel.topic} reported ${status}${err ? ': ' + err.message : ''}`))
      }
    })
  })
}

/** Adds a broadcast listener for `event` and returns a Collector of the received payloads. */
export function collectBroadcasts(channel, event = '*', name) {
  const c = new Collector(name ?? `broadcasts on ${channel.topic} (${event})`)
  channel.on('broadcast', { event }, c.push)
  return c
}

export { Collector }
