// Broadcast (protocol §5): WebSocket send with self/ack, binary payloads, vsn 1 <-> vsn 2
// interop, REST fallback and httpSend, payload size limit.

import assert from 'node:assert/strict'
import { describe } from 'node:test'
import { collectBroadcasts, subscribed } from '../lib/client.mjs'
import { useServer } from '../lib/harness.mjs'
import { encodeUserBroadcastPush } from '../lib/raw.mjs'
import { anonKey } from '../lib/tokens.mjs'

/**
 * Proves that `receiver` got nothing more on `collector` than `expectedCount` items: a peer that
 * already received the message sends a "barrier" broadcast; once the barrier reaches `receiver`,
 * anything sent before it would have arrived too.
 */
async function barrier(fromChannel, barrierCollector, tag) {
  await fromChannel.send({ type: 'broadcast', event: 'barrier', payload: { tag } })
  await barrierCollector.waitFor((m) => m.payload?.tag === tag)
}

describe('broadcast over WebSocket (supabase-js)', () => {
  const h = useServer()

  h.test('peers receive a broadcast; the sender does not by default', async () => {
    const a = h.client().channel('bc-room')
    const b = h.client().channel('bc-room')
    const aMsgs = collectBroadcasts(a, 'msg', 'A msg')
    const aBarrier = collectBroadcasts(a, 'barrier', 'A barrier')
    const bMsgs = collectBroadcasts(b, 'msg', 'B msg')
    await Promise.all([subscribed(a), subscribed(b)])

    assert.equal(await a.send({ type: 'broadcast', event: 'msg', payload: { hello: 'world' } }), 'ok')
    const got = await bMsgs.waitFor()
    assert.deepEqual(got, { type: 'broadcast', event: 'msg', payload: { hello: 'world' } })

    await barrier(b, aBarrier, 'after-msg')
    assert.deepEqual(aMsgs.items, [], 'sender must not receive its own broadcast without self:true')
    assert.equal(bMsgs.items.length, 1, 'peer receives exactly one copy')
  })

  h.test('event matching is by name; "*" listeners get everything', async () => {
    const a = h.client().channel('bc-match')
    const b = h.client().channel('bc-match')
    const bOnlyX = collectBroadcasts(b, 'x', 'B x')
    const bAll = collectBroadcasts(b, '*', 'B *')
    await Promise.all([subscribed(a), subscribed(b)])
    await a.send({ type: 'broadcast', event: 'y', payload: { n: 1 } })
    await a.send({ type: 'broadcast', event: 'x', payload: { n: 2 } })
    await bAll.waitForCount(2)
    const x = await bOnlyX.waitFor()
    assert.deepEqual(x.payload, { n: 2 })
    assert.deepEqual(bAll.items.map((m) => m.event), ['y', 'x'], 'order preserved')
    assert.equal(bOnlyX.items.length, 1)
  })

  h.test('self: true delivers the sender its own broadcast', async () => {
    const a = h.client().channel('bc-self', { config: { broadcast: { self: true } } })
    const b = h.client().channel('bc-self')
    const aMsgs = collectBroadcasts(a, 'msg', 'A msg')
    const bMsgs = collectBroadcasts(b, 'msg', 'B msg')
    await Promise.all([subscribed(a), subscribed(b)])
    await a.send({ type: 'broadcast', event: 'msg', payload: { n: 7 } })
    assert.deepEqual(await aMsgs.waitFor(), { type: 'broadcast', event: 'msg', payload: { n: 7 } })
    assert.deepEqual((await bMsgs.waitFor()).payload, { n: 7 })
  })

  h.test('ack: true makes send() resolve "ok" after the server acknowledges', async () => {
    const a = h.client().channel('bc-ack', { config: { broadcast: { ack: true } } })
    const b = h.client().channel('bc-ack')
    const bMsgs = collectBroadcasts(b, 'msg', 'B msg')
    await Promise.all([subscribed(a), subscribed(b)])
    for (let i = 0; i < 3; i++) {
      assert.equal(await a.send({ type: 'broadcast', event: 'msg', payload: { i } }), 'ok')
    }
    await bMsgs.waitForCount(3)
    assert.deepEqual(bMsgs.items.map((m) => m.payload.i), [0, 1, 2])
  })

  h.test('self + ack together: ack resolves ok and the sender receives its copy', async () => {
    const a = h.client().channel('bc-self-ack', { config: { broadcast: { self: true, ack: true } } })
    const aMsgs = collectBroadcasts(a, 'msg')
    await subscribed(a)
    assert.equal(await a.send({ type: 'broadcast', event: 'msg', payload: { both: true } }), 'ok')
    assert.deepEqual((await aMsgs.waitFor()).payload, { both: true })
  })

  h.test('an ArrayBuffer payload arrives as an ArrayBuffer with the same bytes (vsn 2)', async () => {
    const a = h.client().channel('bc-binary', { config: { broadcast: { ack: true } } })
    const b = h.client().channel('bc-binary')
    const bMsgs = collectBroadcasts(b, 'bin')
    await Promise.all([subscribed(a), subscribed(b)])
    const bytes = Uint8Array.from([0, 1, 2, 3, 250, 251, 252, 253, 254, 255, 10, 13, 0])
    const buf = bytes.buffer.slice(0)
    assert.equal(await a.send({ type: 'broadcast', event: 'bin', payload: buf }), 'ok')
    const got = await bMsgs.waitFor()
    assert.equal(got.type, 'broadcast')
    assert.equal(got.event, 'bin')
    assert.ok(got.payload instanceof ArrayBuffer, `payload is ${Object.prototype.toString.call(got.payload)}`)
    assert.deepEqual(new Uint8Array(got.payload), bytes)
    assert.equal('meta' in got, false, 'no meta for a client broadcast')
  })

  h.test('channels with the same name on different clients are one topic; other names are isolated', async () => {
    const a = h.client().channel('bc-iso-1')
    const b = h.client().channel('bc-iso-1')
    const c = h.client().channel('bc-iso-2')
    const cMsgs = collectBroadcasts(c, '*', 'C')
    const cBarrier = collectBroadcasts(c, 'barrier', 'C barrier')
    const bMsgs = collectBroadcasts(b, 'msg')
    const a2 = h.client().channel('bc-iso-2')
    await Promise.all([subscribed(a), subscribed(b), subscribed(c), subscribed(a2)])
    await a.send({ type: 'broadcast', event: 'msg', payload: { to: 'iso-1' } })
    await bMsgs.waitFor()
    await barrier(a2, cBarrier, 'iso')
    assert.deepEqual(
      cMsgs.items.filter((m) => m.event !== 'barrier'),
      [],
      'a broadcast on bc-iso-1 must not reach bc-iso-2'
    )
  })
})

