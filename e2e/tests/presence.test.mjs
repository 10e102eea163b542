// Presence (protocol §6): presence_state after join (even empty), join/leave/sync callbacks,
// re-track replaces the meta, untrack and disconnect produce leaves, raw diff format.

import assert from 'node:assert/strict'
import { describe } from 'node:test'
import { subscribed } from '../lib/client.mjs'
import { useServer } from '../lib/harness.mjs'
import { Collector, waitFor, safeJson } from '../lib/wait.mjs'

/** A channel with presence key `key` and collectors for sync/join/leave. */
function presenceChannel(client, name, key) {
  const ch = client.channel(name, { config: { presence: { key } } })
  const syncs = new Collector(`${key} sync`)
  const joins = new Collector(`${key} join`)
  const leaves = new Collector(`${key} leave`)
  ch.on('presence', { event: 'sync' }, () => syncs.push(structuredClone(ch.presenceState())))
  ch.on('presence', { event: 'join' }, joins.push)
  ch.on('presence', { event: 'leave' }, leaves.push)
  return { ch, syncs, joins, leaves }
}

/** presenceState() with presence_ref values checked and stripped, for deep comparisons. */
function stateWithoutRefs(ch) {
  const out = {}
  for (const [k, metas] of Object.entries(ch.presenceState())) {
    out[k] = metas.map((m) => {
      assert.equal(typeof m.presence_ref, 'string', `presence_ref of ${k}: ${safeJson(m)}`)
      assert.ok(m.presence_ref.length > 0)
      const { presence_ref, ...rest } = m
      return rest
    })
  }
  return out
}

