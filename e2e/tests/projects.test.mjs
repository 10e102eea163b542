// Many projects in one service (docs/projects.md) through supabase-js 2.119: two projects of a
// --projects file, each with its own JWT secret, reached as http://<ref>.localhost:<port> (the
// host's first label names the project) beside the flag-configured project. Broadcast and presence
// stay inside their project even on the same channel name; a key of one project is refused by the
// other; an unknown ref is refused at the upgrade with 404 `Tenant not found`.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe } from 'node:test'
import { collectBroadcasts, subscribed } from '../lib/client.mjs'
import { useServer } from '../lib/harness.mjs'
import { LocalhostWebSocket } from '../lib/localhost.mjs'
import { probeUpgrade } from '../lib/raw.mjs'
import { anonKey } from '../lib/tokens.mjs'
import { waitFor } from '../lib/wait.mjs'

const secretA = randomBytes(32).toString('hex')
const secretB = randomBytes(32).toString('hex')
const dir = mkdtempSync(path.join(os.tmpdir(), 'projects-e2e-'))
const file = path.join(dir, 'projects.yaml')
writeFileSync(
  file,
  `projects:
  - ref: alpha
    jwt_secret: \${E2E_SECRET_A}
  - ref: beta
    jwt_secret: \${E2E_SECRET_B}
`
)

describe('projects (supabase-js)', () => {
  const h = useServer({ extraArgs: ['--projects', file], env: { E2E_SECRET_A: secretA, E2E_SECRET_B: secretB } })

  /** A pseudo-server for ClientPool: the project's URL http://<ref>.localhost:<port> and anon key. */
  function project(ref, secret) {
    return { httpUrl: `http://${ref}.localhost:${h.srv.port}`, anonKey: anonKey(secret), ref }
  }

  /** A supabase-js client of a project. */
  function client(p, key = p.anonKey) {
    return h.client({ server: p, key, realtime: { transport: LocalhostWebSocket } })
  }

  /** Probes the upgrade of project p (Host: <ref>.localhost) with an apikey. */
  function probe(p, key) {
    return probeUpgrade(h.srv.wsUrl({ vsn: '2.0.0', apikey: key }), { headers: { Host: `${p.ref}.localhost:${h.srv.port}` } })
  }

  h.test('broadcast and presence stay inside their project on the same channel name', async () => {
    const a = project('alpha', secretA)
    const b = project('beta', secretB)
    // self: a project with one subscriber hears its own broadcast.
    const config = { config: { broadcast: { self: true } } }
    const a1 = client(a).channel('room', config)
    const a2 = client(a).channel('room', config)
    const b1 = client(b).channel('room', config)
    const def = h.client().channel('room', config)
    const got = new Map([[a2, collectBroadcasts(a2, 'hello')], [b1, collectBroadcasts(b1, 'hello')], [def, collectBroadcasts(def, 'hello')]])
    // A presence listener before subscribe turns presence on for the join.
    for (const c of [a1, a2, b1, def]) c.on('presence', { event: 'sync' }, () => {})
    for (const c of [a1, a2, b1, def]) await subscribed(c)
    assert.equal(await a1.send({ type: 'broadcast', event: 'hello', payload: { from: 'alpha' } }), 'ok')
    assert.equal(await b1.send({ type: 'broadcast', event: 'hello', payload: { from: 'beta' } }), 'ok')
    assert.equal(await def.send({ type: 'broadcast', event: 'hello', payload: { from: 'default' } }), 'ok')
    // Each receiver's own project's message arrives; nothing of another project came before or with it.
    for (const [ch, from] of [[a2, 'alpha'], [b1, 'beta'], [def, 'default']]) {
      const c = got.get(ch)
      await c.waitFor((m) => m.payload.from === from)
      assert.deepEqual(c.items.map((m) => m.payload.from).filter((f) => f !== from && f !== undefined), [], `${from} received another project's broadcast`)
    }
    await a1.track({ who: 'a' })
    await b1.track({ who: 'b' })
    await waitFor(() => Object.keys(a2.presenceState()).length === 1 && Object.keys(b1.presenceState()).length === 1, {
      message: () => `presence: alpha ${JSON.stringify(a2.presenceState())} beta ${JSON.stringify(b1.presenceState())}`,
    })
    assert.deepEqual(Object.values(a2.presenceState()).flat().map((m) => m.who), ['a'])
    assert.deepEqual(Object.values(b1.presenceState()).flat().map((m) => m.who), ['b'])
  })

  h.test('a key of one project is refused by another', async () => {
    const a = project('alpha', secretA)
    const b = project('beta', secretB)
    const res = await probe(b, a.anonKey)
    assert.equal(res.status, 401)
    assert.equal(res.json?.error, 'Failed to validate JWT signature')
  })

  h.test('an unknown project is refused at the upgrade with 404 Tenant not found', async () => {
    const p = project('nope', secretA)
    const res = await probe(p, p.anonKey)
    assert.equal(res.status, 404)
    assert.deepEqual(res.json, { error: 'Tenant not found' })
  })
})

