// Channel lifecycle: join replies (§3), join errors (§3.4, §7.5), leave/close (§7.3),
// unmatched topics (§7.4), channel limits (§7.6) and token expiry while joined (§7.1).

import assert from 'node:assert/strict'
import { describe } from 'node:test'
import { subscribeRecorded } from '../lib/client.mjs'
import { useServer } from '../lib/harness.mjs'
import { nowSec, signJwt, userToken } from '../lib/tokens.mjs'
import { Collector, waitFor } from '../lib/wait.mjs'

const EXPIRED_RE = /^InvalidJWTToken: Token has expired (\d+) seconds ago$/

describe('channels: join and leave', () => {
  const h = useServer()

  h.test('supabase-js subscribe reaches SUBSCRIBED and the channel is joined', async () => {
    const sb = h.client()
    const ch = sb.channel('join-room')
    const rec = subscribeRecorded(ch)
    await rec.waitFor('SUBSCRIBED')
    assert.equal(ch.state, 'joined')
    assert.equal(sb.realtime.isConnected(), true)
  })

  h.test('join reply (vsn 2) echoes join_ref/ref and carries postgres_changes: []', async () => {
    const s = await h.raw()
    const { joinRef, reply } = await s.join('realtime:reply-room')
    assert.deepEqual(reply.array, [
      joinRef,
      joinRef,
      'realtime:reply-room',
      'phx_reply',
      { status: 'ok', response: { postgres_changes: [] } },
    ])
  })

  h.test('join reply (vsn 1) is an object with ref and postgres_changes: []', async () => {
    const s = await h.raw({ vsn: '1.0.0' })
    const { joinRef, reply } = await s.join('realtime:reply-room-v1')
    assert.ok(reply.object, reply.raw)
    assert.equal(reply.object.topic, 'realtime:reply-room-v1')
    assert.equal(reply.object.event, 'phx_reply')
    assert.equal(reply.object.ref, joinRef)
    assert.deepEqual(reply.object.payload, { status: 'ok', response: { postgres_changes: [] } })
  })

  h.test('join with a valid user access_token succeeds', async () => {
    const s = await h.raw()
    const { reply } = await s.join('realtime:user-room', {}, { accessToken: userToken(h.srv.secret) })
    assert.equal(reply.payload.status, 'ok', reply.raw)
  })

  h.test('join with an expired access_token gets InvalidJWTToken: Token has expired N seconds ago', async () => {
    const s = await h.raw()
    const expiredFor = 30
    const token = userToken(h.srv.secret, { exp: nowSec() - expiredFor })
    const { joinRef, reply } = await s.join('realtime:expired-room', {}, { accessToken: token })
    assert.equal(reply.join_ref, joinRef)
    assert.equal(reply.payload.status, 'error', reply.raw)
    const m = EXPIRED_RE.exec(reply.payload.response?.reason)
    assert.ok(m, `reason ${JSON.stringify(reply.payload.response)}`)
    const n = Number(m[1])
    assert.ok(n >= expiredFor && n <= expiredFor + 30, `N = ${n}, expected about ${expiredFor}`)
    // The socket itself stays usable.
    assert.equal((await s.heartbeat()).payload.status, 'ok')
  })

  h.test('join with a malformed access_token gets MalformedJWT', async () => {
    const s = await h.raw()
    const { reply } = await s.join('realtime:malformed-room', {}, { accessToken: 'not.a-jwt' })
    assert.deepEqual(reply.payload, {
      status: 'error',
      response: { reason: 'MalformedJWT: The token provided is not a valid JWT' },
    })
  })

  h.test('join with an access_token signed by another secret gets JwtSignatureError', async () => {
    const s = await h.raw()
    const { reply } = await s.join('realtime:badsig-room', {}, { accessToken: userToken('another-secret-x') })
    assert.deepEqual(reply.payload, {
      status: 'error',
      response: { reason: 'JwtSignatureError: Failed to validate JWT signature' },
    })
  })

  h.test('join with an access_token without role gets the missing-claims reason', async () => {
    const s = await h.raw()
    const token = signJwt({ sub: 'x', exp: nowSec() + 3600 }, h.srv.secret)
    const { reply } = await s.join('realtime:claims-room', {}, { accessToken: token })
    assert.deepEqual(reply.payload, {
      status: 'error',
      response: { reason: 'InvalidJWTToken: Fields `role` and `exp` are required in JWT' },
    })
  })

  h.test('join to "realtime:" (empty name) gets TopicNameRequired', async () => {
    const s = await h.raw()
    const { reply } = await s.join('realtime:')
    assert.deepEqual(reply.payload, {
      status: 'error',
      response: { reason: 'TopicNameRequired: You must provide a topic name' },
    })
  })

  h.test('join to a topic outside realtime:* gets unmatched topic', async () => {
    const s = await h.raw()
    const { joinRef, reply } = await s.join('elsewhere:room')
    assert.deepEqual(reply.array, [
      null,
      joinRef,
      'elsewhere:room',
      'phx_reply',
      { status: 'error', response: { reason: 'unmatched topic' } },
    ])
  })

  h.test('phx_leave replies ok then phx_close with the join ref', async () => {
    const s = await h.raw()
    const topic = 'realtime:leave-room'
    const { joinRef } = await s.join(topic)
    const leaveRef = s.push(topic, 'phx_leave', {}, { joinRef })
    const reply = await s.reply(leaveRef, topic)
    assert.deepEqual(reply.array, [joinRef, leaveRef, topic, 'phx_reply', { status: 'ok', response: {} }])
    const close = await s.next((r) => r.event === 'phx_close' && r.topic === topic, 5000, 'phx_close')
    assert.deepEqual(close.array, [joinRef, joinRef, topic, 'phx_close', {}])
    // The topic is gone: a push to it is now unmatched.
    const ref = s.push(topic, 'broadcast', { type: 'broadcast', event: 'x', payload: {} }, { joinRef })
    const r2 = await s.reply(ref, topic)
    assert.deepEqual(r2.payload, { status: 'error', response: { reason: 'unmatched topic' } })
  })

  h.test('phx_leave for a topic never joined replies ok {}', async () => {
    const s = await h.raw()
    const ref = s.push('realtime:never-joined', 'phx_leave', {})
    const r = await s.reply(ref, 'realtime:never-joined')
    assert.deepEqual(r.payload, { status: 'ok', response: {} })
  })

  h.test('supabase-js unsubscribe resolves ok and reports CLOSED', async () => {
    const sb = h.client()
    const ch = sb.channel('unsub-room')
    const rec = subscribeRecorded(ch)
    await rec.waitFor('SUBSCRIBED')
    assert.equal(await ch.unsubscribe(), 'ok')
    await rec.waitFor('CLOSED')
    assert.equal(ch.state, 'closed')
  })

  h.test('a second phx_join on the same topic replaces the first incarnation', async () => {
    const s = await h.raw()
    const topic = 'realtime:rejoin-room'
    const first = await s.join(topic)
    assert.equal(first.reply.payload.status, 'ok', first.reply.raw)
    const second = await s.join(topic)
    assert.deepEqual(second.reply.array, [
      second.joinRef,
      second.joinRef,
      topic,
      'phx_reply',
      { status: 'ok', response: { postgres_changes: [] } },
    ])
    // The old incarnation is closed with its own (old) join ref.
    const oldClose = await s.next(
      (r) => r.event === 'phx_close' && r.topic === topic && r.join_ref === first.joinRef,
      5000,
      'phx_close of the first incarnation'
    )
    assert.equal(oldClose.ref, first.joinRef)
    // The new incarnation still works: a JSON broadcast pushed with the new join ref reaches a peer.
    const peer = await h.raw()
    await peer.join(topic)
    s.push(topic, 'broadcast', { type: 'broadcast', event: 'ping', payload: { n: 2 } }, { joinRef: second.joinRef })
    const got = await peer.next((r) => r.event === 'broadcast', 5000, 'broadcast from the rejoined socket')
    assert.deepEqual(got.payload, { type: 'broadcast', event: 'ping', payload: { n: 2 } })
    // ...and the new incarnation was not closed.
    assert.ok(
      !s.all.some((r) => r.event === 'phx_close' && r.join_ref === second.joinRef),
      `new incarnation must stay open: ${s.describeAll()}`
    )
  })
})

