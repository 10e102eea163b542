// Private channels and Broadcast from the database on PGlite (`--source notify`, docs/protocol.md §9)
// through supabase-js 2.119: Supabase's Getting Started flow for Realtime (a policy on
// realtime.messages, a private channel, a broadcast between two users, realtime.send from SQL),
// the refusal without a policy, and the private flag of realtime.send. realtime.messages rows reach
// the service through the change table (the extra publication's capture triggers).

import assert from 'node:assert/strict'
import path from 'node:path'
import { describe } from 'node:test'
import { fileURLToPath } from 'node:url'
import { collectBroadcasts, subscribed, subscribeRecorded } from '../lib/client.mjs'
import { useDevServer } from '../lib/dev.mjs'
import { safeJson } from '../lib/wait.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const pgliteBridge = path.resolve(here, '../../cmd/pglite-bridge/bridge.mjs')
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

describe('private channels and database broadcasts on PGlite (--source notify)', () => {
  const h = useDevServer({
    extraArgs: ['--source', 'notify', '--poll-interval', '20ms'],
    env: { PGLITE_BRIDGE: pgliteBridge },
    poolMax: 1,
    startTimeoutMs: 180000,
  })

  async function as(key) {
    const c = h.client({ accessToken: async () => key })
    await c.realtime.setAuth(key)
    return c
  }

  async function policy(name, body) {
    await h.sql(`DROP POLICY IF EXISTS "${name}" ON realtime.messages`)
    await h.sql(`CREATE POLICY "${name}" ON realtime.messages ${body}`)
  }

  h.test('no policy: a user is refused with the exact reason', async () => {
    const u = await as(h.srv.userKey)
    const ch = u.channel('lite-nopol', { config: { private: true } })
    const rec = subscribeRecorded(ch)
    const s = await rec.waitFor('CHANNEL_ERROR')
    ch.unsubscribe()
    assert.equal(s.err?.message, 'Unauthorized: You do not have permissions to read from this Channel topic: lite-nopol')
  })

  h.test('Getting Started: two users chat on a private channel and realtime.send reaches them', async () => {
    await policy('lite gs read', `FOR SELECT TO authenticated USING (realtime.topic() LIKE 'room:%:messages')`)
    await policy('lite gs write', `FOR INSERT TO authenticated WITH CHECK (realtime.topic() LIKE 'room:%:messages')`)
    const alice = await as(h.srv.userKey)
    const bob = await as(h.srv.user2Key)
    const a = alice.channel('room:lobby:messages', { config: { private: true } })
    const b = bob.channel('room:lobby:messages', { config: { private: true } })
    const aGot = collectBroadcasts(a, '*', 'alice')
    const bGot = collectBroadcasts(b, '*', 'bob')
    await Promise.all([subscribed(a), subscribed(b)])

    assert.equal(await a.send({ type: 'broadcast', event: 'chat', payload: { text: 'hi bob' } }), 'ok')
    assert.deepEqual((await bGot.waitFor((m) => m.event === 'chat')).payload, { text: 'hi bob' })

    await h.sql(`SELECT realtime.send('{"text":"from sql"}'::jsonb, 'sql', 'room:lobby:messages')`)
    for (const c of [aGot, bGot]) {
      const m = await c.waitFor((m) => m.event === 'sql', 15000)
      assert.equal(m.type, 'broadcast')
      assert.match(m.meta?.id ?? '', UUID_RE, safeJson(m))
      assert.deepEqual(m.payload, { text: 'from sql', id: m.meta.id })
    }
  })

  h.test('realtime.send: private=false reaches public subscribers, the default private ones, rolled back nobody', async () => {
    await policy('lite ns read', `FOR SELECT TO authenticated USING (realtime.topic() = 'lite-ns')`)
    const pub = (await as(h.srv.userKey)).channel('lite-ns')
    const priv = (await as(h.srv.userKey)).channel('lite-ns', { config: { private: true } })
    const pubGot = collectBroadcasts(pub, '*', 'public')
    const privGot = collectBroadcasts(priv, '*', 'private')
    await subscribed(pub)
    await subscribed(priv)

    await h.sql(`SELECT realtime.send('{"a":1}', 'evt', 'lite-ns', false)`)
    await h.sql(`SELECT realtime.send('{"a":2}', 'evt', 'lite-ns')`)
    await h.sql(`BEGIN; SELECT realtime.send('{"a":99}', 'evt', 'lite-ns'); ROLLBACK`)
    await h.sql(`SELECT realtime.send('{"a":3}', 'evt', 'lite-ns', false)`)
    await h.sql(`SELECT realtime.send('{"a":4}', 'evt', 'lite-ns')`)
    // commit order through one change table: the last send is the barrier for both namespaces
    await pubGot.waitFor((m) => m.payload.a === 3, 15000)
    await privGot.waitFor((m) => m.payload.a === 4, 15000)
    assert.deepEqual(pubGot.items.map((m) => m.payload.a), [1, 3])
    assert.deepEqual(privGot.items.map((m) => m.payload.a), [2, 4])
  })
})