describe('presence (supabase-js)', () => {
  const h = useServer()

  h.test('presence_state arrives even when empty: sync fires with an empty state', async () => {
    const { ch, syncs } = presenceChannel(h.client(), 'pres-empty', 'solo')
    await subscribed(ch)
    const first = await syncs.waitFor()
    assert.deepEqual(first, {})
  })

  h.test('track: peers get join + sync with the meta; the tracker sees itself too', async () => {
    const A = presenceChannel(h.client(), 'pres-room', 'user-a')
    const B = presenceChannel(h.client(), 'pres-room', 'user-b')
    await Promise.all([subscribed(A.ch), subscribed(B.ch)])
    await Promise.all([A.syncs.waitFor(), B.syncs.waitFor()])

    assert.equal(await A.ch.track({ online_at: 'now', n: 1 }), 'ok')
    const join = await B.joins.waitFor((j) => j.key === 'user-a')
    assert.equal(join.event, 'join')
    assert.equal(join.newPresences.length, 1)
    assert.equal(join.newPresences[0].online_at, 'now')
    assert.equal(join.newPresences[0].n, 1)
    assert.equal(typeof join.newPresences[0].presence_ref, 'string')
    await waitFor(() => B.ch.presenceState()['user-a'], { message: 'user-a in B state' })
    assert.deepEqual(stateWithoutRefs(B.ch), { 'user-a': [{ online_at: 'now', n: 1 }] })

    // The tracker also receives the diff for its own track.
    await A.joins.waitFor((j) => j.key === 'user-a')
    assert.deepEqual(stateWithoutRefs(A.ch), { 'user-a': [{ online_at: 'now', n: 1 }] })
    // The presence_ref is the same on both sides (one meta instance).
    assert.equal(A.ch.presenceState()['user-a'][0].presence_ref, B.ch.presenceState()['user-a'][0].presence_ref)
  })

  h.test('a late joiner gets the existing presences in its initial presence_state', async () => {
    const A = presenceChannel(h.client(), 'pres-late', 'early')
    await subscribed(A.ch)
    assert.equal(await A.ch.track({ status: 'here' }), 'ok')
    await A.joins.waitFor((j) => j.key === 'early')
    const B = presenceChannel(h.client(), 'pres-late', 'late')
    await subscribed(B.ch)
    const first = await B.syncs.waitFor()
    assert.deepEqual(Object.keys(first), ['early'])
    assert.equal(first.early.length, 1)
    assert.equal(first.early[0].status, 'here')
    const j = await B.joins.waitFor((x) => x.key === 'early')
    assert.equal(j.newPresences[0].status, 'here')
  })

  h.test('re-track replaces the meta: presenceState shows only the new meta', async () => {
    const A = presenceChannel(h.client(), 'pres-retrack', 'user-a')
    const B = presenceChannel(h.client(), 'pres-retrack', 'user-b')
    await Promise.all([subscribed(A.ch), subscribed(B.ch)])
    await Promise.all([A.syncs.waitFor(), B.syncs.waitFor()])

    assert.equal(await A.ch.track({ status: 'one' }), 'ok')
    await waitFor(() => B.ch.presenceState()['user-a']?.[0]?.status === 'one', { message: 'first meta at B' })
    const firstRef = B.ch.presenceState()['user-a'][0].presence_ref

    assert.equal(await A.ch.track({ status: 'two' }), 'ok')
    await waitFor(() => B.ch.presenceState()['user-a']?.some((m) => m.status === 'two'), {
      message: () => `second meta at B: ${safeJson(B.ch.presenceState())}`,
    })
    // Apply everything that is in flight: a sync after the update.
    await waitFor(() => B.syncs.items.some((s) => s['user-a']?.some((m) => m.status === 'two')))
    assert.deepEqual(stateWithoutRefs(B.ch), { 'user-a': [{ status: 'two' }] })
    assert.notEqual(B.ch.presenceState()['user-a'][0].presence_ref, firstRef, 'update gets a new presence_ref')
    assert.deepEqual(stateWithoutRefs(A.ch), { 'user-a': [{ status: 'two' }] })
    // The old meta was reported as left.
    const left = await B.leaves.waitFor((l) => l.key === 'user-a')
    assert.deepEqual(left.leftPresences.map((m) => m.status), ['one'])
  })

  h.test('untrack produces a leave and removes the key', async () => {
    const A = presenceChannel(h.client(), 'pres-untrack', 'user-a')
    const B = presenceChannel(h.client(), 'pres-untrack', 'user-b')
    await Promise.all([subscribed(A.ch), subscribed(B.ch)])
    await Promise.all([A.syncs.waitFor(), B.syncs.waitFor()])
    assert.equal(await A.ch.track({ x: 1 }), 'ok')
    await B.joins.waitFor((j) => j.key === 'user-a')
    assert.equal(await A.ch.untrack(), 'ok')
    const left = await B.leaves.waitFor((l) => l.key === 'user-a')
    assert.equal(left.leftPresences[0].x, 1)
    await waitFor(() => !('user-a' in B.ch.presenceState()), { message: 'user-a removed at B' })
  })

  h.test('disconnect of a peer produces a leave on the others', async () => {
    const clientA = h.client()
    const A = presenceChannel(clientA, 'pres-disconnect', 'user-a')
    const B = presenceChannel(h.client(), 'pres-disconnect', 'user-b')
    await Promise.all([subscribed(A.ch), subscribed(B.ch)])
    await Promise.all([A.syncs.waitFor(), B.syncs.waitFor()])
    assert.equal(await A.ch.track({ here: true }), 'ok')
    assert.equal(await B.ch.track({ here: true }), 'ok')
    await B.joins.waitFor((j) => j.key === 'user-a')
    await A.joins.waitFor((j) => j.key === 'user-b')

    await clientA.realtime.disconnect()
    const left = await B.leaves.waitFor((l) => l.key === 'user-a', 15000)
    assert.equal(left.leftPresences.length, 1)
    assert.equal(left.leftPresences[0].here, true)
    await waitFor(() => !('user-a' in B.ch.presenceState()))
    assert.deepEqual(Object.keys(B.ch.presenceState()), ['user-b'])
  })

  h.test('two connections sharing one key contribute one meta each', async () => {
    const A1 = presenceChannel(h.client(), 'pres-shared', 'same')
    const A2 = presenceChannel(h.client(), 'pres-shared', 'same')
    const W = presenceChannel(h.client(), 'pres-shared', 'watcher')
    await Promise.all([subscribed(A1.ch), subscribed(A2.ch), subscribed(W.ch)])
    await Promise.all([A1.syncs.waitFor(), A2.syncs.waitFor(), W.syncs.waitFor()])
    assert.equal(await A1.ch.track({ dev: 1 }), 'ok')
    assert.equal(await A2.ch.track({ dev: 2 }), 'ok')
    await waitFor(() => W.ch.presenceState().same?.length === 2, {
      message: () => safeJson(W.ch.presenceState()),
    })
    assert.deepEqual(
      W.ch.presenceState().same.map((m) => m.dev).sort(),
      [1, 2]
    )
  })
})