describe('broadcast: names and config edge cases', () => {
  const h = useServer()

  h.test('multi-byte UTF-8 channel and event names round-trip (binary lengths are byte counts)', async () => {
    const name = 'café-☕-日本'
    const a = h.client().channel(name, { config: { broadcast: { ack: true } } })
    const b = h.client().channel(name)
    const bMsgs = collectBroadcasts(b, 'héllo-✓')
    await Promise.all([subscribed(a), subscribed(b)])
    assert.equal(await a.send({ type: 'broadcast', event: 'héllo-✓', payload: { txt: 'ünïcödé ✓' } }), 'ok')
    assert.deepEqual(await bMsgs.waitFor(), { type: 'broadcast', event: 'héllo-✓', payload: { txt: 'ünïcödé ✓' } })
  })

  h.test('"true"/"false" strings are accepted for broadcast.self and broadcast.ack', async () => {
    const topic = 'realtime:string-bools'
    const s = await h.raw()
    const { joinRef, reply } = await s.join(topic, { broadcast: { self: 'true', ack: 'TRUE' } })
    assert.equal(reply.payload.status, 'ok', reply.raw)
    const ref = s.makeRef()
    s.sendBinary(encodeUserBroadcastPush({ joinRef, ref, topic, event: 'sb', payload: { x: 1 } }))
    assert.equal((await s.reply(ref, topic)).payload.status, 'ok', 'ack:"TRUE" acknowledges')
    const got = await s.next((r) => r.kind === 'binary' && r.event === 'sb', 5000, 'self delivery')
    assert.deepEqual(got.payload, { x: 1 })
  })

  h.test('REST: unsupported media type is 415, a non-object batch payload is 422', async () => {
    const headers = { apikey: h.srv.anonKey, Authorization: `Bearer ${h.srv.anonKey}` }
    const r1 = await fetch(`${h.srv.httpUrl}/realtime/v1/api/broadcast/rest-v/events/e`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'text/plain' },
      body: 'hello',
    })
    assert.equal(r1.status, 415, await r1.text())
    const r2 = await fetch(`${h.srv.httpUrl}/realtime/v1/api/broadcast`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ topic: 'rest-v', event: 'e', payload: 'not-an-object' }] }),
    })
    assert.equal(r2.status, 422, await r2.text())
  })
})

