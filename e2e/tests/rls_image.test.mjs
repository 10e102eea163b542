// Row level security judged on the committed row image (protocol §4.5), through the real
// supabase-js client and the SSE transport against `realtime dev`: a row reassigned in the same
// transaction, and a primary key reused after a DELETE and replayed by an SSE resume, never show
// one user's row to another.

import assert from 'node:assert/strict'
import { afterEach, describe } from 'node:test'
import { Collector, subscribed } from '../lib/client.mjs'
import { useDevServer } from '../lib/dev.mjs'
import { SSEPool } from '../lib/sse.mjs'

describe('RLS on the committed row image', () => {
  const h = useDevServer()
  const sse = new SSEPool()
  afterEach(() => sse.closeAll())

  async function userClient(key) {
    const c = h.client({ accessToken: async () => key })
    await c.realtime.setAuth(key)
    return c
  }

  /** Joins a todos channel as `key` and returns the Collector of its change payloads. */
  async function todosFor(key, name) {
    const ch = (await userClient(key)).channel(name)
    const got = new Collector(`todos on ${name}`)
    const sys = new Collector(`system on ${name}`)
    ch.on('postgres_changes', { event: '*', schema: 'public', table: 'todos' }, got.push)
    ch.on('system', {}, sys.push)
    await subscribed(ch)
    const st = await sys.waitFor((p) => p.extension === 'postgres_changes', 15000)
    assert.equal(st.status, 'ok', JSON.stringify(st))
    return got
  }

  h.test('a row inserted by bob and reassigned to alice in the same transaction: alice gets only the UPDATE, bob only the INSERT', async () => {
    const alice = await todosFor(h.srv.userKey, 'img-reassign-a')
    const bob = await todosFor(h.srv.user2Key, 'img-reassign-b')
    await h.sql(`BEGIN;
      INSERT INTO todos (id, user_id, title) VALUES (95101, '${h.srv.user2Id}', 'bob private');
      UPDATE todos SET user_id = '${h.srv.userId}', title = 'now alice''s' WHERE id = 95101;
      COMMIT`)
    await h.sql(`INSERT INTO todos (user_id, title) VALUES ($1, 'img-marker-a'), ($2, 'img-marker-b')`, [h.srv.userId, h.srv.user2Id])
    await alice.waitFor((p) => p.new?.title === 'img-marker-a')
    await bob.waitFor((p) => p.new?.title === 'img-marker-b')
    assert.deepEqual(alice.items.map((p) => `${p.eventType} ${p.new.title}`), ["UPDATE now alice's", 'INSERT img-marker-a'])
    assert.deepEqual(bob.items.map((p) => `${p.eventType} ${p.new.title}`), ['INSERT bob private', 'INSERT img-marker-b'])
  })

  h.test('primary key reused after a DELETE: an SSE resume from 0-0 replays none of bob\'s row', async () => {
    await h.sql(`INSERT INTO todos (id, user_id, title) VALUES (95102, $1, 'bob secret')`, [h.srv.user2Id])
    await h.sql(`UPDATE todos SET title = 'bob secret 2' WHERE id = 95102`)
    await h.sql(`DELETE FROM todos WHERE id = 95102`)
    await h.sql(`INSERT INTO todos (id, user_id, title) VALUES (95102, $1, 'alice reuse')`, [h.srv.userId])
    const q = new URLSearchParams({ apikey: h.srv.anonKey, schema: 'public', table: 'todos', access_token: h.srv.userKey, last_event_id: '0-0' })
    const s = sse.eventSource(`${h.srv.httpUrl}/realtime/v1/sse?${q}`)
    await s.waitEvent((e) => e.event === 'postgres_changes' && e.json?.record?.title === 'alice reuse')
    await s.waitEvent((e) => e.event === 'system' && e.json?.status === 'ok')
    const [marker] = (await h.sql(`INSERT INTO todos (user_id, title) VALUES ($1, 'img-sse-marker') RETURNING id`, [h.srv.userId])).rows
    await s.waitEvent((e) => e.json?.record?.id === Number(marker.id))
    const rows = s.named('postgres_changes').map((e) => e.json)
    const leaked = rows.filter((d) => JSON.stringify(d).includes('bob secret') || (d.record?.user_id && d.record.user_id !== h.srv.userId))
    assert.deepEqual(leaked, [], 'bob\'s row replayed to alice')
  })
})
