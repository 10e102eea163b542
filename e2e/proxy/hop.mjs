// supabase-js through a proxy hop. Driven by tools/envoycheck/hop/proxyhop_test.go, which starts
// `realtime dev` and a Go reverse proxy built from docs/envoy/envoy.yaml with a short idle
// timeout, then runs this script with:
//
//   PROXY_URL    http://127.0.0.1:<proxy port>   (what the clients talk to)
//   DIRECT_URL   http://127.0.0.1:<service port> (only for the dev insert endpoint, standing in
//                                                 for PostgREST writing a row)
//   ANON_KEY, USER_KEY, SERVICE_KEY               (from `realtime dev --json`)
//   IDLE_MS      the proxy's stream idle timeout
//
// Scenario:
//   1. A client with heartbeatIntervalMs = IDLE_MS / 3 subscribes to a broadcast channel and to
//      INSERTs on public.messages, through the proxy.
//   2. It stays idle (no traffic but heartbeats) for 2 × IDLE_MS. The socket must not close or
//      reopen, and heartbeat replies must keep arriving through the proxy.
//   3. It then receives a broadcast sent by a second client over its WebSocket, one sent over the
//      REST broadcast route (rate-limited route in Envoy), and an INSERT.
//   4. Control: a client whose heartbeat interval is far longer than IDLE_MS is cut by the proxy
//      (close code 1006, no close frame) before its first heartbeat is even sent. Without this the
//      survival in step 2 would prove nothing.
//
// Exits 0 and prints one JSON summary line on success; prints the failure and exits 1 otherwise.

import { ClientPool, collectBroadcasts, Collector, subscribed } from '../lib/client.mjs'
import { safeJson, sleep, waitFor, withTimeout } from '../lib/wait.mjs'

function env(name) {
  const v = process.env[name]
  if (!v) throw new Error(`hop.mjs: ${name} is not set`)
  return v
}

const proxy = { httpUrl: env('PROXY_URL'), anonKey: env('ANON_KEY') }
const directUrl = env('DIRECT_URL')
const userKey = env('USER_KEY')
const serviceKey = env('SERVICE_KEY')
const idleMs = Number(env('IDLE_MS'))
const log = (...a) => console.error('[hop]', ...a)

/** Records opens, closes (with codes) and heartbeat statuses of a client's socket. */
function watchSocket(client) {
  const w = { opens: 0, closes: [], heartbeats: [] }
  client.realtime.socketAdapter.onOpen(() => w.opens++)
  client.realtime.socketAdapter.onClose((ev) => w.closes.push({ code: ev?.code, reason: ev?.reason, at: Date.now() }))
  client.realtime.onHeartbeat((status) => w.heartbeats.push({ status, at: Date.now() }))
  return w
}

/** Subscribes and waits for the postgres_changes status system message to be ok. */
async function subscribedWithChanges(channel, sys) {
  await subscribed(channel)
  const m = await sys.waitFor((p) => p.extension === 'postgres_changes', 15000)
  if (m.status !== 'ok') throw new Error(`postgres_changes subscription failed: ${safeJson(m)}`)
}

function check(cond, msg) {
  if (!cond) throw new Error(msg)
}

