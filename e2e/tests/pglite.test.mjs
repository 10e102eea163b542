// postgres_changes from PGlite (the notify source) through the real supabase-js client:
// `realtime dev --source notify` runs cmd/pglite-bridge with the same demo schema (owner-only `todos`
// under RLS, `secret` not readable by users) and the service on it. Rows are written over the
// bridge with `pg` on a single connection (the bridge shares one backend session between sockets).

import assert from 'node:assert/strict'
import path from 'node:path'
import { describe } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Collector, subscribed } from '../lib/client.mjs'
import { useDevServer } from '../lib/dev.mjs'
import { safeJson } from '../lib/wait.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const pgliteBridge = path.resolve(here, '../../cmd/pglite-bridge/bridge.mjs')

describe('postgres_changes from PGlite (--source notify)', () => {
  const h = useDevServer({
    extraArgs: ['--source', 'notify', '--poll-interval', '20ms'],
    env: { PGLITE_BRIDGE: pgliteBridge },
    poolMax: 1,
    startTimeoutMs: 180000,
  })

  async function userChannel(key, name) {
    const c = h.client({ accessToken: async () => key })
    await c.realtime.setAuth(key)
    const ch = c.channel(name)
    const got = new Collector(`changes on ${name}`)
    const sys = new Collector(`system on ${name}`)
    ch.on('postgres_changes', { event: '*', schema: 'public', table: 'todos' }, got.push)
    ch.on('system', {}, sys.push)
    await subscribed(ch)
    const m = await sys.waitFor((p) => p.extension === 'postgres_changes', 15000)
    assert.equal(m.status, 'ok', safeJson(m))
    return got
  }

  h.test('owner-only RLS across two users: each gets only their rows, never the secret column', async () => {
    const gotA = await userChannel(h.srv.userKey, 'lite-alice')
    const gotB = await userChannel(h.srv.user2Key, 'lite-bob')
    const insert = async (userId, title) =>
      Number((await h.sql(`INSERT INTO todos (user_id, title, secret) VALUES ($1, $2, 'top secret') RETURNING id`, [userId, title])).rows[0].id)

    const a1 = await insert(h.srv.userId, 'lite-a1')
    const b1 = await insert(h.srv.user2Id, 'lite-b1')
    const a2 = await insert(h.srv.userId, 'lite-a2')
    await h.sql(`UPDATE todos SET done = true WHERE id = $1`, [a1])
    await gotA.waitFor((p) => p.eventType === 'UPDATE' && p.new.id === a1)
    const b2 = await insert(h.srv.user2Id, 'lite-b2') // barrier for bob
    await gotB.waitFor((p) => p.eventType === 'INSERT' && p.new.id === b2)

    const summary = (items) => items.map((p) => [p.eventType, p.new.id, p.new.title])
    assert.deepEqual(summary(gotA.items), [['INSERT', a1, 'lite-a1'], ['INSERT', a2, 'lite-a2'], ['UPDATE', a1, 'lite-a1']])
    assert.deepEqual(summary(gotB.items), [['INSERT', b1, 'lite-b1'], ['INSERT', b2, 'lite-b2']])
    for (const p of [...gotA.items, ...gotB.items]) {
      assert.equal(p.errors, null)
      assert.equal(p.schema, 'public')
      assert.equal(p.table, 'todos')
      assert.match(p.commit_timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
      assert.ok(!('secret' in p.new), `secret leaked: ${safeJson(p)}`)
      assert.deepEqual(Object.keys(p.new).sort(), ['done', 'id', 'inserted_at', 'title', 'user_id'])
    }
    assert.equal(gotA.items[0].new.user_id, h.srv.userId)
    assert.equal(gotB.items[0].new.user_id, h.srv.user2Id)
  })
})
