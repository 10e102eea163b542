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
