// Connection and channel lifecycle beyond the basics: access_token refresh (protocol §7.1),
// joins-per-second limit (§7.5/§7.6), idle sockets, abrupt disconnects, SIGTERM shutdown.

import assert from 'node:assert/strict'
import { describe } from 'node:test'
import { collectBroadcasts, subscribed, subscribeRecorded } from '../lib/client.mjs'
import { useServer } from '../lib/harness.mjs'
import { nowSec, userToken } from '../lib/tokens.mjs'
import { waitFor } from '../lib/wait.mjs'

describe('lifecycle: access_token refresh on a joined channel', () => {
  const h = useServer()

  h.test('a valid access_token push gets no reply and the channel keeps working', async () => {
    const topic = 'realtime:refresh-ok'
    const s = await h.raw()
    const { joinRef } = await s.join(topic, { broadcast: { self: true, ack: true } }, { accessToken: userToken(h.srv.secret) })
    const ref = s.push(topic, 'access_token', { access_token: userToken(h.srv.secret, { expIn: 7200 }) }, { joinRef })
    // A heartbeat round trip orders after any reply the push could have produced.
    await s.heartbeat()
    const bref = s.push(topic, 'broadcast', { type: 'broadcast', event: 'after', payload: { ok: 1 } }, { joinRef })
    assert.equal((await s.reply(bref, topic)).payload.status, 'ok')
    await s.next((r) => r.event === 'broadcast' && r.payload?.event === 'after', 5000, 'own broadcast')
    assert.ok(!s.all.some((r) => r.ref === ref), `no reply expected to access_token: ${s.describeAll()}`)
    assert.ok(!s.all.some((r) => r.event === 'phx_close' || r.event === 'system'), s.describeAll())
  })

  h.test('an expired access_token push closes the channel with a system error then phx_close', async () => {
    const topic = 'realtime:refresh-expired'
    const s = await h.raw()
    const { joinRef } = await s.join(topic, {}, { accessToken: userToken(h.srv.secret) })
    s.push(topic, 'access_token', { access_token: userToken(h.srv.secret, { exp: nowSec() - 20 }) }, { joinRef })
    const sys = await s.next((r) => r.event === 'system' && r.topic === topic, 10000, 'system error')
    assert.equal(sys.join_ref, joinRef)
    assert.equal(sys.payload.status, 'error')
    assert.equal(sys.payload.extension, 'system')
    assert.equal(sys.payload.channel, 'refresh-expired')
    const m = /^Token has expired (\d+) seconds ago$/.exec(sys.payload.message)
    assert.ok(m, sys.payload.message)
    assert.ok(Number(m[1]) >= 20, `N = ${m[1]}`)
    const close = await s.next((r) => r.event === 'phx_close' && r.topic === topic, 5000, 'phx_close')
    assert.deepEqual(close.array, [joinRef, joinRef, topic, 'phx_close', {}])
  })

  h.test('a malformed access_token push closes the channel with "The token provided is not a valid JWT"', async () => {
    const topic = 'realtime:refresh-malformed'
    const s = await h.raw()
    const { joinRef } = await s.join(topic)
    s.push(topic, 'access_token', { access_token: 'garbage-token' }, { joinRef })
    const sys = await s.next((r) => r.event === 'system' && r.topic === topic, 10000, 'system error')
    assert.equal(sys.payload.status, 'error')
    assert.equal(sys.payload.message, 'The token provided is not a valid JWT')
    await s.next((r) => r.event === 'phx_close' && r.topic === topic, 5000, 'phx_close')
  })

  h.test('refreshing before expiry replaces the expiry timer: no close at the old exp', async () => {
    const topic = 'realtime:refresh-extend'
    const s = await h.raw()
    const oldExp = nowSec() + 2
    const { joinRef } = await s.join(topic, {}, { accessToken: userToken(h.srv.secret, { exp: oldExp }) })
    s.push(topic, 'access_token', { access_token: userToken(h.srv.secret, { expIn: 3600 }) }, { joinRef })
    await s.heartbeat()
    // The only way to show nothing happens at the old expiry is to let that moment pass.
    await waitFor(() => Date.now() > (oldExp + 1.5) * 1000, { timeout: 10000, interval: 100 })
    await s.heartbeat()
    assert.ok(
      !s.all.some((r) => r.topic === topic && (r.event === 'system' || r.event === 'phx_close')),
      `channel must stay open: ${s.describeAll()}`
    )
  })

  h.test('supabase-js setAuth() with a fresh token keeps the channel subscribed past the old expiry', async () => {
    // With supabase-js the accessToken callback is the source of truth: change what it returns,
    // then setAuth() pushes access_token on every joined channel.
    const oldExp = nowSec() + 3
    let token = userToken(h.srv.secret, { exp: oldExp })
    const sb = h.client({ accessToken: async () => token })
    await waitFor(() => sb.realtime.accessTokenValue === token)
    const ch = sb.channel('refresh-js')
    const rec = subscribeRecorded(ch)
    await rec.waitFor('SUBSCRIBED')
    token = userToken(h.srv.secret, { expIn: 3600 })
    await sb.realtime.setAuth()
    assert.equal(sb.realtime.accessTokenValue, token)
    // Let the old expiry pass (nothing observable would otherwise tell us it was skipped).
    await waitFor(() => Date.now() > (oldExp + 1.5) * 1000, { timeout: 10000, interval: 100 })
    await waitFor(() => sb.realtime.isConnected())
    assert.deepEqual(
      rec.statuses.map((s) => s.status),
      ['SUBSCRIBED'],
      'the channel must not be closed at the old token expiry'
    )
    assert.equal(ch.state, 'joined')
  })
})