describe('presence: raw frames', () => {
  const h = useServer()

  h.test('presence_state {} follows a join with presence enabled; track diff carries phx_ref', async () => {
    const topic = 'realtime:pres-raw'
    const s = await h.raw()
    const { joinRef, reply } = await s.join(topic, { presence: { key: 'k1', enabled: true } })
    assert.equal(reply.payload.status, 'ok')
    const state = await s.next((r) => r.event === 'presence_state', 5000, 'presence_state')
    assert.deepEqual(state.array, [joinRef, null, topic, 'presence_state', {}])

    const trackRef = s.push(topic, 'presence', { type: 'presence', event: 'track', payload: { online_at: 'now' } }, { joinRef })
    const tr = await s.reply(trackRef, topic)
    assert.deepEqual(tr.array, [joinRef, trackRef, topic, 'phx_reply', { status: 'ok', response: {} }])
    const diff = await s.next((r) => r.event === 'presence_diff', 5000, 'presence_diff')
    assert.equal(diff.join_ref, null)
    assert.equal(diff.ref, null)
    assert.deepEqual(Object.keys(diff.payload).sort(), ['joins', 'leaves'])
    assert.deepEqual(diff.payload.leaves, {})
    const metas = diff.payload.joins.k1?.metas
    assert.ok(Array.isArray(metas) && metas.length === 1, safeJson(diff.payload))
    assert.equal(metas[0].online_at, 'now')
    assert.equal(typeof metas[0].phx_ref, 'string')
    const ref1 = metas[0].phx_ref

    // Update: one diff with the new meta (phx_ref_prev = old ref) in joins and the old one in leaves.
    const t2 = s.push(topic, 'presence', { type: 'presence', event: 'track', payload: { online_at: 'later' } }, { joinRef })
    assert.equal((await s.reply(t2, topic)).payload.status, 'ok')
    const diff2 = await s.next((r) => r.event === 'presence_diff', 5000, 'update presence_diff')
    const j2 = diff2.payload.joins.k1?.metas
    const l2 = diff2.payload.leaves.k1?.metas
    assert.ok(j2 && l2, safeJson(diff2.payload))
    assert.equal(j2[0].online_at, 'later')
    assert.notEqual(j2[0].phx_ref, ref1)
    assert.equal(j2[0].phx_ref_prev, ref1)
    assert.equal(l2[0].phx_ref, ref1)
    assert.equal(l2[0].online_at, 'now')

    // Untrack: the current meta leaves with the same phx_ref it joined with.
    const t3 = s.push(topic, 'presence', { type: 'presence', event: 'untrack' }, { joinRef })
    assert.equal((await s.reply(t3, topic)).payload.status, 'ok')
    const diff3 = await s.next((r) => r.event === 'presence_diff', 5000, 'untrack presence_diff')
    assert.deepEqual(diff3.payload.joins, {})
    assert.equal(diff3.payload.leaves.k1?.metas?.[0]?.phx_ref, j2[0].phx_ref)
  })

  h.test('an empty presence key is replaced by a generated per-join key', async () => {
    const topic = 'realtime:pres-nokey'
    const s = await h.raw()
    const { joinRef } = await s.join(topic, { presence: { key: '', enabled: true } })
    await s.next((r) => r.event === 'presence_state', 5000, 'presence_state')
    const ref = s.push(topic, 'presence', { type: 'presence', event: 'track', payload: { a: 1 } }, { joinRef })
    assert.equal((await s.reply(ref, topic)).payload.status, 'ok')
    const diff = await s.next((r) => r.event === 'presence_diff', 5000, 'presence_diff')
    const keys = Object.keys(diff.payload.joins)
    assert.equal(keys.length, 1, safeJson(diff.payload))
    assert.notEqual(keys[0], '')
    assert.equal(diff.payload.joins[keys[0]].metas[0].a, 1)
  })

  h.test('track with a non-object payload replies error', async () => {
    const topic = 'realtime:pres-bad'
    const s = await h.raw()
    const { joinRef } = await s.join(topic, { presence: { key: 'k', enabled: true } })
    const ref = s.push(topic, 'presence', { type: 'presence', event: 'track', payload: 'nope' }, { joinRef })
    const r = await s.reply(ref, topic)
    assert.equal(r.payload.status, 'error', r.raw)
  })

  h.test('no presence_state is pushed when presence is disabled', async () => {
    const topic = 'realtime:pres-off'
    const s = await h.raw()
    await s.join(topic)
    // Any presence_state would be queued before the heartbeat reply on this connection.
    await s.heartbeat()
    assert.ok(!s.all.some((r) => r.event === 'presence_state'), s.describeAll())
  })
})