async function main() {
  const clients = new ClientPool()
  const summary = {}
  try {
    const run = `${process.pid}-${Date.now()}`
    const topic = `hop-${run}`

    // 1. Listener through the proxy.
    const a = clients.create(proxy, { heartbeatIntervalMs: Math.floor(idleMs / 3) })
    const aw = watchSocket(a)
    await a.realtime.setAuth(userKey)
    const ch = a.channel(topic)
    const bcast = collectBroadcasts(ch, 'ping', 'broadcasts on A')
    const inserts = new Collector('INSERTs on A')
    ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'messages', filter: `room=eq.${topic}` }, inserts.push)
    const sys = new Collector('system on A')
    ch.on('system', {}, sys.push)
    await subscribedWithChanges(ch, sys)
    check(aw.opens === 1, `expected one socket open after subscribing, got ${aw.opens}`)
    log('subscribed through the proxy; idling for', 2 * idleMs, 'ms')

    // 2. Idle: nothing but heartbeats for twice the proxy's idle timeout.
    const idleStart = Date.now()
    await sleep(2 * idleMs)
    const oks = aw.heartbeats.filter((h) => h.status === 'ok' && h.at >= idleStart).length
    check(aw.closes.length === 0, `the socket closed during the idle period: ${safeJson(aw.closes)}`)
    check(aw.opens === 1, `the socket reopened during the idle period (${aw.opens} opens)`)
    check(oks >= 2, `only ${oks} heartbeat replies came back through the proxy while idle: ${safeJson(aw.heartbeats)}`)
    summary.idle_ms = Date.now() - idleStart
    summary.heartbeats_ok_while_idle = oks

    // 3a. Broadcast from a second client over its own WebSocket through the proxy.
    const b = clients.create(proxy, { heartbeatIntervalMs: Math.floor(idleMs / 3) })
    await b.realtime.setAuth(userKey)
    const chB = b.channel(topic)
    await subscribed(chB)
    check((await chB.send({ type: 'broadcast', event: 'ping', payload: { via: 'ws', run } })) === 'ok', 'WebSocket send failed')
    await bcast.waitFor((m) => m.payload?.via === 'ws' && m.payload?.run === run, 15000)

    // 3b. Broadcast over the REST route through the proxy.
    const res = await fetch(`${proxy.httpUrl}/realtime/v1/api/broadcast`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', apikey: serviceKey, Authorization: `Bearer ${serviceKey}` },
      body: JSON.stringify({ messages: [{ topic, event: 'ping', payload: { via: 'rest', run } }] }),
    })
    const resText = await res.text()
    check(res.status >= 200 && res.status < 300, `REST broadcast through the proxy: ${res.status} ${resText}`)
    await bcast.waitFor((m) => m.payload?.via === 'rest' && m.payload?.run === run, 15000)

    // 3c. A row written by "PostgREST" (the dev insert endpoint) reaches A through the proxy.
    const body = `hello ${run}`
    const ins = await fetch(`${directUrl}/dev/v1/messages`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${userKey}` },
      body: JSON.stringify({ room: topic, body }),
    })
    const insText = await ins.text()
    check(ins.status === 201, `dev insert: ${ins.status} ${insText}`)
    const change = await inserts.waitFor((p) => p.new?.body === body, 15000)
    check(change.eventType === 'INSERT' && change.table === 'messages', `unexpected change ${safeJson(change)}`)
    check(aw.closes.length === 0 && aw.opens === 1, `socket A was reconnected: ${safeJson(aw)}`)
    summary.received = { ws_broadcast: true, rest_broadcast: true, insert: true }

    // 4. Control: no heartbeat within the idle timeout, so the proxy cuts the socket.
    const c = clients.create(proxy, { heartbeatIntervalMs: 20 * idleMs, reconnectAfterMs: () => 60000 })
    const cw = watchSocket(c)
    const chC = c.channel(`${topic}-control`)
    await subscribed(chC)
    const controlStart = Date.now()
    await withTimeout(
      waitFor(() => cw.closes.length > 0, { timeout: 10 * idleMs }),
      12 * idleMs,
      'control socket close'
    )
    const sent = cw.heartbeats.filter((h) => h.status === 'sent').length
    check(sent === 0, `the control client sent ${sent} heartbeat(s); its close proves nothing`)
    check(cw.closes[0].code === 1006, `control socket closed with ${safeJson(cw.closes[0])}, want 1006 (TCP closed by the proxy, no close frame)`)
    summary.control_closed_after_ms = cw.closes[0].at - controlStart
    summary.control_close_code = cw.closes[0].code

    console.log(JSON.stringify({ ok: true, ...summary }))
  } finally {
    await clients.closeAll()
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error('[hop] FAILED:', err?.stack || err)
    process.exit(1)
  }
)