describe('lifecycle: joins per second', () => {
  // The join bucket's burst is the channel limit (5 here): five joins pass at once, the rejoins
  // that follow find the bucket empty (docs/protocol.md §7.6).
  const h = useServer({ maxJoinsPerSecond: 2, extraArgs: ['--max-channels-per-client', '5'] })

  h.test('a join burst over the limit gets ClientJoinRateLimitReached and the socket is closed', async () => {
    const s = await h.raw()
    for (let i = 0; i < 10; i++) {
      const ref = s.makeRef()
      s.sendMessage({
        join_ref: ref,
        ref,
        topic: `realtime:burst-${i % 5}`,
        event: 'phx_join',
        payload: { config: { broadcast: {}, presence: { key: '', enabled: false }, postgres_changes: [], private: false } },
      })
    }
    const refused = await s.next(
      (r) => r.event === 'phx_reply' && r.payload?.status === 'error',
      10000,
      'a refused join'
    )
    assert.equal(refused.payload.response?.reason, 'ClientJoinRateLimitReached: Too many joins per second')
    await s.waitClosed(10000)
  })
})

describe('lifecycle: idle sockets', () => {
  const h = useServer({ extraArgs: ['--idle-timeout', '1s'] })

  h.test('a socket that sends nothing is closed by the server; a heartbeating client stays', async () => {
    const silent = await h.raw()
    const sb = h.client({ heartbeatIntervalMs: 250 })
    const ch = sb.channel('idle-room')
    let closes = 0
    sb.realtime.socketAdapter.onClose(() => closes++)
    await subscribed(ch)
    await silent.waitClosed(10000)
    assert.ok(silent.closed, 'silent socket closed')
    assert.equal(closes, 0, 'the heartbeating client was not disconnected')
    assert.equal(sb.realtime.isConnected(), true)
  })
})

describe('lifecycle: reconnect and rejoin after a server-side close', () => {
  // Sockets silent for 3 s are closed by the server; supabase-js (25 s heartbeat) then reconnects.
  const h = useServer({ extraArgs: ['--idle-timeout', '3s'] })

  h.test('supabase-js reconnects, rejoins with a new join ref, and broadcast works again', async () => {
    const sb = h.client()
    let opens = 0
    sb.realtime.socketAdapter.onOpen(() => opens++)
    const ch = sb.channel('rejoin-room', { config: { broadcast: { self: true, ack: true } } })
    const own = collectBroadcasts(ch, 'again')
    const rec = subscribeRecorded(ch)
    await rec.waitFor('SUBSCRIBED')
    const firstJoinRef = ch.joinPush.ref
    // Dropped by the server, then rejoined on a new socket: a second SUBSCRIBED.
    await waitFor(() => rec.statuses.filter((s) => s.status === 'SUBSCRIBED').length >= 2, {
      timeout: 20000,
      message: () => `statuses: ${rec.statuses.map((s) => s.status).join(',')}`,
    })
    assert.ok(opens >= 2, `socket reopened (opens = ${opens})`)
    assert.notEqual(ch.joinPush.ref, firstJoinRef, 'rejoin uses a new join ref')
    assert.equal(await ch.send({ type: 'broadcast', event: 'again', payload: { n: 1 } }), 'ok')
    assert.deepEqual((await own.waitFor()).payload, { n: 1 })
  })
})

describe('lifecycle: abrupt disconnect and shutdown', () => {
  const h = useServer()

  h.test('a tracked peer whose TCP connection dies is reported as a presence leave', async () => {
    const topic = 'realtime:abrupt'
    const watcher = await h.raw()
    await watcher.join(topic, { presence: { key: 'watcher', enabled: true } })
    const victim = await h.raw()
    const { joinRef } = await victim.join(topic, { presence: { key: 'victim', enabled: true } })
    const tref = victim.push(topic, 'presence', { type: 'presence', event: 'track', payload: { v: 1 } }, { joinRef })
    assert.equal((await victim.reply(tref, topic)).payload.status, 'ok')
    await watcher.next((r) => r.event === 'presence_diff' && r.payload?.joins?.victim, 5000, 'victim join diff')
    victim.ws.terminate()
    const leave = await watcher.next(
      (r) => r.event === 'presence_diff' && r.payload?.leaves?.victim,
      15000,
      'victim leave diff'
    )
    assert.equal(leave.payload.leaves.victim.metas[0].v, 1)
  })

  h.test('SIGTERM closes open sockets and the process exits with code 0', async () => {
    const srv = await h.startExtraServer()
    const s = await h.raw({ server: srv })
    await s.join('realtime:shutdown')
    const sb = h.client({ server: srv })
    await subscribed(sb.channel('shutdown-js'))
    const stopped = srv.stop()
    await s.waitClosed(10000)
    const exit = await stopped
    assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}`)
  })
})