describe('broadcast: vsn 1.0.0 and vsn 2.0.0 clients in one channel', () => {
  const h = useServer()

  h.test('JSON broadcasts flow both ways between a vsn 1 and a vsn 2 client', async () => {
    const v1 = h.client({ vsn: '1.0.0' }).channel('bc-mixed')
    const v2 = h.client().channel('bc-mixed')
    const v1Msgs = collectBroadcasts(v1, 'msg', 'v1 msg')
    const v2Msgs = collectBroadcasts(v2, 'msg', 'v2 msg')
    await Promise.all([subscribed(v1), subscribed(v2)])

    await v2.send({ type: 'broadcast', event: 'msg', payload: { from: 'v2', list: [1, 'two', null] } })
    assert.deepEqual(await v1Msgs.waitFor(), {
      type: 'broadcast',
      event: 'msg',
      payload: { from: 'v2', list: [1, 'two', null] },
    })

    await v1.send({ type: 'broadcast', event: 'msg', payload: { from: 'v1', nested: { ok: true } } })
    const got = await v2Msgs.waitFor()
    assert.equal(got.type, 'broadcast')
    assert.equal(got.event, 'msg')
    assert.deepEqual(got.payload, { from: 'v1', nested: { ok: true } })
  })

  h.test('vsn 1 client with ack: true gets "ok"', async () => {
    const v1 = h.client({ vsn: '1.0.0' }).channel('bc-v1-ack', { config: { broadcast: { ack: true, self: true } } })
    const own = collectBroadcasts(v1, 'msg')
    await subscribed(v1)
    assert.equal(await v1.send({ type: 'broadcast', event: 'msg', payload: { a: 1 } }), 'ok')
    assert.deepEqual((await own.waitFor()).payload, { a: 1 })
  })

  h.test('a binary broadcast is not delivered to a vsn 1 subscriber', async () => {
    const sender = h.client().channel('bc-v1-bin')
    const v1 = h.client({ vsn: '1.0.0' }).channel('bc-v1-bin')
    const v1All = collectBroadcasts(v1, '*', 'v1 all')
    await Promise.all([subscribed(sender), subscribed(v1)])
    await sender.send({ type: 'broadcast', event: 'bin', payload: Uint8Array.from([1, 2, 3]).buffer })
    await sender.send({ type: 'broadcast', event: 'json', payload: { after: true } })
    await v1All.waitFor((m) => m.event === 'json')
    assert.deepEqual(v1All.items.map((m) => m.event), ['json'], 'only the JSON broadcast reaches vsn 1')
  })
})

