// Twelve projects in one process through supabase-js 2.119 (docs/projects.md): `realtime dev
// --projects 12 --pglite-projects 2` serves 10 projects on databases of one throwaway PostgreSQL
// (logical replication) and 2 on PGlite bridges (the notify source), each with its own JWT secret,
// reached as http://<ref>.localhost:<port>. Two clients per project on the SAME channel name `room`
// (broadcast, presence and postgres_changes on public.messages): randomized traffic reaches only
// its own project's clients, and all of it arrives; a token of one project is refused by the 11
// others; one project's database refuses connections: its clients get the `system` error while the
// 11 others keep flowing, and when it is back its clients get every row committed meanwhile.

import assert from 'node:assert/strict'
import { describe } from 'node:test'
import pg from 'pg'
import { subscribed } from '../lib/client.mjs'
import { useDevProjects } from '../lib/devprojects.mjs'
import { probeUpgrade } from '../lib/raw.mjs'
import { Collector, safeJson, waitFor } from '../lib/wait.mjs'

describe('twelve projects in one process (10 PostgreSQL + 2 PGlite)', () => {
  const h = useDevProjects({ n: 12, pglite: 2, extraArgs: ['--poll-interval', '20ms'] })
  let readied = false

  /** Waits once until every project's change source streams (its /healthz) and, on PGlite, the capture trigger of messages is in place. */
  async function ready() {
    if (readied) return
    await Promise.all(
      h.srv.projects.map(async (p) => {
        await waitFor(async () => (await fetch(`http://127.0.0.1:${h.srv.port}/healthz`, { headers: { 'X-Project-Ref': p.ref } })).status === 200, {
          timeout: 60000,
          interval: 100,
          message: `${p.ref} never ready`,
        })
        if (p.source === 'notify') {
          await waitFor(
            async () =>
              Number((await p.sql(`SELECT count(*) AS n FROM pg_trigger WHERE tgname = 'realtime_capture' AND tgrelid = 'public.messages'::regclass`)).rows[0].n) === 1,
            { timeout: 60000, interval: 100, message: `${p.ref}: no capture trigger on messages` }
          )
        }
      })
    )
    readied = true
  }

  /**
   * Client `who` ('a' or 'b') of project p on channel `room`: broadcasts without self-delivery,
   * presence keyed `who`, INSERTs on public.messages. Every broadcast and row carries the sending
   * project's ref; `got` collects {kind, ref, tag}, `sys` the system messages.
   */
  async function member(p, who) {
    const ch = h.projectClient(p).channel('room', { config: { broadcast: { self: false }, presence: { key: who } } })
    const got = new Collector(`${p.ref}/${who}`)
    const sys = new Collector(`system on ${p.ref}/${who}`)
    ch.on('broadcast', { event: 'e' }, (m) => got.push({ kind: 'broadcast', ref: m.payload.p, tag: m.payload.tag }))
    ch.on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'messages' }, (c) => {
      const [ref, tag] = c.new.body.split('/')
      got.push({ kind: 'row', ref, tag })
    })
    ch.on('presence', { event: 'sync' }, () => {})
    ch.on('system', {}, sys.push)
    await subscribed(ch, 30000)
    const s = await sys.waitFor((m) => m.extension === 'postgres_changes', 30000)
    assert.equal(s.status, 'ok', `${p.ref}/${who}: ${safeJson(s)}`)
    return { p, who, ch, got, sys }
  }

  /** Both members of every project, subscribed. */
  async function members() {
    await ready()
    return Promise.all(h.srv.projects.map(async (p) => ({ p, a: await member(p, 'a'), b: await member(p, 'b') })))
  }

  /** What m received, as "kind:tag". */
  const keysOf = (m) => m.got.items.map((x) => `${x.kind}:${x.tag}`)

  /** Fails on anything m received that names another project; returns keysOf(m). */
  function own(m) {
    const foreign = m.got.items.filter((x) => x.ref !== m.p.ref)
    assert.deepEqual(foreign, [], `${m.p.ref}/${m.who} received another project's events`)
    return keysOf(m)
  }

  /** Waits until m received every key of want ("kind:tag"), then checks it received each once and nothing foreign. */
  async function receives(m, want) {
    await waitFor(() => want.every((k) => keysOf(m).includes(k)), {
      timeout: 30000,
      message: () => `${m.p.ref}/${m.who} waits for ${safeJson(want.filter((k) => !keysOf(m).includes(k)))}; got ${safeJson(m.got.items)}`,
    })
    for (const k of want) assert.equal(own(m).filter((x) => x === k).length, 1, `${m.p.ref}/${m.who} got ${k} more than once`)
  }

  const insert = (p, tag, db = p) => db.sql(`INSERT INTO messages (room, body) VALUES ('r', $1)`, [`${p.ref}/${tag}`])
  const send = (m, tag) => m.ch.send({ type: 'broadcast', event: 'e', payload: { p: m.p.ref, tag } })

  h.test('randomized broadcasts, presence and rows on the same channel name reach only their own project, all of them', async () => {
    const all = await members()
    const seed = Number(process.env.E2E_SEED ?? Date.now() % 1e9)
    console.log(`# seed ${seed} (E2E_SEED)`)
    let state = seed
    const rnd = (n) => {
      state = (state * 1103515245 + 12345) % 2147483648
      return state % n
    }
    // Every project: 1-4 broadcasts from a random member, 1-3 rows; all interleaved across projects.
    const ops = []
    const want = new Map()
    for (const x of all) {
      want.set(x.a, [])
      want.set(x.b, [])
      for (let k = 0, n = 1 + rnd(4); k < n; k++) {
        const [from, to] = rnd(2) ? [x.a, x.b] : [x.b, x.a]
        ops.push(() => send(from, `b${k}`))
        want.get(to).push(`broadcast:b${k}`)
      }
      for (let k = 0, n = 1 + rnd(3); k < n; k++) {
        ops.push(() => insert(x.p, `i${k}`))
        want.get(x.a).push(`row:i${k}`)
        want.get(x.b).push(`row:i${k}`)
      }
    }
    for (let i = ops.length - 1; i > 0; i--) {
      const j = rnd(i + 1)
      ;[ops[i], ops[j]] = [ops[j], ops[i]]
    }
    for (const x of all) for (const m of [x.a, x.b]) await m.ch.track({ p: x.p.ref, who: m.who })
    for (const op of ops) {
      const r = await op()
      if (typeof r === 'string') assert.equal(r, 'ok')
    }
    for (const [m, keys] of want) await receives(m, keys)
    // Presence: each member sees exactly its own project's two members.
    for (const x of all) {
      for (const m of [x.a, x.b]) {
        await waitFor(() => Object.keys(m.ch.presenceState()).sort().join() === 'a,b', {
          timeout: 30000,
          message: () => `${x.p.ref}/${m.who} presence ${safeJson(m.ch.presenceState())}`,
        })
        const metas = Object.values(m.ch.presenceState()).flat()
        assert.deepEqual(
          metas.map((meta) => meta.p),
          [x.p.ref, x.p.ref],
          `${x.p.ref}/${m.who} presence ${safeJson(metas)}`
        )
      }
    }
    // Nothing beyond what was sent: exactly the wanted items, none foreign.
    for (const [m, keys] of want) assert.deepEqual(own(m).sort(), [...keys].sort(), `${m.p.ref}/${m.who}`)
  })

  h.test('a token of one project is refused by each of the 11 others', async () => {
    await ready()
    const ps = h.srv.projects
    const probes = []
    for (const p of ps) {
      for (const o of ps) {
        probes.push(
          probeUpgrade(h.srv.wsUrl({ vsn: '2.0.0', apikey: p.anonKey }), { headers: { Host: o.host } }).then((res) => {
            if (p === o) assert.equal(res.status, 101, `${p.ref}'s own token: ${res.status} ${res.body}`)
            else {
              assert.equal(res.status, 401, `${p.ref}'s token on ${o.ref}: ${res.status} ${res.body}`)
              assert.equal(res.json?.error, 'Failed to validate JWT signature')
            }
          })
        )
      }
    }
    await Promise.all(probes)
    assert.equal(probes.length, 144)
  })

  h.test("one project's database outage: its clients get the system error, the 11 others keep flowing, nothing is lost", async () => {
    const all = await members()
    const down = all.find((x) => x.p.ref === 'project6')
    assert.equal(down.p.source, 'logical')
    // The test's own session on the database stays across the outage and commits meanwhile.
    const keep = new pg.Client({ connectionString: down.p.dbUrl })
    await keep.connect()
    const admin = new pg.Client({ connectionString: down.p.dbUrl.replace(/\/project6\?/, '/postgres?') })
    await admin.connect()
    h.defer(async () => {
      await admin.query(`ALTER DATABASE project6 WITH ALLOW_CONNECTIONS true`).catch(() => {})
      await keep.end().catch(() => {})
      await admin.end().catch(() => {})
    })
    const keepPid = (await keep.query('SELECT pg_backend_pid() AS pid')).rows[0].pid
    await admin.query('ALTER DATABASE project6 WITH ALLOW_CONNECTIONS false')
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2', ['project6', keepPid])
    for (const m of [down.a, down.b]) {
      const e = await m.sys.waitFor((s) => s.status === 'error', 30000)
      assert.equal(e.message, 'Realtime was unable to connect to the project database')
    }
    const lost = ['down0', 'down1', 'down2']
    const session = { sql: (text, params) => keep.query(text, params) }
    for (const tag of lost) await insert(down.p, tag, session)
    // The 11 others: a broadcast and a row each, received as before.
    await Promise.all(
      all
        .filter((x) => x !== down)
        .map(async (x) => {
          assert.equal(await send(x.a, 'during'), 'ok')
          await insert(x.p, 'during')
          await receives(x.b, ['broadcast:during', 'row:during'])
          await receives(x.a, ['row:during'])
        })
    )
    await admin.query('ALTER DATABASE project6 WITH ALLOW_CONNECTIONS true')
    for (const m of [down.a, down.b]) {
      const failed = m.sys.items.findIndex((e) => e.status === 'error')
      await m.sys.waitFor((e, i) => i > failed && e.status === 'ok' && /Subscribed to PostgreSQL/.test(e.message), 60000)
      await receives(m, lost.map((t) => `row:${t}`))
    }
    for (const x of all) for (const m of [x.a, x.b]) own(m)
  })
})
