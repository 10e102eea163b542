// The SSE transport (GET /realtime/v1/sse, realtime/sse.go) driven by real `curl -N` processes
// and the npm `eventsource` client against `realtime dev`: headers, postgres_changes events with
// cursor ids whose data is the WebSocket frame's data object, RLS per user, resume after a
// disconnect (Last-Event-ID header / last_event_id query), the replay window limit, error
// answers, broadcasts from supabase-js on ?channel=, and heartbeat comments.

import assert from 'node:assert/strict'
import { afterEach, describe } from 'node:test'
import { subscribed } from '../lib/client.mjs'
import { createPublishedTable, useDevServer } from '../lib/dev.mjs'
import { SSEPool } from '../lib/sse.mjs'
import { userToken } from '../lib/tokens.mjs'
import { safeJson, waitFor } from '../lib/wait.mjs'

const CURSOR_RE = /^(\d+)-(\d+)$/

/** Parses an event id `<pos>-<seq>` into [BigInt pos, seq]. */
function cursor(id) {
  const m = CURSOR_RE.exec(id ?? '')
  assert.ok(m, `event id ${safeJson(id)} is not a <pos>-<seq> cursor`)
  return [BigInt(m[1]), Number(m[2])]
}

/** Asserts that the ids are strictly increasing cursors. */
function assertIncreasing(ids) {
  for (let i = 1; i < ids.length; i++) {
    const [p0, s0] = cursor(ids[i - 1])
    const [p1, s1] = cursor(ids[i])
    assert.ok(p1 > p0 || (p1 === p0 && s1 > s0), `cursor ${ids[i]} does not follow ${ids[i - 1]} in ${safeJson(ids)}`)
  }
}

/** URL of the SSE endpoint on `srv` with the query `params` (apikey defaults to the anon key). */
function sseUrl(srv, params = {}) {
  const q = new URLSearchParams({ apikey: srv.anonKey, ...params })
  return `${srv.httpUrl}/realtime/v1/sse?${q}`
}

const pcEvents = (s) => s.named('postgres_changes')
const recordIds = (s) => pcEvents(s).map((e) => e.json.record?.id ?? e.json.old_record?.id)

