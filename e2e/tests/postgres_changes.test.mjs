// postgres_changes (protocol §3.3, §3.5, §4) through the real supabase-js client against
// `realtime dev` (a throwaway PostgreSQL 15 with the demo schema: owner-only `todos` under RLS
// with a `secret` column users may not read, and the open `messages` table).
//
// Rows are written with the `pg` package as the database superuser. Every test uses its own table
// (created and published by the test) or its own titles on `todos`. "Never arrives" is proven with
// a barrier: a later row, committed after the one that must be skipped, that the same binding
// does receive; changes reach a channel in commit order.

import assert from 'node:assert/strict'
import { describe } from 'node:test'
import { collectBroadcasts, Collector, subscribed, subscribeRecorded } from '../lib/client.mjs'
import { createPublishedTable, useDevServer } from '../lib/dev.mjs'
import { safeJson } from '../lib/wait.mjs'

const COMMIT_TS_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const PAYLOAD_KEYS = ['commit_timestamp', 'errors', 'eventType', 'new', 'old', 'schema', 'table']

describe('postgres_changes through supabase-js', () => {
  const h = useDevServer()

  /** Creates public.<name> (columns DDL) plus extra statements, publishes it and waits until usable. */
  async function table(name, columns, ...extra) {
    await h.sql(`DROP TABLE IF EXISTS public.${name}`)
    await createPublishedTable(h.srv, name, `CREATE TABLE public.${name} (${columns})`)
    for (const stmt of extra) await h.sql(stmt)
  }

  /**
   * A client that acts as `key` on its channels. The first join of a fresh supabase-js client
   * carries no access_token when only `accessToken` is given (protocol §3.2); setAuth() before
   * subscribe() puts the token into the join payload.
   */
  async function userClient(key, opts = {}) {
    const c = h.client({ accessToken: async () => key, ...opts })
    await c.realtime.setAuth(key)
    return c
  }

  /** Registers a postgres_changes binding and returns a Collector of the callback payloads. */
  function changes(channel, filter, name) {
    const c = new Collector(name ?? `changes on ${channel.topic} ${safeJson(filter)}`)
    channel.on('postgres_changes', filter, c.push)
    return c
  }

  /** Registers a system listener and returns a Collector of system payloads. */
  function systemMessages(channel) {
    const c = new Collector(`system on ${channel.topic}`)
    channel.on('system', {}, c.push)
    return c
  }

  /**
   * Subscribes and waits for SUBSCRIBED plus the postgres_changes status system message; fails if
   * that status is not ok. Returns the status payload. Only after it may rows be written.
   */
  async function joinPg(channel, sys) {
    await subscribed(channel)
    const m = await sys.waitFor((p) => p.extension === 'postgres_changes', 15000)
    assert.equal(m.status, 'ok', `postgres_changes subscription failed: ${safeJson(m)}`)
    return m
  }

  /** Asserts the common shape of a callback payload (protocol §4.2). */
  function assertShape(p, { table: tbl, eventType }) {
    assert.deepEqual(Object.keys(p).sort(), PAYLOAD_KEYS, safeJson(p))
    assert.equal(p.schema, 'public')
    assert.equal(p.table, tbl)
    assert.equal(p.eventType, eventType)
    assert.equal(p.errors, null)
    assert.match(p.commit_timestamp, COMMIT_TS_RE)
  }

  h.test('INSERT, UPDATE and DELETE reach the callback with the documented payload', async () => {
    await table('pc_crud', 'id bigint PRIMARY KEY, room text NOT NULL, body text, n int')
    const ch = h.client().channel('pc-crud')
    const got = changes(ch, { event: '*', schema: 'public', table: 'pc_crud' })
    const sys = systemMessages(ch)
    await joinPg(ch, sys)

    const before = (await h.sql('SELECT clock_timestamp() AS t')).rows[0].t
    await h.sql(`INSERT INTO pc_crud VALUES (1, 'a', 'hello', 7)`)
    const after = (await h.sql('SELECT clock_timestamp() AS t')).rows[0].t
    const ins = await got.waitFor((p) => p.eventType === 'INSERT')
    assertShape(ins, { table: 'pc_crud', eventType: 'INSERT' })
    assert.deepEqual(ins.new, { id: 1, room: 'a', body: 'hello', n: 7 })
    assert.deepEqual(ins.old, {})
    // The commit happened between the two clock readings (both from the database clock); the
    // +1 ms allows for rounding of the millisecond-precision timestamp.
    const ts = Date.parse(ins.commit_timestamp)
    assert.ok(ts >= before.getTime() && ts <= after.getTime() + 1, `${ins.commit_timestamp} not within [${before.toISOString()}, ${after.toISOString()}]`)

    await h.sql(`UPDATE pc_crud SET body = 'changed', n = NULL WHERE id = 1`)
    const upd = await got.waitFor((p) => p.eventType === 'UPDATE')
    assertShape(upd, { table: 'pc_crud', eventType: 'UPDATE' })
    assert.deepEqual(upd.new, { id: 1, room: 'a', body: 'changed', n: null })
    assert.deepEqual(upd.old, { id: 1 }, 'default replica identity: old holds the primary key only')
    assert.ok(Date.parse(upd.commit_timestamp) >= ts)

    await h.sql(`DELETE FROM pc_crud WHERE id = 1`)
    const del = await got.waitFor((p) => p.eventType === 'DELETE')
    assertShape(del, { table: 'pc_crud', eventType: 'DELETE' })
    assert.deepEqual(del.new, {})
    assert.deepEqual(del.old, { id: 1 })

    assert.deepEqual(got.items.map((p) => p.eventType), ['INSERT', 'UPDATE', 'DELETE'])
  })

  h.test('a transaction\'s changes arrive in statement order; a rolled-back one never arrives', async () => {
    await table('pc_tx', 'id bigint PRIMARY KEY, v text')
    const ch = h.client().channel('pc-tx')
    const got = changes(ch, { event: '*', schema: 'public', table: 'pc_tx' })
    await joinPg(ch, systemMessages(ch))
    await h.sql(`BEGIN; INSERT INTO pc_tx VALUES (1, 'a'), (2, 'b'); UPDATE pc_tx SET v = 'c' WHERE id = 1;
                 DELETE FROM pc_tx WHERE id = 2; INSERT INTO pc_tx VALUES (3, 'd'); COMMIT`)
    await h.sql(`BEGIN; INSERT INTO pc_tx VALUES (50, 'rolled back'); ROLLBACK`)
    await h.sql(`INSERT INTO pc_tx VALUES (4, 'barrier')`)
    await got.waitFor((p) => p.new.id === 4)
    assert.deepEqual(
      got.items.map((p) => [p.eventType, p.new.id ?? p.old.id]),
      [['INSERT', 1], ['INSERT', 2], ['UPDATE', 1], ['DELETE', 2], ['INSERT', 3], ['INSERT', 4]],
      'statement order within the transaction; the rolled-back insert never arrives'
    )
    assert.equal(new Set(got.items.slice(0, 5).map((p) => p.commit_timestamp)).size, 1, 'one transaction, one commit timestamp')
  })

  h.test('event filters: INSERT-only / UPDATE-only / DELETE-only bindings get only their kind', async () => {
    await table('pc_events', 'id bigint PRIMARY KEY, v text')
    const c = h.client()
    const chI = c.channel('pc-events-ins')
    const chU = c.channel('pc-events-upd')
    const chD = c.channel('pc-events-del')
    const ins = changes(chI, { event: 'INSERT', schema: 'public', table: 'pc_events' })
    const upd = changes(chU, { event: 'UPDATE', schema: 'public', table: 'pc_events' })
    // Lower case: the server must echo it unchanged (§3.3) and still treat it as DELETE (§4.6).
    const del = changes(chD, { event: 'delete', schema: 'public', table: 'pc_events' })
    await Promise.all([joinPg(chI, systemMessages(chI)), joinPg(chU, systemMessages(chU)), joinPg(chD, systemMessages(chD))])

    await h.sql(`INSERT INTO pc_events VALUES (1, 'a')`)
    await h.sql(`UPDATE pc_events SET v = 'b' WHERE id = 1`)
    await h.sql(`DELETE FROM pc_events WHERE id = 1`)
    await h.sql(`INSERT INTO pc_events VALUES (2, 'x')`) // barrier for the INSERT binding
    await ins.waitFor((p) => p.new.id === 2)
    await h.sql(`UPDATE pc_events SET v = 'y' WHERE id = 2`) // barrier for UPDATE
    await upd.waitFor((p) => p.new.id === 2)
    await h.sql(`DELETE FROM pc_events WHERE id = 2`) // barrier for DELETE
    await del.waitFor((p) => p.old.id === 2)
    await h.sql(`INSERT INTO pc_events VALUES (3, 'z')`) // second barrier for INSERT
    await ins.waitFor((p) => p.new.id === 3)

    assert.deepEqual(ins.items.map((p) => [p.eventType, p.new.id]), [['INSERT', 1], ['INSERT', 2], ['INSERT', 3]])
    assert.deepEqual(upd.items.map((p) => [p.eventType, p.new.id, p.new.v]), [['UPDATE', 1, 'b'], ['UPDATE', 2, 'y']])
    assert.deepEqual(del.items.map((p) => [p.eventType, p.old.id]), [['DELETE', 1], ['DELETE', 2]])
  })

  h.test('row filters (eq, neq, in, gt, AND, like, ilike, not., quoted value) deliver only matching rows', async () => {
    await table('pc_filters', 'id bigint PRIMARY KEY, room text NOT NULL, n int NOT NULL')
    const c = h.client()
    const filters = {
      eq: 'room=eq.a',
      neq: 'room=neq.a',
      in: 'room=in.(a,b)',
      gt: 'n=gt.5',
      quoted: 'room=eq."a,b"',
      and: 'room=eq.b,n=lt.3',
      like: 'room=like.a%',
      ilike: 'room=ilike.a%',
      noteq: 'room=not.eq.a',
    }
    const cols = {}
    const chans = Object.entries(filters).map(([k, filter]) => {
      const ch = c.channel(`pc-filter-${k}`)
      cols[k] = changes(ch, { event: 'INSERT', schema: 'public', table: 'pc_filters', filter })
      return [ch, systemMessages(ch)]
    })
    await Promise.all(chans.map(([ch, sys]) => joinPg(ch, sys)))

    // Each row: [id, room, n]. Ids >= 100 are the barrier rows, committed last.
    await h.sql(`INSERT INTO pc_filters VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 9), (4, 'a,b', 4), (5, 'A', 6), (6, 'b', 3)`)
    await h.sql(`INSERT INTO pc_filters VALUES (100, 'a', 100), (101, 'q', 100), (102, 'a,b', 100), (103, 'b', 0)`)
    const expected = {
      eq: [1, 100],
      neq: [2, 3, 4, 5, 6, 101, 102, 103],
      in: [1, 2, 6, 100, 103],
      gt: [3, 5, 100, 101, 102],
      quoted: [4, 102],
      and: [2, 103],
      like: [1, 4, 100, 102],
      ilike: [1, 4, 5, 100, 102],
      noteq: [2, 3, 4, 5, 6, 101, 102, 103],
    }
    for (const [k, ids] of Object.entries(expected)) {
      const last = ids[ids.length - 1]
      await cols[k].waitFor((p) => p.new.id === last)
      assert.deepEqual(cols[k].items.map((p) => p.new.id), ids, `filter ${filters[k]}`)
    }
  })

  h.test('two bindings on one channel: one frame fires both callbacks when both match', async () => {
    await table('pc_two', 'id bigint PRIMARY KEY, room text NOT NULL')
    const frames = []
    const c = h.client({
      logger: (kind, msg, data) => {
        if (kind === 'receive' && msg.includes('realtime:pc-two postgres_changes')) frames.push(data)
      },
    })
    const ch = c.channel('pc-two')
    const roomA = changes(ch, { event: '*', schema: 'public', table: 'pc_two', filter: 'room=eq.a' }, 'room a')
    const inserts = changes(ch, { event: 'INSERT', schema: 'public', table: 'pc_two' }, 'all inserts')
    await joinPg(ch, systemMessages(ch))
    const [idA, idIns] = ch.bindings.postgres_changes.map((b) => b.id)
    assert.ok(idA && idIns && idA !== idIns, `binding ids ${idA}, ${idIns}`)

    await h.sql(`INSERT INTO pc_two VALUES (1, 'a')`) // both
    await h.sql(`INSERT INTO pc_two VALUES (2, 'b')`) // inserts only
    await h.sql(`UPDATE pc_two SET room = 'a' WHERE id = 1`) // room a only (UPDATE)
    await h.sql(`INSERT INTO pc_two VALUES (3, 'a')`) // both (barrier)
    await roomA.waitFor((p) => p.new.id === 3)
    await inserts.waitFor((p) => p.new.id === 3)

    assert.deepEqual(roomA.items.map((p) => [p.eventType, p.new.id]), [['INSERT', 1], ['UPDATE', 1], ['INSERT', 3]])
    assert.deepEqual(inserts.items.map((p) => [p.eventType, p.new.id]), [['INSERT', 1], ['INSERT', 2], ['INSERT', 3]])
    // One frame per change for the channel, carrying the ids of every binding it satisfies.
    assert.deepEqual(
      frames.map((f) => [f.data.type, f.data.record.id, [...f.ids].sort()]),
      [
        ['INSERT', 1, [idA, idIns].sort()],
        ['INSERT', 2, [idIns]],
        ['UPDATE', 1, [idA]],
        ['INSERT', 3, [idA, idIns].sort()],
      ]
    )
    // Both callbacks of a shared frame got the same payload.
    assert.deepEqual(roomA.items[0], inserts.items[0])
  })

  h.test('RLS: each user gets only their own todos, never the secret column', async () => {
    const alice = await userClient(h.srv.userKey)
    const bob = await userClient(h.srv.user2Key)
    const chA = alice.channel('pc-rls-alice')
    const chB = bob.channel('pc-rls-bob')
    const gotA = changes(chA, { event: '*', schema: 'public', table: 'todos' }, 'alice')
    const gotB = changes(chB, { event: '*', schema: 'public', table: 'todos' }, 'bob')
    await Promise.all([joinPg(chA, systemMessages(chA)), joinPg(chB, systemMessages(chB))])

    const insert = async (userId, title) =>
      (await h.sql(`INSERT INTO todos (user_id, title, secret) VALUES ($1, $2, 'top secret') RETURNING id`, [userId, title])).rows[0].id
    const a1 = Number(await insert(h.srv.userId, 'rls-a1'))
    await gotA.waitFor((p) => p.eventType === 'INSERT' && p.new.id === a1)
    const b1 = Number(await insert(h.srv.user2Id, 'rls-b1'))
    await gotB.waitFor((p) => p.eventType === 'INSERT' && p.new.id === b1)
    await h.sql(`UPDATE todos SET done = true, secret = 'still secret' WHERE id = $1`, [a1])
    await gotA.waitFor((p) => p.eventType === 'UPDATE' && p.new.id === a1)
    await h.sql(`UPDATE todos SET done = true WHERE id = $1`, [b1])
    await gotB.waitFor((p) => p.eventType === 'UPDATE' && p.new.id === b1)
    // DELETE cannot be checked against RLS (§4.5): every subscriber gets it, with the key only.
    await h.sql(`DELETE FROM todos WHERE id = $1`, [a1])
    await gotA.waitFor((p) => p.eventType === 'DELETE')
    await gotB.waitFor((p) => p.eventType === 'DELETE')
    const a2 = Number(await insert(h.srv.userId, 'rls-a2'))
    const b2 = Number(await insert(h.srv.user2Id, 'rls-b2'))
    await gotA.waitFor((p) => p.new.id === a2)
    await gotB.waitFor((p) => p.new.id === b2)

    const summary = (items) => items.map((p) => [p.eventType, p.new.id ?? p.old.id, p.new.title ?? null])
    assert.deepEqual(summary(gotA.items), [['INSERT', a1, 'rls-a1'], ['UPDATE', a1, 'rls-a1'], ['DELETE', a1, null], ['INSERT', a2, 'rls-a2']])
    assert.deepEqual(summary(gotB.items), [['INSERT', b1, 'rls-b1'], ['UPDATE', b1, 'rls-b1'], ['DELETE', a1, null], ['INSERT', b2, 'rls-b2']])
    for (const p of [...gotA.items, ...gotB.items]) {
      assert.equal(p.errors, null)
      assert.ok(!('secret' in p.new) && !('secret' in p.old), `secret leaked: ${safeJson(p)}`)
      if (p.eventType !== 'DELETE') {
        assert.deepEqual(Object.keys(p.new).sort(), ['done', 'id', 'inserted_at', 'title', 'user_id'])
        assert.deepEqual(p.old, p.eventType === 'UPDATE' ? { id: p.new.id } : {})
      } else {
        assert.deepEqual(p.old, { id: a1 }, 'DELETE on an RLS table: primary key only')
      }
    }
    assert.equal(gotA.items[0].new.user_id, h.srv.userId)
    assert.equal(gotB.items[0].new.user_id, h.srv.user2Id)
  })

  h.test('RLS: anon (no SELECT privilege on todos) gets nothing about todos, not even an Error 401 event', async () => {
    const ch = h.client().channel('pc-rls-anon')
    const got = changes(ch, { event: '*', schema: 'public', table: 'todos' })
    const barrier = changes(ch, { event: 'INSERT', schema: 'public', table: 'messages', filter: 'room=eq.pc-rls-anon' })
    await joinPg(ch, systemMessages(ch))
    await h.sql(`INSERT INTO todos (user_id, title, secret) VALUES ($1, 'anon-sees-nothing', 's')`, [h.srv.userId])
    await h.sql(`INSERT INTO messages (room, body) VALUES ('pc-rls-anon', 'barrier')`)
    await barrier.waitFor()
    assert.deepEqual(got.items, [], 'anon received an event about todos')
  })

  h.test('system message: "Subscribed to PostgreSQL" once the subscription is active', async () => {
    await table('pc_sys_ok', 'id bigint PRIMARY KEY')
    const ch = h.client().channel('pc-sys-ok')
    changes(ch, { event: '*', schema: 'public', table: 'pc_sys_ok' })
    const sys = systemMessages(ch)
    const bcs = collectBroadcasts(ch, 'barrier')
    await joinPg(ch, sys)
    assert.deepEqual(sys.items[0], {
      extension: 'postgres_changes',
      status: 'ok',
      message: 'Subscribed to PostgreSQL',
      channel: 'pc-sys-ok',
    })
    // Exactly one status message: a broadcast sent afterwards arrives after anything queued before it.
    const peer = h.client().channel('pc-sys-ok')
    await subscribed(peer)
    await peer.send({ type: 'broadcast', event: 'barrier', payload: {} })
    await bcs.waitFor()
    assert.equal(sys.items.length, 1, `system messages: ${safeJson(sys.items)}`)
  })

  for (const [what, binding, mentions] of [
    ['a filter on an unknown column', { event: '*', schema: 'public', table: 'messages', filter: 'nope=eq.1' }, 'nope'],
    ['an unknown table', { event: '*', schema: 'public', table: 'no_such_table' }, 'no_such_table'],
    ['an unparsable filter', { event: '*', schema: 'public', table: 'messages', filter: 'room' }, 'filter'],
  ]) {
    h.test(`system error for ${what}; the channel stays SUBSCRIBED and still gets broadcasts`, async () => {
      const name = `pc-sys-err-${mentions}`
      const ch = h.client().channel(name)
      const got = changes(ch, binding)
      const sys = systemMessages(ch)
      const bcs = collectBroadcasts(ch, 'after-error')
      const rec = subscribeRecorded(ch)
      await rec.waitFor('SUBSCRIBED')
      const m = await sys.waitFor((p) => p.extension === 'postgres_changes', 15000)
      assert.equal(m.status, 'error', safeJson(m))
      assert.equal(m.channel, name)
      assert.equal(typeof m.message, 'string')
      assert.ok(m.message.includes(mentions), `message should mention ${mentions}: ${m.message}`)

      const peer = h.client().channel(name)
      await subscribed(peer)
      assert.equal(await peer.send({ type: 'broadcast', event: 'after-error', payload: { n: 1 } }), 'ok')
      assert.deepEqual((await bcs.waitFor()).payload, { n: 1 })
      assert.equal(ch.state, 'joined')
      assert.deepEqual(rec.statuses.map((s) => s.status), ['SUBSCRIBED'])
      assert.equal(sys.items.length, 1, safeJson(sys.items))
      assert.deepEqual(got.items, [])
    })
  }

  h.test('join reply echo: filter, select, extra keys and event case survive; ids are set', async () => {
    await table('pc_echo', 'id bigint PRIMARY KEY, room text, body text')
    const ch = h.client().channel('pc-echo')
    const bindings = [
      { event: 'insert', schema: 'public', table: 'pc_echo', filter: 'room=eq.a' },
      { event: '*', schema: 'public', table: 'pc_echo', filter: 'room=in.(a,"b c")' },
      { event: 'UPDATE', schema: 'public', table: 'pc_echo', select: ['body'] },
      { event: '*', schema: 'public', table: 'pc_echo' },
    ]
    for (const b of bindings) changes(ch, b)
    const rec = subscribeRecorded(ch)
    const sys = systemMessages(ch)
    await rec.waitFor('SUBSCRIBED')
    await sys.waitFor((p) => p.extension === 'postgres_changes' && p.status === 'ok')
    const ids = ch.bindings.postgres_changes.map((b) => b.id)
    assert.equal(ids.length, 4)
    for (const id of ids) assert.ok(Number.isInteger(id) && id > 0, `binding id ${safeJson(id)}`)
    assert.equal(new Set(ids).size, 4, 'distinct bindings get distinct ids')
    assert.deepEqual(rec.statuses.map((s) => [s.status, s.err?.message]), [['SUBSCRIBED', undefined]])

    // The raw reply echoes each element verbatim (unknown keys included), in order, plus an id.
    const s = await h.raw()
    const sent = [...bindings.slice(0, 3), { event: 'DELETE', schema: 'public', table: 'pc_echo', custom: { x: [1] } }]
    const { reply } = await s.join('realtime:pc-echo-raw', { postgres_changes: sent })
    assert.equal(reply.payload.status, 'ok', reply.raw)
    const echoed = reply.payload.response.postgres_changes
    assert.equal(echoed.length, sent.length, reply.raw)
    echoed.forEach((e, i) => {
      const { id, ...rest } = e
      assert.deepEqual(rest, sent[i], `element ${i}: ${reply.raw}`)
      assert.ok(Number.isInteger(id) && id > 0, reply.raw)
    })
  })

  h.test('value rendering through the client callback (int8 … bytea, NULL, special values)', async () => {
    await table(
      'pc_types',
      `id int8 PRIMARY KEY, i8 int8, num numeric, f8 float8, b bool, t text, u uuid, j jsonb,
       ts timestamptz, d date, ia int4[], ta text[], by bytea, nothing text`
    )
    const ch = h.client().channel('pc-types')
    const got = changes(ch, { event: 'INSERT', schema: 'public', table: 'pc_types' })
    await joinPg(ch, systemMessages(ch))
    // Raw frames as well, to see the JSON text the client parsed.
    const s = await h.raw()
    const { reply } = await s.join('realtime:pc-types-raw', {
      postgres_changes: [{ event: 'INSERT', schema: 'public', table: 'pc_types' }],
    })
    assert.equal(reply.payload.status, 'ok', reply.raw)
    await s.next((r) => r.event === 'system' && r.payload.status === 'ok', 15000, 'postgres_changes ok system frame')

    await h.sql(`INSERT INTO pc_types VALUES (1, 9007199254740993, 10.50, 1.5, true, $1,
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1, "a": [1, 2], "s": "x"}', '2024-05-01 12:00:00.5+02',
      '2024-05-01', '{1,2,NULL}', '{a,"b c",NULL}', '\\x0102ff', NULL)`, ['héllo "q"\n\ttab ✓'])
    await h.sql(`INSERT INTO pc_types (id, i8, num, f8, b, j, ia, ta) VALUES (2, -42, 'NaN', 'Infinity', false, '"123"', '{}', '{}')`)
    await h.sql(`INSERT INTO pc_types (id, num, f8, j) VALUES (3, -0.000001, '-Infinity', '[1, "two", null, {"k": false}]')`)
    await got.waitForCount(3)
    const [r1, r2, r3] = got.items.map((p) => p.new)

    assert.deepEqual(r1, {
      id: 1,
      i8: 9007199254740992, // 9007199254740993 as a JS number
      num: 10.5,
      f8: 1.5,
      b: true,
      t: 'héllo "q"\n\ttab ✓',
      u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      j: { a: [1, 2], b: 1, s: 'x' },
      ts: '2024-05-01T10:00:00.5+00:00',
      d: '2024-05-01',
      ia: [1, 2, null],
      ta: ['a', 'b c', null],
      by: '\\x0102ff',
      nothing: null,
    })
    // numeric NaN arrives as the string "NaN" (the client keeps strings parseFloat cannot read);
    // float8 Infinity as the string "Infinity", which the client turns into the number; a jsonb
    // string that looks like JSON is parsed by the client (documented quirk).
    assert.deepEqual(r2, { id: 2, i8: -42, num: 'NaN', f8: Infinity, b: false, t: null, u: null, j: 123, ts: null, d: null, ia: [], ta: [], by: null, nothing: null })
    assert.equal(r3.num, -0.000001)
    assert.equal(r3.f8, -Infinity)
    assert.deepEqual(r3.j, [1, 'two', null, { k: false }])

    // On the wire: native JSON types, int8 at full precision, numeric scale preserved.
    const f1 = await s.next((r) => r.event === 'postgres_changes' && r.payload.data.record.id === 1, 10000, 'raw change 1')
    assert.match(f1.raw, /"i8":\s*9007199254740993[,}]/)
    assert.match(f1.raw, /"num":\s*10\.50[,}]/)
    assert.match(f1.raw, /"b":\s*true[,}]/)
    assert.match(f1.raw, /"by":\s*"\\\\x0102ff"/)
    const types = Object.fromEntries(f1.payload.data.columns.map((c) => [c.name, c.type]))
    assert.deepEqual(types, {
      id: 'int8', i8: 'int8', num: 'numeric', f8: 'float8', b: 'bool', t: 'text', u: 'uuid', j: 'jsonb',
      ts: 'timestamptz', d: 'date', ia: '_int4', ta: '_text', by: 'bytea', nothing: 'text',
    })
    const f2 = await s.next((r) => r.event === 'postgres_changes' && r.payload.data.record.id === 2, 10000, 'raw change 2')
    assert.equal(f2.payload.data.record.num, 'NaN')
    assert.equal(f2.payload.data.record.f8, 'Infinity')
    assert.equal(f2.payload.data.record.j, '123')
  })

  h.test('select restricts new/old to the listed columns plus the primary key', async () => {
    await table('pc_select', 'id bigint PRIMARY KEY, room text, body text, n int', 'ALTER TABLE pc_select REPLICA IDENTITY FULL')
    const ch = h.client().channel('pc-select')
    const got = changes(ch, { event: '*', schema: 'public', table: 'pc_select', select: ['body'] })
    await joinPg(ch, systemMessages(ch))
    await h.sql(`INSERT INTO pc_select VALUES (1, 'a', 'hello', 5)`)
    await h.sql(`UPDATE pc_select SET body = 'bye', n = 6 WHERE id = 1`)
    await h.sql(`DELETE FROM pc_select WHERE id = 1`)
    await got.waitForCount(3)
    assert.deepEqual(
      got.items.map((p) => [p.eventType, p.new, p.old]),
      [
        ['INSERT', { id: 1, body: 'hello' }, {}],
        ['UPDATE', { id: 1, body: 'bye' }, { id: 1, body: 'hello' }],
        ['DELETE', {}, { id: 1, body: 'bye' }],
      ]
    )
  })

  h.test('old record: REPLICA IDENTITY DEFAULT vs FULL; FULL with RLS keeps only the key on DELETE', async () => {
    await table('pc_ri_default', 'id bigint PRIMARY KEY, a text, b int')
    await table('pc_ri_full', 'id bigint PRIMARY KEY, a text, b int', 'ALTER TABLE pc_ri_full REPLICA IDENTITY FULL')
    await table(
      'pc_ri_full_rls',
      'id bigint PRIMARY KEY, a text, b int',
      'ALTER TABLE pc_ri_full_rls REPLICA IDENTITY FULL',
      'ALTER TABLE pc_ri_full_rls ENABLE ROW LEVEL SECURITY',
      'CREATE POLICY everyone ON pc_ri_full_rls FOR SELECT USING (true)'
    )
    const c = h.client()
    const got = {}
    const joins = []
    for (const t of ['pc_ri_default', 'pc_ri_full', 'pc_ri_full_rls']) {
      const ch = c.channel(t.replaceAll('_', '-'))
      got[t] = changes(ch, { event: '*', schema: 'public', table: t })
      joins.push(joinPg(ch, systemMessages(ch)))
    }
    await Promise.all(joins)
    for (const t of Object.keys(got)) await h.sql(`INSERT INTO ${t} VALUES (1, 'x', 1)`)
    for (const t of Object.keys(got)) await got[t].waitFor((p) => p.eventType === 'INSERT')
    for (const t of Object.keys(got)) await h.sql(`UPDATE ${t} SET a = 'y' WHERE id = 1`)
    for (const t of Object.keys(got)) await got[t].waitFor((p) => p.eventType === 'UPDATE')
    for (const t of Object.keys(got)) await h.sql(`DELETE FROM ${t} WHERE id = 1`)
    for (const t of Object.keys(got)) await got[t].waitFor((p) => p.eventType === 'DELETE')

    const olds = (t) => got[t].items.map((p) => [p.eventType, p.old])
    assert.deepEqual(olds('pc_ri_default'), [['INSERT', {}], ['UPDATE', { id: 1 }], ['DELETE', { id: 1 }]])
    assert.deepEqual(olds('pc_ri_full'), [['INSERT', {}], ['UPDATE', { id: 1, a: 'x', b: 1 }], ['DELETE', { id: 1, a: 'y', b: 1 }]])
    assert.deepEqual(olds('pc_ri_full_rls'), [['INSERT', {}], ['UPDATE', { id: 1, a: 'x', b: 1 }], ['DELETE', { id: 1 }]])
    for (const t of Object.keys(got)) assert.deepEqual(got[t].items[1].new, { id: 1, a: 'y', b: 1 }, t)
  })

  h.test('UPDATE of the primary key: old holds the previous key, new the new one', async () => {
    await table('pc_pk', 'id bigint PRIMARY KEY, v text')
    const ch = h.client().channel('pc-pk')
    const got = changes(ch, { event: 'UPDATE', schema: 'public', table: 'pc_pk' })
    await joinPg(ch, systemMessages(ch))
    await h.sql(`INSERT INTO pc_pk VALUES (1, 'a')`)
    await h.sql(`UPDATE pc_pk SET id = 10 WHERE id = 1`)
    const p = await got.waitFor()
    assert.deepEqual(p.new, { id: 10, v: 'a' })
    assert.deepEqual(p.old, { id: 1 })
  })

  h.test('a DELETE filter on a non-key column needs REPLICA IDENTITY FULL', async () => {
    await table('pc_delf_default', 'id bigint PRIMARY KEY, room text')
    await table('pc_delf_full', 'id bigint PRIMARY KEY, room text', 'ALTER TABLE pc_delf_full REPLICA IDENTITY FULL')
    const c = h.client()
    const got = {}
    const joins = []
    for (const t of ['pc_delf_default', 'pc_delf_full']) {
      const ch = c.channel(t.replaceAll('_', '-'))
      got[t] = changes(ch, { event: 'DELETE', schema: 'public', table: t, filter: 'room=eq.a' }, `${t} room=a`)
      // Same channel, so its frame for the later DELETE proves the earlier one was not sent.
      got[t + ':barrier'] = changes(ch, { event: 'DELETE', schema: 'public', table: t, filter: 'id=eq.99' }, `${t} barrier`)
      joins.push(joinPg(ch, systemMessages(ch)))
    }
    await Promise.all(joins)
    for (const t of ['pc_delf_default', 'pc_delf_full']) {
      await h.sql(`INSERT INTO ${t} VALUES (1, 'a'), (2, 'b'), (99, 'z')`)
      await h.sql(`DELETE FROM ${t} WHERE id IN (1, 2)`)
      await h.sql(`DELETE FROM ${t} WHERE id = 99`)
      await got[t + ':barrier'].waitFor()
    }
    assert.deepEqual(got.pc_delf_default.items, [], 'the default old image has no room column, so the filter cannot match')
    assert.deepEqual(got.pc_delf_full.items.map((p) => p.old), [{ id: 1, room: 'a' }])
  })

  h.test('unchanged TOASTed column: absent from new with the default identity, complete with FULL', async () => {
    await table('pc_toast', 'id bigint PRIMARY KEY, big text, n int')
    await table('pc_toast_full', 'id bigint PRIMARY KEY, big text, n int', 'ALTER TABLE pc_toast_full REPLICA IDENTITY FULL')
    const c = h.client()
    const got = {}
    const joins = []
    for (const t of ['pc_toast', 'pc_toast_full']) {
      const ch = c.channel(t.replaceAll('_', '-'))
      got[t] = changes(ch, { event: 'UPDATE', schema: 'public', table: t })
      joins.push(joinPg(ch, systemMessages(ch)))
    }
    await Promise.all(joins)
    const big = Array.from({ length: 2000 }, (_, i) => ((i * 2654435761) >>> 0).toString(36)).join('')
    for (const t of Object.keys(got)) {
      await h.sql(`INSERT INTO ${t} VALUES (1, $1, 1)`, [big])
      await h.sql(`UPDATE ${t} SET n = 2 WHERE id = 1`)
    }
    const plain = await got.pc_toast.waitFor()
    assert.deepEqual(plain.new, { id: 1, n: 2 }, 'the unchanged TOAST value is left out (key missing, not null)')
    const full = await got.pc_toast_full.waitFor()
    assert.deepEqual(full.new, { id: 1, big, n: 2 })
    assert.deepEqual(full.old, { id: 1, big, n: 1 })
  })

  h.test('a table without a primary key gives the Error 400 event', async () => {
    await table('pc_nopk', 'v text')
    const ch = h.client().channel('pc-nopk')
    const got = changes(ch, { event: '*', schema: 'public', table: 'pc_nopk' })
    await joinPg(ch, systemMessages(ch))
    await h.sql(`INSERT INTO pc_nopk VALUES ('x')`)
    assert.deepEqual(await got.waitFor(), {
      schema: 'public',
      table: 'pc_nopk',
      commit_timestamp: null,
      eventType: 'INSERT',
      new: {},
      old: {},
      errors: ['Error 400: Bad Request, no primary key'],
    })
  })

  h.test('a schema-only binding receives changes of every published table in the schema', async () => {
    await table('pc_wild_a', 'id bigint PRIMARY KEY')
    await table('pc_wild_b', 'id bigint PRIMARY KEY')
    const ch = h.client().channel('pc-wild')
    const got = changes(ch, { event: 'INSERT', schema: 'public' })
    const rec = subscribeRecorded(ch)
    const sys = systemMessages(ch)
    await rec.waitFor('SUBSCRIBED')
    const m = await sys.waitFor((p) => p.extension === 'postgres_changes', 15000)
    assert.equal(m.status, 'ok', safeJson(m))
    await h.sql(`INSERT INTO pc_wild_a VALUES (1)`)
    await h.sql(`INSERT INTO pc_wild_b VALUES (2)`)
    await got.waitFor((p) => p.table === 'pc_wild_b')
    const mine = got.items.filter((p) => p.table.startsWith('pc_wild_'))
    assert.deepEqual(mine.map((p) => [p.table, p.new.id]), [['pc_wild_a', 1], ['pc_wild_b', 2]])
    assert.deepEqual(rec.statuses.map((s) => s.status), ['SUBSCRIBED'])
  })

  h.test('a table published while the server runs is picked up without restart', async () => {
    // createPublishedTable only waits until the server accepts a binding; the change must flow too.
    await table('pc_late', 'id bigint PRIMARY KEY, v text')
    const ch = h.client().channel('pc-late')
    const got = changes(ch, { event: 'INSERT', schema: 'public', table: 'pc_late' })
    await joinPg(ch, systemMessages(ch))
    await h.sql(`INSERT INTO pc_late VALUES (1, 'fresh')`)
    assert.deepEqual((await got.waitFor()).new, { id: 1, v: 'fresh' })
  })

  h.test('setAuth() before subscribe() joins as the user (RLS rows arrive); messages (no RLS) reach anon too', async () => {
    const joins = []
    const alice = await userClient(h.srv.userKey, {
      logger: (kind, msg, data) => {
        if (kind === 'push' && msg.includes('phx_join')) joins.push(data)
      },
    })
    const chA = alice.channel('pc-mixed-alice')
    const aTodos = changes(chA, { event: 'INSERT', schema: 'public', table: 'todos', filter: "title=eq.mixed" })
    const aMsgs = changes(chA, { event: 'INSERT', schema: 'public', table: 'messages', filter: 'room=eq.mixed' })
    const chAnon = h.client().channel('pc-mixed-anon')
    const anonMsgs = changes(chAnon, { event: 'INSERT', schema: 'public', table: 'messages', filter: 'room=eq.mixed' })
    await Promise.all([joinPg(chA, systemMessages(chA)), joinPg(chAnon, systemMessages(chAnon))])
    await h.sql(`INSERT INTO todos (user_id, title) VALUES ($1, 'mixed')`, [h.srv.userId])
    await h.sql(`INSERT INTO messages (room, body) VALUES ('mixed', 'hi')`)
    assert.equal((await aTodos.waitFor()).new.title, 'mixed')
    assert.equal((await aMsgs.waitFor()).new.body, 'hi')
    assert.equal((await anonMsgs.waitFor()).new.body, 'hi')
    assert.equal(joins.length, 1)
    assert.equal(joins[0].access_token, h.srv.userKey, 'the first join carries the user token')
  })
})