describe('broadcast: raw frame formats', () => {
  const h = useServer()

  h.test('kind-3 push reaches a vsn 2 peer as a kind-4 frame with identical event and payload bytes', async () => {
    const topic = 'realtime:raw-kind4'
    const sender = await h.raw()
    const peer = await h.raw()
    const v1peer = await h.raw({ vsn: '1.0.0' })
    const { joinRef } = await sender.join(topic, { broadcast: { ack: true, self: false } })
    await peer.join(topic)
    await v1peer.join(topic)
    const ref = sender.makeRef()
    const body = '{"hello":"world","n":[1,2.5,null]}'
    sender.sendBinary(
      encodeUserBroadcastPush({ joinRef, ref, topic, event: 'msg', payload: JSON.parse(body) })
    )
    const ack = await sender.reply(ref, topic)
    assert.ok(ack.array, 'ack must be a JSON text frame')
    assert.deepEqual(ack.array, [joinRef, ref, topic, 'phx_reply', { status: 'ok', response: {} }])

    const got = await peer.next((r) => r.kind === 'binary', 5000, 'kind-4 frame')
    assert.equal(got.type, 4)
    const expected = Buffer.concat([
      Buffer.from([4, topic.length, 3, 0, 1]),
      Buffer.from(topic),
      Buffer.from('msg'),
      Buffer.from(JSON.stringify(JSON.parse(body))),
    ])
    assert.equal(got.topic, topic)
    assert.equal(got.event, 'msg')
    assert.equal(got.meta, null)
    assert.equal(got.encoding, 1)
    assert.deepEqual(got.payload, JSON.parse(body))
    // Header must be exactly kind 4, T, E, M=0, encoding 1.
    assert.deepEqual([...got.rawBytes.subarray(0, 5)], [...expected.subarray(0, 5)])

    const v1got = await v1peer.next((r) => r.event === 'broadcast', 5000, 'vsn 1 broadcast')
    assert.ok(v1got.object, v1got.raw)
    assert.equal(v1got.object.topic, topic)
    assert.equal(v1got.object.ref, null)
    assert.deepEqual(v1got.object.payload, { type: 'broadcast', event: 'msg', payload: JSON.parse(body) })
  })

  h.test('raw binary-encoded (encoding 0) payload passes through byte for byte', async () => {
    const topic = 'realtime:raw-bin'
    const sender = await h.raw()
    const peer = await h.raw()
    const { joinRef } = await sender.join(topic, { broadcast: { ack: true, self: false } })
    await peer.join(topic)
    const ref = sender.makeRef()
    const payload = Buffer.from([0xff, 0x00, 0x7b, 0x22, 0x80])
    sender.sendBinary(encodeUserBroadcastPush({ joinRef, ref, topic, event: 'b', encoding: 0, payload }))
    assert.equal((await sender.reply(ref, topic)).payload.status, 'ok')
    const got = await peer.next((r) => r.kind === 'binary', 5000, 'kind-4 frame')
    assert.equal(got.encoding, 0)
    assert.deepEqual(Buffer.from(got.payload), payload)
  })

  h.test('a vsn 1 JSON broadcast reaches vsn 2 peers as a text frame with join_ref and ref null', async () => {
    const topic = 'realtime:raw-v1-origin'
    const v1 = await h.raw({ vsn: '1.0.0' })
    const peer = await h.raw()
    const { joinRef } = await v1.join(topic)
    await peer.join(topic)
    v1.push(topic, 'broadcast', { type: 'broadcast', event: 'x', payload: { n: 1 } }, { joinRef })
    const got = await peer.next((r) => r.event === 'broadcast', 5000, 'broadcast')
    assert.deepEqual(got.array, [null, null, topic, 'broadcast', { type: 'broadcast', event: 'x', payload: { n: 1 } }])
  })
})

describe('broadcast: REST', () => {
  const h = useServer()

  h.test('send() on a channel not subscribed falls back to POST /api/broadcast; a subscribed peer receives it', async () => {
    const peer = h.client().channel('rest-room')
    const peerMsgs = collectBroadcasts(peer, 'note')
    await subscribed(peer)
    const sb = h.client()
    const notJoined = sb.channel('rest-room')
    const origWarn = console.warn
    console.warn = () => {} // realtime-js warns about the implicit REST fallback
    let res
    try {
      res = await notJoined.send({ type: 'broadcast', event: 'note', payload: { via: 'rest' } })
    } finally {
      console.warn = origWarn
    }
    assert.equal(res, 'ok')
    assert.deepEqual(await peerMsgs.waitFor(), { type: 'broadcast', event: 'note', payload: { via: 'rest' } })
  })

  h.test('channel.httpSend(event, payload) resolves {success: true} and the peer receives it', async () => {
    const peer = h.client().channel('http-send-room')
    const peerMsgs = collectBroadcasts(peer, 'hs')
    await subscribed(peer)
    const ch = h.client().channel('http-send-room')
    assert.deepEqual(await ch.httpSend('hs', { a: [1, 2], b: 'x' }), { success: true })
    const got = await peerMsgs.waitFor()
    assert.equal(got.type, 'broadcast')
    assert.equal(got.event, 'hs')
    assert.deepEqual(got.payload, { a: [1, 2], b: 'x' })
  })

  h.test('httpSend with a binary payload delivers an ArrayBuffer', async () => {
    const peer = h.client().channel('http-send-bin')
    const peerMsgs = collectBroadcasts(peer, 'hb')
    await subscribed(peer)
    const ch = h.client().channel('http-send-bin')
    const bytes = Uint8Array.from([9, 8, 7, 0, 255])
    assert.deepEqual(await ch.httpSend('hb', bytes), { success: true })
    const got = await peerMsgs.waitFor()
    assert.ok(got.payload instanceof ArrayBuffer, `payload is ${Object.prototype.toString.call(got.payload)}`)
    assert.deepEqual(new Uint8Array(got.payload), bytes)
  })

  h.test('POST /realtime/v1/api/broadcast answers 202 and fans out each message', async () => {
    const peer = h.client().channel('rest-batch')
    const peerMsgs = collectBroadcasts(peer, '*')
    await subscribed(peer)
    const res = await fetch(`${h.srv.httpUrl}/realtime/v1/api/broadcast`, {
      method: 'POST',
      headers: {
        apikey: h.srv.anonKey,
        Authorization: `Bearer ${h.srv.anonKey}`,
        'Content-Type': 'application/json',
      },
      body: JSON.stringify({
        messages: [
          { topic: 'rest-batch', event: 'one', payload: { n: 1 }, private: false },
          { topic: 'rest-batch', event: 'two', payload: { n: 2 } },
        ],
      }),
    })
    assert.equal(res.status, 202, await res.text())
    await peerMsgs.waitForCount(2)
    assert.deepEqual(
      peerMsgs.items.map((m) => [m.event, m.payload]),
      [
        ['one', { n: 1 }],
        ['two', { n: 2 }],
      ]
    )
  })

  h.test('REST broadcast with a key signed by another secret is refused with 401', async () => {
    const bad = anonKey('not-the-server-secret')
    const res = await fetch(`${h.srv.httpUrl}/realtime/v1/api/broadcast/rest-auth/events/e`, {
      method: 'POST',
      headers: { apikey: bad, Authorization: `Bearer ${bad}`, 'Content-Type': 'application/json' },
      body: '{"a":1}',
    })
    await res.body?.cancel()
    assert.equal(res.status, 401)
    const sb = h.client({ key: bad })
    await assert.rejects(sb.channel('rest-auth').httpSend('e', { a: 1 }))
  })
})

