// Connection-level behaviour: WebSocket paths, apikey validation at the upgrade (protocol §1.2),
// vsn negotiation, and heartbeats (§2.1).

import assert from 'node:assert/strict'
import { describe } from 'node:test'
import { useServer } from '../lib/harness.mjs'
import { probeUpgrade } from '../lib/raw.mjs'
import { anonKey, nowSec, signJwt } from '../lib/tokens.mjs'
import { subscribeRecorded } from '../lib/client.mjs'
import { waitFor } from '../lib/wait.mjs'

describe('connect: apikey validation at the HTTP upgrade', () => {
  const h = useServer()

  h.test('a valid anon key upgrades on /realtime/v1/websocket and /socket/websocket', async () => {
    for (const path of ['/realtime/v1/websocket', '/socket/websocket']) {
      const res = await probeUpgrade(h.srv.wsUrl({ apikey: h.srv.anonKey, vsn: '2.0.0' }, path))
      assert.equal(res.status, 101, `upgrade on ${path}: HTTP ${res.status} ${res.body}`)
    }
  })

  // Each case: [name, () => query params, exact `error` text from protocol §1.2].
  const cases = [
    ['missing apikey', () => ({ vsn: '2.0.0' }), 'API key is missing'],
    [
      'key signed with another secret',
      () => ({ apikey: anonKey('some-other-secret-entirely'), vsn: '2.0.0' }),
      'Failed to validate JWT signature',
    ],
    [
      'unsigned key (alg none)',
      () => ({
        apikey: signJwt({ role: 'anon', iss: 'supabase', exp: nowSec() + 3600 }, '', { alg: 'none' }),
        vsn: '2.0.0',
      }),
      'Failed to generate JWT signer, check your JWT secret or JWKS configuration',
    ],
    [
      'expired key',
      () => ({ apikey: anonKey(h.srv.secret, { expIn: -120 }), vsn: '2.0.0' }),
      'Token has expired',
    ],
    ['not a JWT', () => ({ apikey: 'definitely-not-a-jwt', vsn: '2.0.0' }), 'The token provided is not a valid JWT'],
    [
      'key without role',
      () => ({ apikey: signJwt({ iss: 'supabase', exp: nowSec() + 3600 }, h.srv.secret), vsn: '2.0.0' }),
      'Fields `role` and `exp` are required in JWT',
    ],
    [
      'key without exp',
      () => ({ apikey: signJwt({ role: 'anon', iss: 'supabase' }, h.srv.secret), vsn: '2.0.0' }),
      'Fields `role` and `exp` are required in JWT',
    ],
  ]

  for (const [name, query, text] of cases) {
    h.test(`refuses ${name}: 401 {"error": "${text}"}`, async () => {
      const res = await probeUpgrade(h.srv.wsUrl(query()))
      assert.equal(res.status, 401, `status for ${name}; body ${res.body}`)
      assert.match(String(res.headers['content-type']), /^application\/json/, 'content-type')
      assert.deepEqual(res.json, { error: text }, `body for ${name}: ${res.body}`)
    })
  }

  h.test('refuses an unsupported vsn with 403', async () => {
    const res = await probeUpgrade(h.srv.wsUrl({ apikey: h.srv.anonKey, vsn: '3.0.0' }))
    assert.equal(res.status, 403, `body ${res.body}`)
  })

  for (const [name, key] of [
    ['a key signed with another secret', () => anonKey('some-other-secret-entirely')],
    ['an unsigned key (alg none)', () => signJwt({ role: 'anon', exp: nowSec() + 3600 }, '', { alg: 'none' })],
    ['an expired key', () => anonKey(h.srv.secret, { expIn: -120 })],
  ]) {
    h.test(`supabase-js with ${name} never reaches SUBSCRIBED`, async () => {
      const sb = h.client({ key: key() })
      const ch = sb.channel('refused-room')
      const rec = subscribeRecorded(ch)
      // The failed upgrade surfaces as a transport failure on the joining channel.
      const err = await rec.waitFor('CHANNEL_ERROR', 20000)
      assert.ok(err, 'CHANNEL_ERROR reported')
      assert.equal(sb.realtime.isConnected(), false, 'socket must not be open')
      assert.ok(!rec.statuses.some((s) => s.status === 'SUBSCRIBED'), 'never SUBSCRIBED')
    })
  }
})

describe('connect: vsn and heartbeats', () => {
  const h = useServer()

  h.test('vsn 2.0.0 heartbeat is answered with the same ref, join_ref null, response {}', async () => {
    const s = await h.raw()
    for (let i = 0; i < 3; i++) {
      const ref = s.push('phoenix', 'heartbeat', {})
      const r = await s.reply(ref, 'phoenix')
      assert.deepEqual(r.array, [null, ref, 'phoenix', 'phx_reply', { status: 'ok', response: {} }])
    }
  })

  h.test('vsn 1.0.0 heartbeat is answered with a JSON object reply', async () => {
    const s = await h.raw({ vsn: '1.0.0' })
    const ref = s.push('phoenix', 'heartbeat', {})
    const r = await s.reply(ref, 'phoenix')
    // Server -> client vsn 1 objects carry only topic, event, payload, ref (no join_ref).
    assert.deepEqual(r.object, { topic: 'phoenix', event: 'phx_reply', payload: { status: 'ok', response: {} }, ref })
  })

  h.test('a socket without vsn speaks 1.0.0 (JSON objects)', async () => {
    const s = await h.raws.connect(h.srv.wsUrl({ apikey: h.srv.anonKey }), { vsn: '1.0.0' })
    const ref = s.push('phoenix', 'heartbeat', {})
    const r = await s.reply(ref, 'phoenix')
    assert.ok(r.object && !r.array, `expected an object frame, got ${r.raw}`)
    assert.deepEqual(r.object.payload, { status: 'ok', response: {} })
  })

  h.test('the /socket/websocket path serves the same protocol', async () => {
    const s = await h.raw({ path: '/socket/websocket' })
    const r = await s.heartbeat()
    assert.equal(r.payload.status, 'ok')
    const { reply } = await s.join('realtime:socket-path-room')
    assert.equal(reply.payload.status, 'ok', reply.raw)
  })

  h.test('supabase-js with heartbeatIntervalMs 500 stays connected for 6 heartbeats without reconnecting', async () => {
    const beats = []
    const sb = h.client({ heartbeatIntervalMs: 500, heartbeatCallback: (status) => beats.push(status) })
    let opens = 0
    let closes = 0
    sb.realtime.socketAdapter.onOpen(() => opens++)
    sb.realtime.socketAdapter.onClose(() => closes++)
    const ch = sb.channel('heartbeat-room')
    const rec = subscribeRecorded(ch)
    await rec.waitFor('SUBSCRIBED')
    await waitFor(() => beats.filter((b) => b === 'ok').length >= 6, {
      timeout: 20000,
      message: () => `heartbeat statuses: ${beats.join(',')}`,
    })
    assert.deepEqual(
      beats.filter((b) => b !== 'sent' && b !== 'ok'),
      [],
      `unexpected heartbeat statuses: ${beats.join(',')}`
    )
    assert.equal(opens, 1, 'socket opened exactly once')
    assert.equal(closes, 0, 'socket never closed')
    assert.equal(ch.state, 'joined')
    assert.deepEqual(
      rec.statuses.map((s) => s.status),
      ['SUBSCRIBED'],
      'no further channel status changes'
    )
  })
})
