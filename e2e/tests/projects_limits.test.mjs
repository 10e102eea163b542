// Per-project limits through supabase-js 2.119 (docs/projects.md "Limits"), with Supabase's texts:
// max_concurrent_users (429 `Too many connected users` at the upgrade), max_events_per_second
// (system `Too many messages per second` and the channel closed; REST 429 `You have exceeded your
// rate limit`) and the project-wide max_joins_per_second (join error `ClientJoinRateLimitReached:
// Too many joins per second` and the socket closed; 429 `Too many joins per second` at the upgrade
// while it holds). Each limit has its own project; a project without them is unaffected.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe } from 'node:test'
import { subscribeRecorded, subscribed } from '../lib/client.mjs'
import { useServer } from '../lib/harness.mjs'
import { LocalhostWebSocket, localhostFetch } from '../lib/localhost.mjs'
import { probeUpgrade } from '../lib/raw.mjs'
import { anonKey } from '../lib/tokens.mjs'
import { Collector, safeJson, waitFor } from '../lib/wait.mjs'

const refs = ['conc', 'ev', 'jn', 'free']
const secrets = Object.fromEntries(refs.map((r) => [r, randomBytes(32).toString('hex')]))
const limits = {
  conc: 'max_concurrent_users: 2',
  ev: 'max_events_per_second: 5',
  // Each connection's join bucket holds 100 (the channel limit) and refills at 4/s; the project's
  // counter trips when its 5-second periods average 4 joins.
  jn: 'max_joins_per_second: 4',
  free: 'max_joins_per_second: 4',
}
const dir = mkdtempSync(path.join(os.tmpdir(), 'projects-limits-e2e-'))
const file = path.join(dir, 'projects.yaml')
writeFileSync(
  file,
  'projects:\n' + refs.map((r) => `  - ref: ${r}\n    jwt_secret: \${E2E_SECRET_${r.toUpperCase()}}\n    ${limits[r]}\n`).join('')
)

describe('per-project limits (supabase-js)', () => {
  const h = useServer({
    extraArgs: ['--projects', file],
    env: Object.fromEntries(refs.map((r) => [`E2E_SECRET_${r.toUpperCase()}`, secrets[r]])),
  })

  /** A pseudo-server for ClientPool: the project's URL http://<ref>.localhost:<port> and anon key. */
  const project = (ref) => ({ httpUrl: `http://${ref}.localhost:${h.srv.port}`, anonKey: anonKey(secrets[ref]), ref })

  /** A supabase-js client of project ref. */
  const client = (ref) => h.client({ server: project(ref), realtime: { transport: LocalhostWebSocket, fetch: localhostFetch } })

  /** Probes the upgrade of project ref with its anon key. */
  const probe = (ref) =>
    probeUpgrade(h.srv.wsUrl({ vsn: '2.0.0', apikey: project(ref).anonKey }), { headers: { Host: `${ref}.localhost:${h.srv.port}` } })

  h.test('max_concurrent_users: the third client is refused with 429 Too many connected users; a freed place is taken', async () => {
    const c1 = client('conc')
    await subscribed(c1.channel('room'))
    await subscribed(client('conc').channel('room'))
    const third = client('conc')
    const rec = subscribeRecorded(third.channel('room'))
    await rec.waitFor('CHANNEL_ERROR', 20000) // the refused upgrade, as realtime-js reports it
    assert.ok(!rec.statuses.some((s) => s.status === 'SUBSCRIBED'))
    const res = await probe('conc')
    assert.equal(res.status, 429)
    assert.deepEqual(res.json, { error: 'Too many connected users' })
    // The refused client stops retrying; one of the two leaves; a new client gets its place.
    await third.removeAllChannels()
    await third.realtime.disconnect()
    await c1.removeAllChannels()
    await c1.realtime.disconnect()
    await subscribed(client('conc').channel('room'), 20000)
  })

  h.test('max_events_per_second: the sending channel gets the system error and is closed; REST answers 429', async () => {
    const sb = client('ev')
    const ch = sb.channel('room')
    const sys = new Collector('system on ev/room')
    ch.on('system', {}, sys.push)
    const rec = subscribeRecorded(ch)
    await rec.waitFor('SUBSCRIBED')
    for (let i = 0; i < 50; i++) ch.send({ type: 'broadcast', event: 'e', payload: { i } })
    const e = await sys.waitFor((m) => m.status === 'error', 20000)
    assert.equal(e.message, 'Too many messages per second')
    await rec.waitFor('CLOSED', 20000)
    // REST: a burst of httpSend over 5/s; every refusal carries Supabase's text.
    const rest = client('ev').channel('rest-room')
    const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => rest.httpSend('e', { i })))
    const refused = results.filter((r) => r.status === 'rejected')
    assert.ok(refused.length > 0, `no REST refusal: ${safeJson(results)}`)
    for (const r of refused) assert.equal(r.reason.message, 'You have exceeded your rate limit')
  })

  h.test("max_joins_per_second is project-wide: two clients' joins trip it together; the reason, then 429 at the upgrade; another project is unaffected", async () => {
    const a = client('jn')
    const b = client('jn')
    const free = client('free')
    // 3 joins each (far inside each connection's bucket), 6 for the project; 2 on the other project
    // (3 with the one below, should it fall in the same period: under 4 all the same).
    for (let i = 0; i < 3; i++) {
      await subscribed(a.channel(`a-${i}`))
      await subscribed(b.channel(`b-${i}`))
      if (i < 2) await subscribed(free.channel(`f-${i}`))
    }
    // The project's counter judges when its 5-second period ends: from then on its upgrades are refused.
    let res
    await waitFor(
      async () => {
        res = await probe('jn')
        return res.status === 429
      },
      { timeout: 20000, interval: 100, message: () => `jn upgrade still ${res?.status}` }
    )
    assert.deepEqual(res.json, { error: 'Too many joins per second' })
    const rec = subscribeRecorded(a.channel('late'))
    const err = await rec.waitFor('CHANNEL_ERROR', 20000)
    assert.equal(err.err?.message, 'ClientJoinRateLimitReached: Too many joins per second')
    // The other project, with the same limit, joins and connects as before.
    await subscribed(free.channel('f-late'))
    assert.equal((await probe('free')).status, 101)
  })
})