describe('channels: too many channels per connection (default limit 100)', () => {
  // Many joins in a burst: lift the joins-per-second limit so only the channel limit applies.
  const h = useServer({ maxJoinsPerSecond: 100000 })

  h.test('raw socket: the 101st join is refused with ChannelRateLimitReached', async () => {
    const s = await h.raw()
    const refs = []
    for (let i = 0; i < 100; i++) {
      const ref = s.makeRef()
      s.sendMessage({
        join_ref: ref,
        ref,
        topic: `realtime:limit-${i}`,
        event: 'phx_join',
        payload: { config: { broadcast: { ack: false, self: false }, presence: { key: '', enabled: false }, postgres_changes: [], private: false } },
      })
      refs.push([ref, `realtime:limit-${i}`])
    }
    for (const [ref, topic] of refs) {
      const r = await s.reply(ref, topic)
      assert.equal(r.payload.status, 'ok', `join ${topic}: ${r.raw}`)
    }
    const { reply } = await s.join('realtime:limit-100')
    assert.deepEqual(reply.payload, {
      status: 'error',
      response: { reason: 'ChannelRateLimitReached: Too many channels' },
    })
    // Leaving one channel frees a slot.
    const leaveRef = s.push('realtime:limit-0', 'phx_leave', {}, { joinRef: refs[0][0] })
    assert.equal((await s.reply(leaveRef, 'realtime:limit-0')).payload.status, 'ok')
    const again = await s.join('realtime:limit-100')
    assert.equal(again.reply.payload.status, 'ok', again.reply.raw)
  })

  h.test('supabase-js: 100 channels subscribe, the 101st reports CHANNEL_ERROR with the reason', async () => {
    const sb = h.client()
    const recs = []
    for (let i = 0; i < 100; i++) {
      const rec = subscribeRecorded(sb.channel(`js-limit-${i}`))
      recs.push(rec)
    }
    await Promise.all(recs.map((r) => r.waitFor('SUBSCRIBED', 30000)))
    const extra = subscribeRecorded(sb.channel('js-limit-100'))
    const err = await extra.waitFor('CHANNEL_ERROR', 20000)
    assert.equal(err.err?.message, 'ChannelRateLimitReached: Too many channels')
    assert.ok(!extra.statuses.some((s) => s.status === 'SUBSCRIBED'))
  })
})

