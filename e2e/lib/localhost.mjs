// Reaching a project as http://<ref>.localhost:<port> (docs/projects.md): the host's first label
// names the project.

import dns from 'node:dns'
import WebSocket from 'ws'

/**
 * Resolves *.localhost to loopback (RFC 6761), as browsers do; Node's resolver here may not, so the
 * clients' WebSocket transport connects through this lookup and still sends Host: <ref>.localhost.
 */
export function localhostLookup(hostname, opts, cb) {
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) {
    if (opts?.all) return cb(null, [{ address: '127.0.0.1', family: 4 }])
    return cb(null, '127.0.0.1', 4)
  }
  return dns.lookup(hostname, opts, cb)
}

/** The ws WebSocket with the *.localhost lookup, as realtime-js's transport. */
export class LocalhostWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { lookup: localhostLookup })
  }
}

/**
 * fetch for realtime-js's REST calls (broadcast fallback, httpSend): Node's fetch resolves no
 * *.localhost name and ignores a Host header, so a request to http://<ref>.localhost:<port> goes to
 * 127.0.0.1:<port> naming the project with X-Project-Ref, as a gateway does (docs/projects.md).
 */
export function localhostFetch(input, init = {}) {
  const u = new URL(typeof input === 'string' || input instanceof URL ? input : input.url)
  if (!u.hostname.endsWith('.localhost')) return fetch(input, init)
  const ref = u.hostname.slice(0, -'.localhost'.length)
  u.hostname = '127.0.0.1'
  const headers = new Headers(init.headers)
  headers.set('X-Project-Ref', ref)
  return fetch(u, { ...init, headers })
}