describe('SSE transport', () => {
  const h = useDevServer({ extraArgs: ['--sse-heartbeat', '1s'] })
  const sse = new SSEPool()
  afterEach(() => sse.closeAll())

  async function table(name, columns, ...extra) {
    await h.sql(`DROP TABLE IF EXISTS public.${name}`)
    await createPublishedTable(h.srv, name, `CREATE TABLE public.${name} (${columns})`)
    for (const stmt of extra) await h.sql(stmt)
  }

  /** Waits for the opening `system` ok event of a postgres_changes stream. */
  async function streamReady(s) {
    const ev = await s.waitEvent((e) => e.event === 'system')
    assert.equal(ev.json?.extension, 'postgres_changes', ev.data)
    assert.equal(ev.json?.status, 'ok', ev.data)
    assert.equal(ev.json?.message, 'Subscribed to PostgreSQL', ev.data)
    return ev
  }

  h.test('curl: stream headers; changes as postgres_changes events with cursor ids and the WebSocket data object', async () => {
    await table('sse_basic', 'id bigint PRIMARY KEY, v text, n int')
    const s = sse.curl(sseUrl(h.srv, { schema: 'public', table: 'sse_basic' }), {
      headers: { Authorization: `Bearer ${h.srv.userKey}` },
    })
    await s.waitHead()
    assert.equal(s.status, 200, s.describe())
    assert.match(s.headers['content-type'], /^text\/event-stream\b/)
    assert.equal(s.headers['cache-control'], 'no-cache')
    assert.equal(s.headers['x-accel-buffering'], 'no')
    const opening = await streamReady(s)
    assert.equal(s.events[0], opening, 'the status event opens the stream')
    assert.equal(opening.id, undefined, 'the status event carries no cursor')

    // The same user on a raw WebSocket, to compare the data objects.
    const ws = await h.raw()
    const { reply } = await ws.join(
      'realtime:sse-basic-ws',
      { postgres_changes: [{ event: '*', schema: 'public', table: 'sse_basic' }] },
      { accessToken: h.srv.userKey }
    )
    assert.equal(reply.payload.status, 'ok', reply.raw)
    await ws.next((r) => r.event === 'system' && r.payload.status === 'ok', 15000, 'postgres_changes ok')

    await h.sql(`INSERT INTO sse_basic VALUES (1, 'a', 1)`)
    await h.sql(`UPDATE sse_basic SET v = 'line1\nline2' WHERE id = 1`)
    await h.sql(`DELETE FROM sse_basic WHERE id = 1`)
    const events = await s.waitNamed('postgres_changes', 3)
    assert.deepEqual(events.map((e) => e.json.type), ['INSERT', 'UPDATE', 'DELETE'])
    assertIncreasing(events.map((e) => e.id))
    for (const e of events) {
      const frame = await ws.next((r) => r.event === 'postgres_changes', 10000, `WebSocket frame for ${e.json.type}`)
      assert.deepEqual(e.json, frame.payload.data, `SSE data vs WebSocket data for ${e.json.type}`)
    }
    assert.deepEqual(events[0].json.record, { id: 1, v: 'a', n: 1 })
    assert.equal(events[1].json.record.v, 'line1\nline2', 'a newline inside a value survives the SSE framing')
    assert.deepEqual(events[2].json.old_record, { id: 1 })
    assert.equal(events[0].json.errors, null)
    assert.match(events[0].json.commit_timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
  })

  h.test('event= and filter= restrict the stream', async () => {
    await table('sse_filter', 'id bigint PRIMARY KEY, room text NOT NULL')
    const s = sse.curl(sseUrl(h.srv, { schema: 'public', table: 'sse_filter', event: 'INSERT', filter: 'room=in.(a,"b c")' }))
    await streamReady(s)
    await h.sql(`INSERT INTO sse_filter VALUES (1, 'a'), (2, 'x'), (3, 'b c'), (4, 'b')`)
    await h.sql(`UPDATE sse_filter SET room = 'a' WHERE id = 2`)
    await h.sql(`DELETE FROM sse_filter WHERE id = 1`)
    await h.sql(`INSERT INTO sse_filter VALUES (5, 'a')`) // barrier
    await s.waitEvent((e) => e.json?.record?.id === 5)
    assert.deepEqual(pcEvents(s).map((e) => [e.json.type, e.json.record.id]), [['INSERT', 1], ['INSERT', 3], ['INSERT', 5]])
  })

  h.test('RLS: alice (curl, Bearer) and bob (EventSource, access_token) see only their todos, never secret', async () => {
    const a = sse.curl(sseUrl(h.srv, { schema: 'public', table: 'todos' }), {
      headers: { Authorization: `Bearer ${h.srv.userKey}` },
    })
    const b = sse.eventSource(sseUrl(h.srv, { schema: 'public', table: 'todos', access_token: h.srv.user2Key }))
    await streamReady(a)
    await streamReady(b)

    const insert = async (userId, title) =>
      Number((await h.sql(`INSERT INTO todos (user_id, title, secret) VALUES ($1, $2, 'classified') RETURNING id`, [userId, title])).rows[0].id)
    const a1 = await insert(h.srv.userId, 'sse-a1')
    const b1 = await insert(h.srv.user2Id, 'sse-b1')
    await a.waitEvent((e) => e.json?.record?.id === a1)
    await b.waitEvent((e) => e.json?.record?.id === b1)
    await h.sql(`UPDATE todos SET title = 'sse-b1-upd', secret = 'x' WHERE id = $1`, [b1])
    await h.sql(`UPDATE todos SET title = 'sse-a1-upd', secret = 'y' WHERE id = $1`, [a1])
    await a.waitEvent((e) => e.json?.type === 'UPDATE')
    await b.waitEvent((e) => e.json?.type === 'UPDATE')
    const a2 = await insert(h.srv.userId, 'sse-a2')
    const b2 = await insert(h.srv.user2Id, 'sse-b2')
    await a.waitEvent((e) => e.json?.record?.id === a2)
    await b.waitEvent((e) => e.json?.record?.id === b2)

    const summary = (s) => pcEvents(s).map((e) => [e.json.type, e.json.record.id, e.json.record.title])
    assert.deepEqual(summary(a), [['INSERT', a1, 'sse-a1'], ['UPDATE', a1, 'sse-a1-upd'], ['INSERT', a2, 'sse-a2']])
    assert.deepEqual(summary(b), [['INSERT', b1, 'sse-b1'], ['UPDATE', b1, 'sse-b1-upd'], ['INSERT', b2, 'sse-b2']])
    for (const e of [...pcEvents(a), ...pcEvents(b)]) {
      assert.ok(!e.data.includes('secret') && !e.data.includes('classified'), `secret leaked: ${e.data}`)
      assert.deepEqual(e.json.columns.map((c) => c.name), ['id', 'user_id', 'title', 'done', 'inserted_at'])
    }
    assert.ok(pcEvents(b).every((e) => e.id && CURSOR_RE.test(e.id)), 'EventSource sees the cursor as lastEventId')
  })

  h.test('curl resume with Last-Event-ID: exactly the rows missed while disconnected, in order', async () => {
    await table('sse_resume', 'id bigint PRIMARY KEY, v text')
    const url = sseUrl(h.srv, { schema: 'public', table: 'sse_resume' })
    const s1 = sse.curl(url)
    await streamReady(s1)
    await h.sql(`INSERT INTO sse_resume VALUES (1, 'a')`)
    await h.sql(`INSERT INTO sse_resume VALUES (2, 'b')`)
    const seen = await s1.waitNamed('postgres_changes', 2)
    const last = seen[1].id
    await s1.close()

    await h.sql(`INSERT INTO sse_resume VALUES (3, 'c')`)
    await h.sql(`UPDATE sse_resume SET v = 'a2' WHERE id = 1`)
    await h.sql(`BEGIN; INSERT INTO sse_resume VALUES (4, 'd'); DELETE FROM sse_resume WHERE id = 2; COMMIT`)

    const s2 = sse.curl(url, { headers: { 'Last-Event-ID': last } })
    await s2.waitNamed('postgres_changes', 4)
    await streamReady(s2)
    await h.sql(`INSERT INTO sse_resume VALUES (5, 'live')`)
    await s2.waitEvent((e) => e.json?.record?.id === 5)

    const got = pcEvents(s2).map((e) => [e.json.type, e.json.record?.id ?? e.json.old_record.id])
    assert.deepEqual(got, [['INSERT', 3], ['UPDATE', 1], ['INSERT', 4], ['DELETE', 2], ['INSERT', 5]])
    const ids = pcEvents(s2).map((e) => e.id)
    assertIncreasing([last, ...ids])
    assert.ok(!s2.events.some((e) => e.event === 'system' && e.json?.status === 'error'), safeJson(s2.events))
  })

  h.test('EventSource resume with last_event_id=: missed todos of this user only (RLS in the replay)', async () => {
    const url = (extra = {}) => sseUrl(h.srv, { schema: 'public', table: 'todos', access_token: h.srv.userKey, ...extra })
    const e1 = sse.eventSource(url())
    await streamReady(e1)
    const insert = async (userId, title) =>
      Number((await h.sql(`INSERT INTO todos (user_id, title) VALUES ($1, $2) RETURNING id`, [userId, title])).rows[0].id)
    const r1 = await insert(h.srv.userId, 'resume-1')
    const first = await e1.waitEvent((e) => e.json?.record?.id === r1)
    assert.match(first.id, CURSOR_RE)
    e1.close()

    const missed = []
    missed.push(await insert(h.srv.userId, 'resume-2'))
    await insert(h.srv.user2Id, 'resume-bob')
    missed.push(await insert(h.srv.userId, 'resume-3'))

    const e2 = sse.eventSource(url({ last_event_id: first.id }))
    await e2.waitNamed('postgres_changes', 2)
    await streamReady(e2)
    const live = await insert(h.srv.userId, 'resume-live')
    await e2.waitEvent((e) => e.json?.record?.id === live)
    assert.deepEqual(pcEvents(e2).map((e) => e.json.record.id), [...missed, live])
    assert.ok(pcEvents(e2).every((e) => e.json.record.user_id === h.srv.userId))
    assertIncreasing([first.id, ...pcEvents(e2).map((e) => e.id)])
  })

  h.test('error answers: bad filter / unknown table / bad event → 400 JSON; bad token → 401 JSON', async () => {
    const cases = [
      [{ schema: 'public', table: 'messages', filter: 'nope=eq.1' }, {}, 400, /nope/],
      [{ schema: 'public', table: 'messages', filter: 'room' }, {}, 400, /filter/],
      [{ schema: 'public', table: 'no_such_table' }, {}, 400, /no_such_table/],
      [{ schema: 'public', table: 'messages', event: 'TRUNCATE' }, {}, 400, /event/],
      [{}, {}, 400, /.+/],
      [{ schema: 'public', table: 'messages' }, { 'Last-Event-ID': 'not-a-cursor' }, 400, /Last-Event-ID/],
      [{ schema: 'public', table: 'messages' }, { Authorization: 'Bearer not.a.jwt' }, 401, /.+/],
      [{ schema: 'public', table: 'messages', apikey: 'garbage' }, {}, 401, /.+/],
    ]
    for (const [params, headers, status, re] of cases) {
      const c = sse.curl(sseUrl(h.srv, params), { headers })
      await c.waitExit()
      const what = `${safeJson(params)} ${safeJson(headers)}: ${c.describe()}`
      assert.equal(c.status, status, what)
      assert.match(c.headers['content-type'], /^application\/json\b/, what)
      const body = JSON.parse(c.body())
      assert.equal(typeof body.error, 'string', what)
      assert.match(body.error, re, what)
    }

    // EventSource: a 401 fails the connection for good (no reconnect).
    const es = sse.eventSource(sseUrl(h.srv, { schema: 'public', table: 'todos', access_token: 'bad-token' }))
    await waitFor(() => es.errors.length > 0 && es.es.readyState === 2, { message: () => es.describe() })
    assert.equal(es.errors[0].code, 401, es.describe())
    assert.equal(es.opened, 0)
  })

  h.test('a supabase-js broadcast on channel X reaches ?channel=X streams as event: broadcast', async () => {
    const curl = sse.curl(sseUrl(h.srv, { channel: 'sse-bc' }))
    const es = sse.eventSource(sseUrl(h.srv, { channel: 'sse-bc' }))
    const other = sse.curl(sseUrl(h.srv, { channel: 'sse-bc-other' }))
    await waitFor(() => curl.comments.includes('connected') && other.comments.includes('connected'), {
      message: () => curl.describe(),
    })
    await waitFor(() => es.opened > 0, { message: () => es.describe() })

    const ch = h.client().channel('sse-bc', { config: { broadcast: { ack: true } } })
    await subscribed(ch)
    assert.equal(await ch.send({ type: 'broadcast', event: 'greet', payload: { hello: 'sse', n: [1, 2] } }), 'ok')
    const a = await curl.waitEvent((e) => e.event === 'broadcast')
    const b = await es.waitEvent((e) => e.event === 'broadcast')
    for (const ev of [a, b]) assert.deepEqual(ev.json, { event: 'greet', payload: { hello: 'sse', n: [1, 2] } }, ev.data)
    assert.equal(a.id, undefined, 'broadcasts carry no cursor')

    // The other channel's stream got nothing: a broadcast there afterwards is the first it sees.
    const ch2 = h.client().channel('sse-bc-other', { config: { broadcast: { ack: true } } })
    await subscribed(ch2)
    await ch2.send({ type: 'broadcast', event: 'mine', payload: {} })
    await other.waitEvent((e) => e.event === 'broadcast')
    assert.deepEqual(other.named('broadcast').map((e) => e.json.event), ['mine'])
    assert.equal(curl.named('broadcast').length, 1)
  })

  h.test('a stream whose token expires ends with a system error event', async () => {
    const token = userToken(h.srv.secret, { sub: h.srv.userId, expIn: 2 })
    const c = sse.curl(sseUrl(h.srv, { schema: 'public', table: 'todos' }), { headers: { Authorization: `Bearer ${token}` } })
    await streamReady(c)
    await c.waitExit(15000)
    const last = c.events.at(-1)
    assert.equal(last.event, 'system', c.describe())
    assert.equal(last.json?.status, 'error', last.data)
    assert.match(last.json?.message, /expired/i, last.data)
    assert.equal(c.exited.code, 0, `the server ended the response cleanly: ${c.describe()}`)
  })

  h.test('idle streams get heartbeat comments (--sse-heartbeat 1s)', async () => {
    const c = sse.curl(sseUrl(h.srv, { channel: 'sse-heartbeat' }))
    await waitFor(() => c.comments.filter((x) => x === 'heartbeat').length >= 2, { timeout: 10000, message: () => c.describe() })
    assert.equal(c.exited, null, 'the stream stays open')
    assert.deepEqual(c.events, [], 'comments are not events')
  })
})

describe('SSE resume beyond the replay window (--sse-replay-count 5)', () => {
  const h = useDevServer({ extraArgs: ['--sse-replay-count', '5'] })
  const sse = new SSEPool()
  afterEach(() => sse.closeAll())

  h.test('a cursor older than the window opens with a system error event; live changes still flow', async () => {
    await createPublishedTable(h.srv, 'sse_gap', 'CREATE TABLE public.sse_gap (id bigint PRIMARY KEY)')
    const url = sseUrl(h.srv, { schema: 'public', table: 'sse_gap' })
    const s1 = sse.curl(url)
    await s1.waitEvent((e) => e.event === 'system' && e.json?.status === 'ok')
    await h.sql(`INSERT INTO sse_gap VALUES (1)`)
    const [first] = await s1.waitNamed('postgres_changes', 1)
    await s1.close()

    // A second stream stays connected as a witness: once it saw row 8, the server has handled
    // rows 2-8, so the 5-change window no longer reaches back to `first`.
    const witness = sse.curl(url)
    await witness.waitEvent((e) => e.event === 'system' && e.json?.status === 'ok')
    for (let i = 2; i <= 8; i++) await h.sql(`INSERT INTO sse_gap VALUES ($1)`, [i])
    await witness.waitEvent((e) => e.json?.record?.id === 8)
    const s2 = sse.curl(url, { headers: { 'Last-Event-ID': first.id } })
    await s2.waitEvent((e) => e.event === 'system')
    const head = s2.events[0]
    assert.equal(head.event, 'system', s2.describe())
    assert.equal(head.json?.status, 'error', head.data)
    assert.equal(head.json?.extension, 'postgres_changes', head.data)
    assert.match(head.json?.message, /no longer available/, head.data)
    await s2.waitEvent((e) => e.event === 'system' && e.json?.status === 'ok')
    await h.sql(`INSERT INTO sse_gap VALUES (100)`)
    await s2.waitEvent((e) => e.json?.record?.id === 100)
    // What the window still holds follows the notice: the newest (at most 5) of rows 2-8, in
    // order, then the status, then live changes; nothing twice, nothing from before the cursor.
    const ids = recordIds(s2)
    const replayed = ids.slice(0, -1)
    assert.ok(replayed.length <= 5 && replayed.at(-1) === 8, `replayed ${safeJson(ids)}`)
    replayed.forEach((id, i) => assert.equal(id, 8 - replayed.length + 1 + i, `replayed ${safeJson(ids)}`))
    assert.equal(ids.at(-1), 100)
    const okAt = s2.events.findIndex((e) => e.event === 'system' && e.json?.status === 'ok')
    assert.equal(okAt, replayed.length + 1, `status after the replay: ${safeJson(s2.events.map((e) => e.event))}`)
  })
})