describe('channels: --max-channels-per-client flag', () => {
  const h = useServer({ maxChannelsPerClient: 2 })

  h.test('with a limit of 2, the third join is refused; other sockets are unaffected', async () => {
    const s = await h.raw()
    assert.equal((await s.join('realtime:a')).reply.payload.status, 'ok')
    assert.equal((await s.join('realtime:b')).reply.payload.status, 'ok')
    const { reply } = await s.join('realtime:c')
    assert.equal(reply.payload.response?.reason, 'ChannelRateLimitReached: Too many channels', reply.raw)
    const other = await h.raw()
    assert.equal((await other.join('realtime:c')).reply.payload.status, 'ok')
  })
})

describe('channels: token expiry while joined', () => {
  const h = useServer()

  h.test('raw: system error "Token has expired N seconds ago" then phx_close', async () => {
    const s = await h.raw()
    const topic = 'realtime:expiring-room'
    const token = userToken(h.srv.secret, { exp: nowSec() + 2 })
    const { joinRef, reply } = await s.join(topic, {}, { accessToken: token })
    assert.equal(reply.payload.status, 'ok', reply.raw)
    const sys = await s.next((r) => r.event === 'system' && r.topic === topic, 15000, 'system frame')
    assert.equal(sys.join_ref, joinRef)
    assert.equal(sys.ref, null)
    assert.equal(sys.payload.extension, 'system')
    assert.equal(sys.payload.status, 'error')
    assert.equal(sys.payload.channel, 'expiring-room')
    assert.match(sys.payload.message, /^Token has expired \d+ seconds ago$/)
    const close = await s.next((r) => r.event === 'phx_close' && r.topic === topic, 5000, 'phx_close')
    assert.deepEqual(close.array, [joinRef, joinRef, topic, 'phx_close', {}])
    // The connection survives; only the channel is gone.
    assert.equal((await s.heartbeat()).payload.status, 'ok')
  })

  h.test('supabase-js with a token expiring in ~2 s: system error, then CLOSED, no rejoin', async () => {
    const token = userToken(h.srv.secret, { exp: nowSec() + 3 })
    const sb = h.client({ accessToken: async () => token })
    // Let supabase-js hand the token to the realtime client before the join is built.
    await waitFor(() => sb.realtime.accessTokenValue === token, { timeout: 5000 })
    const ch = sb.channel('expiring-js-room')
    const system = new Collector('system frames')
    ch.on('system', {}, system.push)
    const rec = subscribeRecorded(ch)
    await rec.waitFor('SUBSCRIBED')
    const sys = await system.waitFor((p) => p.status === 'error', 15000)
    assert.match(sys.message, /^Token has expired \d+ seconds ago$/)
    await rec.waitFor('CLOSED', 10000)
    assert.equal(ch.state, 'closed')
    assert.ok(!sb.realtime.getChannels().includes(ch), 'channel removed from the client')
  })
})
