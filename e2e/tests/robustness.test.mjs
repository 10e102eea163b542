// Bad input on the socket (protocol §1.3, §7.4): malformed frames are dropped and the
// connection keeps working; pushes to topics not joined get "unmatched topic".

import assert from 'node:assert/strict'
import { describe } from 'node:test'
import { useServer } from '../lib/harness.mjs'
import { encodeUserBroadcastPush } from '../lib/raw.mjs'

describe('robustness: malformed input', () => {
  const h = useServer()

  /** Joins a channel with self:true so a broadcast round trip can prove the channel still works. */
  async function joinedSelf(s, topic) {
    const { joinRef, reply } = await s.join(topic, { broadcast: { self: true, ack: true } })
    assert.equal(reply.payload.status, 'ok', reply.raw)
    return joinRef
  }

  async function assertStillWorks(s, topic, joinRef, tag) {
    assert.equal((await s.heartbeat()).payload.status, 'ok', `heartbeat after ${tag}`)
    const ref = s.makeRef()
    s.sendBinary(encodeUserBroadcastPush({ joinRef, ref, topic, event: 'alive', payload: { tag } }))
    assert.equal((await s.reply(ref, topic)).payload.status, 'ok', `ack after ${tag}`)
    const got = await s.next((r) => r.kind === 'binary' && r.event === 'alive' && r.payload?.tag === tag, 5000, `echo after ${tag}`)
    assert.equal(got.topic, topic)
  }

  h.test('garbage text frames are ignored', async () => {
    const s = await h.raw()
    const topic = 'realtime:garbage'
    const joinRef = await joinedSelf(s, topic)
    for (const junk of ['hello, not json', '{', '', '\u0000\u0001', 'null', '42', '"str"', 'true']) {
      s.sendText(junk)
    }
    await assertStillWorks(s, topic, joinRef, 'garbage')
    assert.equal(s.closed, null)
  })

  h.test('wrong-shape JSON (short arrays, objects on vsn 2, bad field types) is ignored', async () => {
    const s = await h.raw()
    const topic = 'realtime:shapes'
    const joinRef = await joinedSelf(s, topic)
    const frames = [
      [],
      [null],
      [null, '1', 'phoenix'],
      [null, '2', 'phoenix', 'heartbeat'],
      { topic: 'phoenix', event: 'heartbeat', payload: {}, ref: '3' },
      [1, 2, 3, 4, 5],
      [null, '4', 123, 'heartbeat', {}],
      [null, '5', topic, ['not', 'a', 'string'], {}],
      [[], {}, null, true, false],
    ]
    for (const f of frames) s.sendText(JSON.stringify(f))
    await assertStillWorks(s, topic, joinRef, 'shapes')
    assert.equal(s.closed, null)
  })

  h.test('binary frames with impossible lengths or unknown kinds are ignored', async () => {
    const s = await h.raw()
    const topic = 'realtime:badbin'
    const joinRef = await joinedSelf(s, topic)
    const bad = [
      Buffer.from([]),
      Buffer.from([3]),
      Buffer.from([3, 1, 1, 200, 3, 0, 1, 0x31, 0x32]), // topic length beyond the frame
      Buffer.from([3, 255, 255, 255, 255, 255, 1]), // header only, all lengths max
      Buffer.from([3, 1, 1, 14, 3, 0, 7, ...Buffer.from('12realtime:badbinmsg{}')]), // encoding 7
      Buffer.from([0, 1, 2, 3, 4, 5, 6]), // kind 0
      Buffer.from([4, 1, 1, 0, 1, 0x41, 0x42]), // kind 4 is server->client only
      Buffer.from([99, 0, 0, 0]),
      encodeUserBroadcastPush({ joinRef, ref: 'x', topic, event: 'e', metadata: '{not json', payload: {} }).subarray(0, 12),
    ]
    for (const b of bad) s.sendBinary(b)
    await assertStillWorks(s, topic, joinRef, 'badbin')
    assert.equal(s.closed, null)
  })

  h.test('a push to a topic not joined replies error "unmatched topic" with join_ref null', async () => {
    const s = await h.raw()
    const topic = 'realtime:nobody-joined-this'
    const ref = s.push(topic, 'broadcast', { type: 'broadcast', event: 'x', payload: {} })
    const r = await s.reply(ref, topic)
    assert.deepEqual(r.array, [null, ref, topic, 'phx_reply', { status: 'error', response: { reason: 'unmatched topic' } }])
    const ref2 = s.push(topic, 'presence', { type: 'presence', event: 'track', payload: {} }, { joinRef: '1' })
    const r2 = await s.reply(ref2, topic)
    assert.equal(r2.join_ref, null)
    assert.deepEqual(r2.payload, { status: 'error', response: { reason: 'unmatched topic' } })
    assert.equal((await s.heartbeat()).payload.status, 'ok')
  })

  h.test('vsn 1: a push to a topic not joined replies error "unmatched topic"', async () => {
    const s = await h.raw({ vsn: '1.0.0' })
    const topic = 'realtime:nobody-v1'
    const ref = s.push(topic, 'broadcast', { type: 'broadcast', event: 'x', payload: {} })
    const r = await s.reply(ref, topic)
    assert.deepEqual(r.object.payload, { status: 'error', response: { reason: 'unmatched topic' } })
  })

  h.test('unknown events on a joined channel get no reply and do not break it', async () => {
    const s = await h.raw()
    const topic = 'realtime:unknown-event'
    const joinRef = await joinedSelf(s, topic)
    const ref = s.push(topic, 'what_is_this', { a: 1 }, { joinRef })
    await assertStillWorks(s, topic, joinRef, 'unknown-event')
    assert.ok(!s.all.some((r) => r.ref === ref), `no reply expected to unknown event: ${s.describeAll()}`)
  })

  h.test('a push with a stale join_ref is ignored', async () => {
    const s = await h.raw()
    const topic = 'realtime:stale-ref'
    const peer = await h.raw()
    await peer.join(topic)
    const joinRef = await joinedSelf(s, topic)
    s.push(topic, 'broadcast', { type: 'broadcast', event: 'stale', payload: {} }, { joinRef: '999999' })
    s.push(topic, 'broadcast', { type: 'broadcast', event: 'fresh', payload: {} }, { joinRef })
    const got = await peer.next((r) => r.event === 'broadcast', 5000, 'broadcast')
    assert.equal(got.payload.event, 'fresh', `stale push must be dropped; peer got ${peer.describeAll()}`)
  })
})
