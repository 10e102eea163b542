// Admin inspector API (docs/inspector.md) and /metrics, with real supabase-js clients connected to
// a `realtime dev` server: bearer auth, channel counts and bindings, subscriber details, the drop
// reason recorded when RLS hides a row, the live tail, test broadcasts and disconnects.

import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe } from 'node:test'
import { Collector, collectBroadcasts, subscribed, subscribeRecorded } from '../lib/client.mjs'
import { useDevServer } from '../lib/dev.mjs'
import { waitFor, withTimeout } from '../lib/wait.mjs'

const TOKEN = `admin-${randomUUID()}`
const DROP_REASONS = ['filter_mismatch', 'rls_denied', 'column_privilege', 'payload_too_large', 'rate_limit', 'slow_consumer']

function adminFetch(srv, path, opts = {}, token = TOKEN) {
  const headers = { ...(opts.headers || {}) }
  if (token !== null) headers.Authorization = `Bearer ${token}`
  return fetch(`${srv.httpUrl}/admin/api${path}`, { ...opts, headers })
}

async function adminJSON(srv, path, opts = {}) {
  const res = await adminFetch(srv, path, opts)
  const text = await res.text()
  assert.ok(res.status >= 200 && res.status < 300, `${opts.method || 'GET'} ${path}: HTTP ${res.status} ${text}`)
  return JSON.parse(text)
}

/** Finds the public channel with the given bare name in GET /admin/api/channels. */
async function channelInfo(srv, name) {
  const list = await adminJSON(srv, '/channels')
  return list.channels.find((c) => c.topic === `realtime:${name}` && !c.private)
}

/** The subscribers of a channel, or [] when the channel does not exist (404). */
async function subscribersOf(srv, name) {
  const res = await adminFetch(srv, `/channels/${encodeURIComponent(name)}`)
  if (res.status === 404) return []
  assert.equal(res.status, 200)
  return (await res.json()).subscribers
}