describe('broadcast: payload size limit (default 262144 bytes)', () => {
  const h = useServer()

  h.test('an oversized broadcast with ack resolves "error" and is not delivered', async () => {
    const a = h.client().channel('bc-big', { config: { broadcast: { ack: true } } })
    const b = h.client().channel('bc-big')
    const bBig = collectBroadcasts(b, 'big', 'B big')
    const aBarrier = collectBroadcasts(a, 'barrier')
    const bSmall = collectBroadcasts(b, 'small', 'B small')
    await Promise.all([subscribed(a), subscribed(b)])

    const big = { data: 'x'.repeat(300 * 1024) }
    assert.equal(await a.send({ type: 'broadcast', event: 'big', payload: big }), 'error')

    // Below the limit still works on the same channel.
    const small = { data: 'y'.repeat(100 * 1024) }
    assert.equal(await a.send({ type: 'broadcast', event: 'small', payload: small }), 'ok')
    assert.equal((await bSmall.waitFor()).payload.data.length, 100 * 1024)
    await barrier(b, aBarrier, 'after-big')
    assert.equal(bBig.items.length, 0, 'oversized broadcast must not be delivered')
  })

  h.test('raw: the error reply to an oversized kind-3 push is a phx_reply with status error', async () => {
    const topic = 'realtime:raw-big'
    const s = await h.raw()
    const { joinRef } = await s.join(topic, { broadcast: { ack: true, self: true } })
    const ref = s.makeRef()
    s.sendBinary(
      encodeUserBroadcastPush({ joinRef, ref, topic, event: 'big', payload: { data: 'z'.repeat(300 * 1024) } })
    )
    const r = await s.reply(ref, topic)
    assert.equal(r.join_ref, joinRef)
    assert.equal(r.payload.status, 'error', r.raw.slice(0, 300))
    assert.equal((await s.heartbeat()).payload.status, 'ok', 'connection still usable')
  })
})

describe('broadcast: --max-payload-bytes flag', () => {
  const h = useServer({ maxPayloadBytes: 1024 })

  h.test('with a 1 KiB limit, a 4 KiB payload is refused and a 200-byte one accepted', async () => {
    const a = h.client().channel('bc-limit', { config: { broadcast: { ack: true, self: true } } })
    const own = collectBroadcasts(a, '*')
    await subscribed(a)
    assert.equal(await a.send({ type: 'broadcast', event: 'big', payload: { d: 'x'.repeat(4096) } }), 'error')
    assert.equal(await a.send({ type: 'broadcast', event: 'ok', payload: { d: 'x'.repeat(200) } }), 'ok')
    await own.waitFor((m) => m.event === 'ok')
    assert.deepEqual(own.items.map((m) => m.event), ['ok'])
  })
})
