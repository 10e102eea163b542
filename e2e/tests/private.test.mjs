// Private channels (Realtime Authorization) and Broadcast from the database (docs/protocol.md §9)
// through supabase-js 2.119 against `realtime dev` on PostgreSQL 15: policies on realtime.messages
// decide joins, writes and presence; realtime.send / broadcast_changes rows reach subscribers after
// commit, in commit order, in the namespace of their private flag.
//
// Policies on realtime.messages are shared by the whole file, so each test scopes its policies to
// its own topic prefix and names them after the test.

import assert from 'node:assert/strict'
import { describe } from 'node:test'
import WebSocket from 'ws'
import { collectBroadcasts, subscribed, subscribeRecorded } from '../lib/client.mjs'
import { useDevServer } from '../lib/dev.mjs'
import { Collector, safeJson, sleep } from '../lib/wait.mjs'

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

describe('private channels and database broadcasts (supabase-js)', () => {
  const h = useDevServer()

  /** A client acting as `key` from its first join on (setAuth before subscribe, docs §9.2). */
  async function as(key, opts = {}) {
    const c = h.client({ accessToken: async () => key, ...opts })
    await c.realtime.setAuth(key)
    return c
  }

  /** Creates a policy on realtime.messages (dropping one of the same name first). */
  async function policy(name, body) {
    await h.sql(`DROP POLICY IF EXISTS "${name}" ON realtime.messages`)
    await h.sql(`CREATE POLICY "${name}" ON realtime.messages ${body}`)
  }

  /** Resolves with the error message of a join that must fail. */
  async function joinError(channel) {
    const rec = subscribeRecorded(channel)
    const s = await rec.waitFor('CHANNEL_ERROR')
    channel.unsubscribe()
    return s.err?.message
  }

  h.test('no policy: a user is refused with the exact reason, service_role joins', async () => {
    const u = await as(h.srv.userKey)
    const msg = await joinError(u.channel('nopol-room', { config: { private: true } }))
    assert.equal(msg, 'Unauthorized: You do not have permissions to read from this Channel topic: nopol-room')
    const s = await as(h.srv.serviceKey)
    await subscribed(s.channel('nopol-room', { config: { private: true } }))
  })

  h.test('a topic-scoped SELECT policy admits its topic only', async () => {
    await policy('scoped read', `FOR SELECT TO authenticated USING (realtime.topic() = 'scoped-1')`)
    const u = await as(h.srv.userKey)
    await subscribed(u.channel('scoped-1', { config: { private: true } }))
    const msg = await joinError(u.channel('scoped-2', { config: { private: true } }))
    assert.equal(msg, 'Unauthorized: You do not have permissions to read from this Channel topic: scoped-2')
  })

  h.test('read without write: broadcasts are dropped and ack times out; a writer reaches the reader', async () => {
    await policy('rw read', `FOR SELECT TO authenticated USING (realtime.topic() LIKE 'rw-%')`)
    await policy('rw write', `FOR INSERT TO authenticated WITH CHECK (realtime.topic() LIKE 'rw-%' AND (auth.jwt() ->> 'email') = 'bob@example.com')`)
    const alice = await as(h.srv.userKey, { timeout: 1500 })
    const bob = await as(h.srv.user2Key)
    const a = alice.channel('rw-room', { config: { private: true, broadcast: { ack: true } } })
    const b = bob.channel('rw-room', { config: { private: true, broadcast: { ack: true } } })
    const aGot = collectBroadcasts(a, 'msg', 'alice msg')
    const bGot = collectBroadcasts(b, 'msg', 'bob msg')
    await Promise.all([subscribed(a), subscribed(b)])

    assert.equal(await a.send({ type: 'broadcast', event: 'msg', payload: { from: 'alice' } }), 'timed out')
    assert.equal(await b.send({ type: 'broadcast', event: 'msg', payload: { from: 'bob' } }), 'ok')
    const got = await aGot.waitFor()
    assert.deepEqual(got.payload, { from: 'bob' })
    assert.deepEqual(bGot.items, [], "alice's broadcast must not reach bob")
  })

  h.test('Getting Started: two users chat on a private channel and realtime.send reaches them', async () => {
    await policy('gs read', `FOR SELECT TO authenticated USING (realtime.topic() LIKE 'room:%:messages')`)
    await policy('gs write', `FOR INSERT TO authenticated WITH CHECK (realtime.topic() LIKE 'room:%:messages')`)
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
      const m = await c.waitFor((m) => m.event === 'sql')
      assert.equal(m.type, 'broadcast')
      assert.match(m.meta?.id ?? '', UUID_RE, safeJson(m))
      assert.deepEqual(m.payload, { text: 'from sql', id: m.meta.id })
    }
  })

  h.test('realtime.send private=false reaches public subscribers only; default private reaches private ones', async () => {
    await policy('ns read', `FOR SELECT TO authenticated USING (realtime.topic() = 'ns-room')`)
    // one client per channel: supabase-js keeps one channel per topic name
    const pub = (await as(h.srv.userKey)).channel('ns-room')
    const priv = (await as(h.srv.userKey)).channel('ns-room', { config: { private: true } })
    const pubGot = collectBroadcasts(pub, '*', 'public')
    const privGot = collectBroadcasts(priv, '*', 'private')
    await subscribed(pub)
    await subscribed(priv)

    await h.sql(`SELECT realtime.send('{"a":1}', 'evt', 'ns-room', false)`)
    await h.sql(`SELECT realtime.send('{"a":2}', 'evt', 'ns-room')`)
    const p1 = await pubGot.waitFor()
    const p2 = await privGot.waitFor()
    assert.equal(p1.payload.a, 1)
    assert.equal(p1.payload.id, p1.meta.id)
    assert.equal(p2.payload.a, 2)
    // a later public send is the barrier proving nothing else was queued to either channel
    await h.sql(`SELECT realtime.send('{"a":3}', 'evt', 'ns-room', false)`)
    await pubGot.waitFor((m) => m.payload.a === 3)
    await h.sql(`SELECT realtime.send('{"a":4}', 'evt', 'ns-room')`)
    await privGot.waitFor((m) => m.payload.a === 4)
    assert.deepEqual(pubGot.items.map((m) => m.payload.a), [1, 3])
    assert.deepEqual(privGot.items.map((m) => m.payload.a), [2, 4])
  })

  h.test('broadcast_changes from a trigger: INSERT, UPDATE and DELETE payloads', async () => {
    await h.sql(`DROP TABLE IF EXISTS public.moves`)
    await h.sql(`CREATE TABLE public.moves (id int PRIMARY KEY, game text NOT NULL, move text)`)
    await h.sql(`CREATE OR REPLACE FUNCTION public.moves_broadcast() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
      BEGIN
        PERFORM realtime.broadcast_changes('games:' || coalesce(NEW.game, OLD.game), TG_OP, TG_OP,
          TG_TABLE_NAME, TG_TABLE_SCHEMA, NEW, OLD);
        RETURN NULL;
      END $$`)
    await h.sql(`CREATE TRIGGER moves_broadcast AFTER INSERT OR UPDATE OR DELETE ON public.moves
      FOR EACH ROW EXECUTE FUNCTION public.moves_broadcast()`)
    await policy('games read', `FOR SELECT TO authenticated USING (realtime.topic() LIKE 'games:%' AND extension = 'broadcast')`)
    const u = await as(h.srv.userKey)
    const ch = u.channel('games:g1', { config: { private: true } })
    const got = collectBroadcasts(ch, '*', 'games:g1')
    await subscribed(ch)

    await h.sql(`INSERT INTO public.moves VALUES (1, 'g1', 'e4')`)
    await h.sql(`UPDATE public.moves SET move = 'e5' WHERE id = 1`)
    await h.sql(`DELETE FROM public.moves WHERE id = 1`)
    const [ins, upd, del] = await got.waitForCount(3)
    assert.deepEqual(
      got.items.map((m) => m.event),
      ['INSERT', 'UPDATE', 'DELETE']
    )
    for (const m of [ins, upd, del]) {
      assert.equal(m.payload.id, m.meta.id)
      assert.equal(m.payload.schema, 'public')
      assert.equal(m.payload.table, 'moves')
      assert.equal(m.payload.operation, m.event)
    }
    assert.deepEqual(ins.payload.record, { id: 1, game: 'g1', move: 'e4' })
    assert.equal(ins.payload.old_record, null)
    assert.deepEqual(upd.payload.record, { id: 1, game: 'g1', move: 'e5' })
    assert.deepEqual(upd.payload.old_record, { id: 1, game: 'g1', move: 'e4' })
    assert.equal(del.payload.record, null)
    assert.deepEqual(del.payload.old_record, { id: 1, game: 'g1', move: 'e5' })
  })

  h.test('rolled-back sends never arrive; two sends of one transaction arrive in order after commit', async () => {
    await policy('tx read', `FOR SELECT TO authenticated USING (realtime.topic() = 'tx-room')`)
    const u = await as(h.srv.userKey)
    const ch = u.channel('tx-room', { config: { private: true } })
    const got = collectBroadcasts(ch, '*', 'tx-room')
    await subscribed(ch)

    const c = await h.srv.pool.connect()
    try {
      await c.query('BEGIN')
      await c.query(`SELECT realtime.send('{"n":0}', 'e', 'tx-room')`)
      await c.query('ROLLBACK')
      await c.query('BEGIN')
      await c.query(`SELECT realtime.send('{"n":1}', 'e', 'tx-room')`)
      await c.query(`SELECT realtime.send('{"n":2}', 'e', 'tx-room')`)
      await sleep(300)
      assert.deepEqual(got.items, [], 'nothing may arrive before COMMIT')
      await c.query('COMMIT')
    } finally {
      c.release()
    }
    await got.waitForCount(2)
    assert.deepEqual(got.items.map((m) => m.payload.n), [1, 2])
  })

  h.test('an access_token that loses read permission closes the channel', async () => {
    await policy('tok read', `FOR SELECT TO authenticated USING (realtime.topic() = 'tok-room' AND (auth.jwt() ->> 'email') = 'alice@example.com')`)
    const c = await as(h.srv.userKey)
    const ch = c.channel('tok-room', { config: { private: true } })
    const sys = new Collector('system')
    ch.on('system', {}, sys.push)
    const rec = subscribeRecorded(ch)
    await rec.waitFor('SUBSCRIBED')
    await c.realtime.setAuth(h.srv.user2Key)
    const m = await sys.waitFor((p) => p.status === 'error', 15000)
    assert.equal(m.message, 'You do not have permissions to read from this Channel topic: tok-room')
  })

  h.test('x-* upgrade headers and auth.uid() reach the policy; other headers do not', async () => {
    await policy(
      'hdr read',
      `FOR SELECT TO authenticated USING (realtime.topic() = 'hdr-room'
         AND auth.uid()::text = (current_setting('request.headers', true)::jsonb ->> 'x-user')
         AND (current_setting('request.headers', true)::jsonb ->> 'authorization-extra') IS NULL)`
    )
    const join = async (headers) => {
      const ws = new WebSocket(h.srv.wsUrl({ apikey: h.srv.anonKey, vsn: '1.0.0' }), { headers })
      await new Promise((res, rej) => {
        ws.once('open', res)
        ws.once('error', rej)
      })
      const reply = new Promise((res) => ws.on('message', (d) => {
        const m = JSON.parse(d.toString())
        if (m.event === 'phx_reply' && m.ref === '1') res(m.payload)
      }))
      ws.send(JSON.stringify({ topic: 'realtime:hdr-room', event: 'phx_join', ref: '1', join_ref: '1',
        payload: { config: { private: true }, access_token: h.srv.userKey } }))
      const p = await reply
      ws.close()
      return p
    }
    assert.equal((await join({ 'x-user': h.srv.userId })).status, 'ok')
    const bad = await join({ 'x-user': h.srv.user2Id })
    assert.equal(bad.status, 'error')
    assert.equal(bad.response.reason, 'Unauthorized: You do not have permissions to read from this Channel topic: hdr-room')
    const notX = await join({ 'x-user': h.srv.userId, 'authorization-extra': 'set' })
    assert.equal(notX.status, 'ok', 'a non-x header must not reach request.headers')
  })

  h.test('presence is gated by its own permissions', async () => {
    await policy('pres read', `FOR SELECT TO authenticated USING (realtime.topic() = 'pres-room' AND extension = 'broadcast')`)
    const u = await as(h.srv.userKey)
    const ch = u.channel('pres-room', { config: { private: true, presence: { key: 'alice' } } })
    let synced = false
    ch.on('presence', { event: 'sync' }, () => (synced = true))
    await subscribed(ch)
    assert.equal(await ch.track({ online: true }), 'error')
    await sleep(300)
    assert.equal(synced, false, 'no presence_state without presence read')
  })

  h.test('missing partition: send only warns, a private join fails with MissingPartition', async () => {
    const today = new Date().toISOString().slice(0, 10).replaceAll('-', '_')
    await h.sql(`DROP TABLE realtime.messages_${today}`)
    try {
      const notices = []
      const c = await h.srv.pool.connect()
      c.on('notice', (n) => notices.push(n.message))
      try {
        await c.query(`SELECT realtime.send('{"x":1}', 'e', 'nopart')`)
      } finally {
        c.release()
      }
      assert.equal(notices.length, 1, safeJson(notices))
      assert.match(notices[0], /^WarnSendingBroadcastMessage: /)
      const s = await as(h.srv.serviceKey)
      const msg = await joinError(s.channel('nopart', { config: { private: true } }))
      assert.equal(msg, 'MissingPartition: Realtime was unable to find the expected messages partition')
    } finally {
      const d = new Date().toISOString().slice(0, 10)
      const next = new Date(Date.now() + 86400000).toISOString().slice(0, 10)
      await h.sql(`CREATE TABLE IF NOT EXISTS realtime.messages_${today} PARTITION OF realtime.messages FOR VALUES FROM ('${d}') TO ('${next}')`)
    }
  })

  h.test('replay: the newest stored messages, oldest first, marked replayed, then live ones once', async () => {
    await policy('replay read', `FOR SELECT TO authenticated USING (realtime.topic() = 'replay-room')`)
    // a service_role subscriber proves the three sends have streamed before the replaying join,
    // so none of them can also arrive live
    const watcher = (await as(h.srv.serviceKey)).channel('replay-room', { config: { private: true } })
    const seen = collectBroadcasts(watcher, '*', 'watcher')
    await subscribed(watcher)
    for (const n of [1, 2, 3]) await h.sql(`SELECT realtime.send('{"n":${n}}', 'e', 'replay-room')`)
    await seen.waitForCount(3)
    const u = await as(h.srv.userKey)
    const since = Date.now() - 3600_000
    const ch = u.channel('replay-room', { config: { private: true, broadcast: { replay: { since, limit: 2 } } } })
    const got = collectBroadcasts(ch, '*', 'replay-room')
    await subscribed(ch)
    await got.waitForCount(2)
    await h.sql(`SELECT realtime.send('{"n":4}', 'e', 'replay-room')`)
    await got.waitForCount(3)
    await sleep(300)
    assert.deepEqual(got.items.map((m) => m.payload.n), [2, 3, 4], safeJson(got.items))
    assert.deepEqual(got.items.map((m) => m.meta.replayed === true), [true, true, false])

    assert.throws(() => u.channel('replay-pub', { config: { broadcast: { replay: { since } } } }).subscribe(), /public channel/)
    const bad = await joinError((await as(h.srv.userKey)).channel('replay-room', { config: { private: true, broadcast: { replay: { since: 'yesterday' } } } }))
    assert.equal(bad, 'UnableToReplayMessages: Replay params are not valid')
  })

  h.test('realtime dev demo room: members only, room_messages rows broadcast by the trigger', async () => {
    const bob = await as(h.srv.user2Key)
    const refused = await joinError(bob.channel('room:demo', { config: { private: true } }))
    assert.equal(refused, 'Unauthorized: You do not have permissions to read from this Channel topic: room:demo')
    const alice = await as(h.srv.userKey)
    const ch = alice.channel('room:demo', { config: { private: true } })
    const got = collectBroadcasts(ch, 'INSERT', 'room:demo')
    await subscribed(ch)
    await h.sql(`INSERT INTO public.room_messages (room, body) VALUES ('room:demo', 'hello')`)
    const m = await got.waitFor()
    assert.equal(m.payload.record.body, 'hello')
    assert.equal(m.payload.table, 'room_messages')
  })

  h.test('config.broadcast.replication_ready: a system event once the change source streams', async () => {
    const ch = (await as(h.srv.serviceKey)).channel('ready-room', { config: { private: true, broadcast: { replication_ready: true } } })
    const sys = new Collector('system')
    ch.on('system', {}, sys.push)
    await subscribed(ch)
    const m = await sys.waitFor((p) => p.extension === 'system')
    assert.deepEqual(m, { extension: 'system', status: 'ok', message: 'Replication connection established', channel: 'ready-room' })
  })

  h.test('persist: httpSend with persist on a private channel is replayed to a later joiner; public is refused', async () => {
    await policy('persist read', `FOR SELECT TO authenticated USING (realtime.topic() = 'persist-room')`)
    await policy('persist write', `FOR INSERT TO authenticated WITH CHECK (realtime.topic() = 'persist-room')`)
    const since = Date.now() - 1000
    const sender = (await as(h.srv.userKey)).channel('persist-room', { config: { private: true } })
    await sender.httpSend('kept', { n: 1 }, { persist: true })
    await sender.httpSend('kept', { n: 2 }, { persist: { ttl: 3600 } })
    await sender.httpSend('gone', { n: 3 }) // not persisted

    const later = (await as(h.srv.user2Key)).channel('persist-room', { config: { private: true, broadcast: { replay: { since } } } })
    const got = collectBroadcasts(later, '*', 'later joiner')
    await subscribed(later)
    await got.waitForCount(2)
    await sleep(300)
    assert.deepEqual(got.items.map((m) => [m.event, m.payload.n, m.meta.replayed]), [['kept', 1, true], ['kept', 2, true]])

    const res = await fetch(`${h.srv.httpUrl}/realtime/v1/api/broadcast/persist-pub/events/e?persist=true`, {
      method: 'POST',
      headers: { apikey: h.srv.anonKey, Authorization: `Bearer ${h.srv.userKey}`, 'Content-Type': 'application/json' },
      body: '{"n":1}',
    })
    assert.equal(res.status, 422)
    assert.deepEqual(await res.json(), { message: 'persist is only available on private channels' })
  })
})