/** Scrapes /metrics with the admin token and parses the Prometheus text format into { 'name{labels}': value }. */
async function scrape(srv) {
  const res = await fetch(`${srv.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type'), /^text\/plain/)
  const text = await res.text()
  const out = {}
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out[line.slice(0, i)] = Number(line.slice(i + 1))
  }
  return { text, values: out }
}

/**
 * Opens GET /admin/api/events (SSE) and resolves once its "ready" event arrived. Returns
 * { events: Collector of fanout events, close() }.
 */
async function openTail(srv, channel) {
  const ac = new AbortController()
  const events = new Collector(`live tail ${channel ?? '(all)'}`)
  const q = channel ? `?channel=${encodeURIComponent(channel)}` : ''
  const res = await adminFetch(srv, `/events${q}`, { signal: ac.signal })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type'), /^text\/event-stream/)
  let onReady
  const ready = new Promise((resolve) => (onReady = resolve))
  ;(async () => {
    const dec = new TextDecoder()
    let buf = ''
    try {
      for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true })
        let i
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          let event = 'message'
          let data = ''
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7)
            else if (line.startsWith('data: ')) data += line.slice(6)
          }
          if (event === 'ready') onReady()
          else if (event === 'fanout') events.push(JSON.parse(data))
        }
      }
    } catch {
      // aborted
    }
  })()
  await withTimeout(ready, 10000, `live tail ${channel} ready event`)
  return { events, close: () => ac.abort() }
}

describe('admin inspector API', () => {
  const h = useDevServer({ extraArgs: ['--admin-token', TOKEN] })

  /** A supabase-js client that joins as the given user token. */
  async function userClient(key) {
    const sb = h.client()
    await sb.realtime.setAuth(key)
    return sb
  }

  h.test('401 with a JSON error without the admin token or a service_role JWT', async () => {
    const endpoints = [
      ['GET', '/channels'],
      ['GET', '/channels/anything'],
      ['GET', '/replication'],
      ['GET', '/events'],
      ['POST', '/channels/anything/broadcast'],
      ['DELETE', '/subscribers/1'],
      ['GET', '/no-such-endpoint'],
    ]
    const refused = [
      ['no header', null],
      ['wrong token', 'wrong-token'],
      ['token with a suffix', `${TOKEN}x`],
      ['anon key', h.srv.anonKey],
      ['user JWT', h.srv.userKey],
    ]
    for (const [method, path] of endpoints) {
      for (const [what, token] of refused) {
        const res = await adminFetch(h.srv, path, { method }, token)
        const text = await res.text()
        assert.equal(res.status, 401, `${method} ${path} with ${what}: ${text}`)
        assert.match(res.headers.get('content-type'), /^application\/json/)
        const body = JSON.parse(text)
        assert.equal(typeof body.error, 'string')
        assert.ok(body.error.length > 0)
        assert.ok(!text.includes(TOKEN), 'the error never echoes a token')
      }
      // the token must be sent as a Bearer credential, not bare or Basic
      for (const header of [TOKEN, `Basic ${TOKEN}`]) {
        const res = await fetch(`${h.srv.httpUrl}/admin/api${path}`, { method, headers: { Authorization: header } })
        assert.equal(res.status, 401, `${method} ${path} with Authorization: ${header.split(' ')[0]}…`)
      }
    }

    for (const token of [TOKEN, h.srv.serviceKey]) {
      const res = await adminFetch(h.srv, '/channels', {}, token)
      assert.equal(res.status, 200)
      const body = await res.json()
      assert.ok(Array.isArray(body.channels))
      assert.equal(typeof body.totals.subscribers, 'number')
    }
    const missing = await adminFetch(h.srv, '/no-such-endpoint')
    assert.equal(missing.status, 404)
    assert.equal(typeof (await missing.json()).error, 'string')
  })

  h.test('channel list and detail: counts, bindings with filters, presence, subscribers', async () => {
    const alice = await userClient(h.srv.userKey)
    const filter = `user_id=eq.${h.srv.userId}`
    const ch1 = alice
      .channel('inspect-room', { config: { presence: { key: 'alice' } } })
      .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'todos', filter }, () => {})
      .on('presence', { event: 'sync' }, () => {})
    await subscribed(ch1)
    assert.equal(await ch1.track({ online: true }), 'ok')

    const anon = h.client()
    const ch2 = anon.channel('inspect-room')
    const got2 = collectBroadcasts(ch2, 'hello')
    await subscribed(ch2)
    assert.equal(await ch1.send({ type: 'broadcast', event: 'hello', payload: { n: 1 } }), 'ok')
    await got2.waitFor()

    const info = await waitFor(
      async () => {
        const c = await channelInfo(h.srv, 'inspect-room')
        return c && c.subscribers === 2 && c.presence === 1 && c.postgres_changes.length === 1 && c.messages_out >= 1 && c
      },
      { timeout: 15000, interval: 100, message: 'inspect-room never showed 2 subscribers, 1 presence, 1 binding' }
    )
    assert.equal(info.name, 'inspect-room')
    assert.equal(info.private, false)
    assert.equal(info.messages_in, 1, 'one broadcast published')
    assert.ok(Date.parse(info.last_activity) > 0)
    const b = info.postgres_changes[0]
    assert.deepEqual({ event: b.event, schema: b.schema, table: b.table, filter: b.filter }, { event: 'INSERT', schema: 'public', table: 'todos', filter })

    const list = await adminJSON(h.srv, '/channels')
    assert.ok(list.totals.subscribers >= 2)
    assert.ok(list.totals.channels >= 1)

    const detail = await adminJSON(h.srv, '/channels/inspect-room')
    assert.equal(detail.subscribers.length, 2)
    const a = detail.subscribers.find((s) => s.role === 'authenticated')
    const n = detail.subscribers.find((s) => s.role === 'anon')
    assert.ok(a && n, `roles: ${detail.subscribers.map((s) => s.role)}`)
    assert.equal(a.sub, h.srv.userId)
    assert.equal(a.presence, true)
    assert.equal(a.postgres_changes.length, 1)
    assert.equal(n.postgres_changes.length, 0)
    for (const s of [a, n]) {
      assert.equal(s.transport, 'websocket')
      assert.match(s.protocol_version, /^[12]\.0\.0$/)
      assert.equal(s.remote_addr, '127.0.0.1')
      assert.ok(Date.parse(s.connected_since) <= Date.now())
      assert.equal(typeof s.queued_bytes, 'number')
      for (const r of DROP_REASONS) assert.equal(s.messages_not_sent[r], 0, `${s.role} ${r}`)
    }
    assert.ok(n.messages_sent >= 1, 'the anon subscriber was sent the broadcast')
    // the same channel by its full topic name
    const byTopic = await adminJSON(h.srv, `/channels/${encodeURIComponent('realtime:inspect-room')}`)
    assert.deepEqual(byTopic.subscribers.map((s) => s.id).sort(), detail.subscribers.map((s) => s.id).sort())

    const none = await adminFetch(h.srv, '/channels/never-joined')
    assert.equal(none.status, 404)
    assert.equal(typeof (await none.json()).error, 'string')
  })

  h.test('RLS hiding a row is recorded as rls_denied on that subscriber and in /metrics', async () => {
    const owner = await userClient(h.srv.userKey)
    const other = await userClient(h.srv.user2Key)
    const ownerGot = new Collector('owner changes')
    const otherGot = new Collector('user2 changes')
    const binding = { event: 'INSERT', schema: 'public', table: 'todos' }
    const chOwner = owner.channel('rls-owner').on('postgres_changes', binding, ownerGot.push)
    const chOther = other.channel('rls-other').on('postgres_changes', binding, otherGot.push)
    await Promise.all([subscribed(chOwner), subscribed(chOther)])
    for (const name of ['rls-owner', 'rls-other']) {
      await waitFor(async () => (await channelInfo(h.srv, name))?.postgres_changes.length === 1, {
        timeout: 15000,
        interval: 100,
        message: `${name} binding never became active`,
      })
    }
    const before = (await scrape(h.srv)).values

    const title = `rls-${randomUUID()}`
    await h.sql('INSERT INTO public.todos (user_id, title) VALUES ($1, $2)', [h.srv.userId, title])
    await ownerGot.waitFor((p) => p.new?.title === title, 15000)

    const denied = await waitFor(
      async () => {
        const s = (await subscribersOf(h.srv, 'rls-other')).find((x) => x.sub === h.srv.user2Id)
        return s && s.messages_not_sent.rls_denied >= 1 && s
      },
      { timeout: 15000, interval: 100, message: 'user2 never showed an rls_denied drop' }
    )
    assert.equal(denied.messages_not_sent.rls_denied, 1)
    assert.equal(denied.role, 'authenticated')
    assert.equal(otherGot.items.length, 0, 'user2 must not receive the row')
    const ownerSub = (await subscribersOf(h.srv, 'rls-owner')).find((x) => x.sub === h.srv.userId)
    assert.equal(ownerSub.messages_not_sent.rls_denied, 0)

    const after = (await scrape(h.srv)).values
    const key = 'realtime_channel_messages_dropped_total{reason="rls_denied"}'
    assert.equal(after[key] - (before[key] ?? 0), 1, 'one RLS drop counted')
    assert.ok(after['realtime_pg_rls_queries_total'] > (before['realtime_pg_rls_queries_total'] ?? 0))
    assert.ok(after['realtime_pg_rls_check_duration_seconds_count'] > (before['realtime_pg_rls_check_duration_seconds_count'] ?? 0))
    assert.ok(after['realtime_pg_commit_fanout_latency_seconds_count'] > (before['realtime_pg_commit_fanout_latency_seconds_count'] ?? 0))
    assert.ok(after['realtime_channel_messages_out_total{kind="postgres_changes"}'] >= 1)
    assert.equal(after['realtime_replication_connected'], 1)
    assert.ok(after['realtime_replication_lag_bytes'] >= 0)

    const rep = await adminJSON(h.srv, '/replication')
    assert.equal(rep.enabled, true)
    assert.equal(rep.kind, 'logical')
    assert.equal(rep.slot, 'supabase_realtime_slot')
    assert.equal(rep.connected, true)
    for (const p of [rep.received_position, rep.confirmed_position]) assert.match(p, /^[0-9A-F]+\/[0-9A-F]+$/)
    assert.ok(rep.changes >= 1)
    assert.ok(Date.parse(rep.last_commit_time) > 0)
    assert.equal(typeof rep.lag_bytes, 'number')
    assert.equal(typeof rep.lag_seconds, 'number')
    assert.equal(rep.last_error, '')
  })

  h.test('live tail streams fan-out for one channel; the admin broadcast reaches supabase-js', async () => {
    const sb = h.client()
    const ch = sb.channel('tail-room')
    const got = collectBroadcasts(ch, 'ping')
    await subscribed(ch)
    const otherCh = h.client().channel('tail-other')
    const otherGot = collectBroadcasts(otherCh, 'marker')
    await subscribed(otherCh)

    const tail = await openTail(h.srv, 'tail-room')
    h.defer(tail.close)
    const otherTail = await openTail(h.srv, 'tail-other')
    h.defer(otherTail.close)

    const res = await adminFetch(h.srv, '/channels/tail-room/broadcast', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ event: 'ping', payload: { from: 'admin' } }),
    })
    assert.equal(res.status, 202, await res.clone().text())
    assert.deepEqual(await res.json(), { topic: 'realtime:tail-room', private: false, event: 'ping' })
    const msg = await got.waitFor()
    assert.deepEqual(msg.payload, { from: 'admin' })

    const ev = await tail.events.waitFor((e) => e.event === 'ping')
    assert.equal(ev.topic, 'realtime:tail-room')
    assert.equal(ev.kind, 'broadcast')
    assert.equal(ev.delivered, 1)
    assert.deepEqual(JSON.parse(ev.payload), { from: 'admin' })
    assert.ok(ev.bytes > 0)

    // The other tail is filtered: once its own channel's marker arrived, the ping would have too.
    await adminJSON(h.srv, '/channels/tail-other/broadcast', { method: 'POST', body: JSON.stringify({ event: 'marker' }) })
    await otherGot.waitFor()
    await otherTail.events.waitFor((e) => e.event === 'marker')
    assert.deepEqual(
      otherTail.events.items.map((e) => e.topic),
      ['realtime:tail-other'],
      'a filtered tail only sees its channel'
    )

    const bad = await adminFetch(h.srv, '/channels/tail-room/broadcast', { method: 'POST', body: '{"payload": [1]}' })
    assert.equal(bad.status, 400)
    assert.equal(typeof (await bad.json()).error, 'string')
  })

  h.test('DELETE /subscribers/<id> disconnects that subscriber only', async () => {
    const kicked = h.client({ reconnectAfterMs: () => 60000 })
    const ch = kicked.channel('kick-room')
    const statuses = subscribeRecorded(ch)
    await statuses.waitFor('SUBSCRIBED')
    const stay = h.client().channel('kick-room')
    await subscribed(stay)
    const subs = await waitFor(async () => {
      const s = await subscribersOf(h.srv, 'kick-room')
      return s.length === 2 && s
    })
    const [victim, survivor] = subs
    const res = await adminFetch(h.srv, `/subscribers/${victim.id}`, { method: 'DELETE' })
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), { disconnected: victim.id })
    await waitFor(async () => {
      const ids = (await subscribersOf(h.srv, 'kick-room')).map((s) => s.id)
      return !ids.includes(victim.id) && ids.includes(survivor.id)
    }, { timeout: 10000, interval: 50, message: 'the subscriber was not removed' })

    assert.equal((await adminFetch(h.srv, `/subscribers/${victim.id}`, { method: 'DELETE' })).status, 404)
    assert.equal((await adminFetch(h.srv, '/subscribers/not-a-number', { method: 'DELETE' })).status, 400)
  })

  h.test('/metrics exports the families with closed label sets only', async () => {
    const sb = h.client()
    const a = sb.channel('metrics-room-7f3a')
    await subscribed(a)
    const b = h.client().channel('metrics-room-7f3a')
    const got = collectBroadcasts(b, 'm')
    await subscribed(b)
    await a.send({ type: 'broadcast', event: 'm', payload: {} })
    await got.waitFor()

    // The drop counters tell what other subscribers were (not) sent: an ordinary client cannot read them.
    for (const headers of [{}, { Authorization: `Bearer ${h.srv.anonKey}` }]) {
      const res = await fetch(`${h.srv.httpUrl}/metrics`, { headers })
      assert.equal(res.status, 401)
      assert.doesNotMatch(await res.text(), /realtime_/)
    }
    const { text, values } = await scrape(h.srv)
    assert.ok(values['realtime_conn_open_connections{transport="websocket"}'] >= 2)
    assert.ok(values['realtime_channel_joins_total{result="ok"}'] >= 2)
    assert.ok(values['realtime_channel_messages_in_total{kind="broadcast"}'] >= 1)
    assert.ok(values['realtime_channel_messages_out_total{kind="broadcast"}'] >= 1)
    assert.ok(values['realtime_channel_open_channels'] >= 1)
    assert.ok(values['realtime_channel_subscriptions'] >= 2)
    for (const r of DROP_REASONS) assert.ok(`realtime_channel_messages_dropped_total{reason="${r}"}` in values, r)
    for (const fam of [
      'realtime_pg_rls_check_duration_seconds',
      'realtime_pg_commit_fanout_latency_seconds',
      'realtime_replication_lag_bytes',
      'realtime_replication_lag_seconds',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${fam} `, 'm'), fam)
    }
    assert.ok(!text.includes('metrics-room-7f3a'), 'no topic in any label')
    assert.ok(!text.includes(h.srv.userId), 'no user in any label')
    for (const line of text.split('\n')) {
      if (line.startsWith('realtime_')) {
        const name = line.split(/[{ ]/)[0]
        assert.match(name, /^realtime_[a-z]+_[a-z0-9_]+$/, line)
      }
    }
  })
})

describe('realtime dev without --admin-token', () => {
  const h = useDevServer()

  h.test('generates an admin token, reports it with the inspector URL, and the token opens the API', async () => {
    assert.equal(h.srv.adminUrl, `${h.srv.httpUrl}/admin/`)
    assert.ok(h.srv.adminToken && h.srv.adminToken.length >= 32, `admin_token ${h.srv.adminToken}`)
    const ok = await adminFetch(h.srv, '/channels', {}, h.srv.adminToken)
    assert.equal(ok.status, 200, await ok.text())
    const page = await fetch(h.srv.adminUrl)
    assert.equal(page.status, 200)
    await page.text()
    const wrong = await adminFetch(h.srv, '/channels', {}, `${h.srv.adminToken}x`)
    assert.equal(wrong.status, 401, await wrong.text())
  })
})
