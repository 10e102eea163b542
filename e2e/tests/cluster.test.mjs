// A cluster of three nodes (`realtime dev --nodes 3`: embedded NATS, one database) with
// supabase-js clients spread over the nodes: client, REST and database broadcasts reach every
// node's subscribers once, in the sender's order, with self/ack/private meaning what they mean
// on one node (docs/cluster.md).

import assert from 'node:assert/strict'
import { afterEach, describe } from 'node:test'
import { collectBroadcasts, subscribed } from '../lib/client.mjs'
import { createPublishedTable, useDevServer, waitPublished } from '../lib/dev.mjs'
import { SSEPool } from '../lib/sse.mjs'
import { safeJson, sleep, waitFor } from '../lib/wait.mjs'
import { chromium } from 'playwright-core'

describe('cluster of three nodes (supabase-js)', () => {
  const h = useDevServer({ extraArgs: ['--nodes', '3'] })
  const sse = new SSEPool()
  afterEach(() => sse.closeAll())

  /** The nodes as servers for h.client({ server }): URL of that node, the suite's keys. */
  const nodes = () =>
    h.srv.info.nodes.map((n) => ({ httpUrl: n.url, anonKey: h.srv.anonKey, serviceKey: h.srv.serviceKey }))

  /** A client on node i acting as key from its first join on. */
  async function on(i, key, opts = {}) {
    const c = h.client({ server: nodes()[i], key: h.srv.anonKey, accessToken: async () => key, ...opts })
    await c.realtime.setAuth(key)
    return c
  }

  /**
   * Sends "probe" broadcasts from `from` until every collector has one: the subscriptions of
   * every node have reached the sender's node (interest travels asynchronously over routes).
   */
  async function crossed(from, collectors) {
    for (let i = 0; i < 200; i++) {
      await from.send({ type: 'broadcast', event: 'probe', payload: {} })
      if (collectors.every((c) => c.items.length > 0)) return
      await sleep(50)
    }
    throw new Error('no probe broadcast crossed the cluster')
  }

  h.test('nodes are listed and each serves its own URL', async () => {
    const ns = h.srv.info.nodes
    assert.deepEqual(ns.map((n) => n.name), ['node-1', 'node-2', 'node-3'])
    assert.equal(new Set(ns.map((n) => n.url)).size, 3)
    for (const n of ns) assert.equal((await fetch(`${n.url}/healthz`)).status, 200)
  })

  h.test('client broadcasts reach every node once, in order; self and ack as on one node', async () => {
    const sender = (await on(0, h.srv.anonKey)).channel('cl-room', { config: { broadcast: { self: true, ack: true } } })
    const quiet = (await on(0, h.srv.anonKey)).channel('cl-room')
    const r2 = (await on(1, h.srv.anonKey)).channel('cl-room')
    const r3 = (await on(2, h.srv.anonKey)).channel('cl-room')
    const probes = [r2, r3].map((c) => collectBroadcasts(c, 'probe'))
    const got = [sender, quiet, r2, r3].map((c, i) => collectBroadcasts(c, 'n', `n on client ${i}`))
    const quietProbes = collectBroadcasts(quiet, 'probe')
    await Promise.all([sender, quiet, r2, r3].map((c) => subscribed(c)))
    await crossed(sender, [...probes, quietProbes])

    const ends = [sender, quiet, r2, r3].map((c) => collectBroadcasts(c, 'end'))
    const count = 50
    for (let i = 0; i < count; i++) {
      assert.equal(await sender.send({ type: 'broadcast', event: 'n', payload: { i } }), 'ok')
    }
    // The end marker follows them from the same sender: a duplicate would precede it.
    assert.equal(await sender.send({ type: 'broadcast', event: 'end', payload: {} }), 'ok')
    for (const e of ends) await e.waitFor()
    for (const c of got) {
      assert.deepEqual(c.items.map((m) => m.payload.i), [...Array(count).keys()], `${c.name}: once each, in order`)
    }
  })

  h.test('a REST broadcast through one node reaches clients of the others', async () => {
    const a = (await on(0, h.srv.anonKey)).channel('cl-rest')
    const c = (await on(2, h.srv.anonKey)).channel('cl-rest')
    const ga = collectBroadcasts(a, 'r')
    const gc = collectBroadcasts(c, 'r')
    await Promise.all([subscribed(a), subscribed(c)])
    const post = () =>
      fetch(`${nodes()[1].httpUrl}/realtime/v1/api/broadcast`, {
        method: 'POST',
        headers: { apikey: h.srv.serviceKey, Authorization: `Bearer ${h.srv.serviceKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ messages: [{ topic: 'cl-rest', event: 'r', payload: { from: 'node-2' } }] }),
      })
    for (let i = 0; i < 200 && (ga.items.length === 0 || gc.items.length === 0); i++) {
      assert.equal((await post()).status, 202)
      await sleep(50)
    }
    assert.deepEqual((await ga.waitFor()).payload, { from: 'node-2' })
    assert.deepEqual((await gc.waitFor()).payload, { from: 'node-2' })
  })

  h.test('database broadcasts reach private subscribers on every node once, in commit order', async () => {
    const chans = []
    for (let i = 0; i < 3; i++) {
      chans.push((await on(i, h.srv.serviceKey)).channel('cl-db', { config: { private: true } }))
    }
    const got = chans.map((c, i) => collectBroadcasts(c, 'db', `db on node ${i + 1}`))
    await Promise.all(chans.map((c) => subscribed(c)))
    const ends = chans.map((c) => collectBroadcasts(c, 'end'))
    for (let i = 0; i < 10; i++) await h.sql(`SELECT realtime.send($1::jsonb, 'db', 'cl-db', true)`, [JSON.stringify({ i })])
    // Committed last: a duplicate of an earlier one would be delivered before it.
    await h.sql(`SELECT realtime.send('{}'::jsonb, 'end', 'cl-db', true)`)
    for (const e of ends) await e.waitFor(undefined, 15000)
    for (const c of got) {
      assert.deepEqual(c.items.map((m) => m.payload.i), [...Array(10).keys()], `${c.name}: once each, in order`)
    }
  })

  h.test('SSE resume on another node: curl resumes with Last-Event-ID on node-3 from a stream of node-1, exactly the rows missed, in order', async () => {
    // The nodes share the slot and hand its changes on (docs/cluster.md "Change hand-off"),
    // so every node's replay window holds the same changes under the same cursors.
    await h.sql('DROP TABLE IF EXISTS public.cl_sse')
    await createPublishedTable(h.srv, 'cl_sse', 'CREATE TABLE public.cl_sse (id bigint PRIMARY KEY, v text)')
    await waitPublished({ ...h.srv, httpUrl: nodes()[2].httpUrl }, 'cl_sse')
    const url = (i) => `${nodes()[i].httpUrl}/realtime/v1/sse?${new URLSearchParams({ apikey: h.srv.serviceKey, schema: 'public', table: 'cl_sse' })}`
    const ready = (s) => s.waitEvent((e) => e.event === 'system' && e.json?.message === 'Subscribed to PostgreSQL')
    const s1 = sse.curl(url(0))
    await ready(s1)
    await h.sql(`INSERT INTO cl_sse VALUES (1, 'a')`)
    await h.sql(`INSERT INTO cl_sse VALUES (2, 'b')`)
    const seen = await s1.waitNamed('postgres_changes', 2)
    const last = seen[1].id
    await s1.close()

    await h.sql(`INSERT INTO cl_sse VALUES (3, 'c')`)
    await h.sql(`UPDATE cl_sse SET v = 'a2' WHERE id = 1`)
    await h.sql(`BEGIN; INSERT INTO cl_sse VALUES (4, 'd'); DELETE FROM cl_sse WHERE id = 2; COMMIT`)

    const s3 = sse.curl(url(2), { headers: { 'Last-Event-ID': last } })
    await s3.waitNamed('postgres_changes', 4)
    await h.sql(`INSERT INTO cl_sse VALUES (5, 'live')`)
    await s3.waitEvent((e) => e.json?.record?.id === 5)
    const got = s3.named('postgres_changes').map((e) => [e.json.type, e.json.record?.id ?? e.json.old_record.id])
    assert.deepEqual(got, [['INSERT', 3], ['UPDATE', 1], ['INSERT', 4], ['DELETE', 2], ['INSERT', 5]])
    assert.ok(!s3.events.some((e) => e.event === 'system' && e.json?.status === 'error'), safeJson(s3.events))
  })

  h.test('presence is cluster-wide: every client sees every node\'s members; a leave reaches all', async () => {
    const chans = []
    for (let i = 0; i < 3; i++) {
      const ch = (await on(i, h.srv.anonKey)).channel('cl-lobby', { config: { presence: { key: `member-${i + 1}` } } })
      ch.on('presence', { event: 'sync' }, () => {}) // asks for presence events at join
      await subscribed(ch)
      assert.equal(await ch.track({ node: i + 1 }), 'ok')
      chans.push(ch)
    }
    const keys = (ch) => Object.keys(ch.presenceState()).sort().join(',')
    for (const ch of chans) {
      await waitFor(() => keys(ch) === 'member-1,member-2,member-3', {
        timeout: 15000,
        message: () => `presence at ${ch.topic}: ${safeJson(ch.presenceState())}`,
      })
    }
    assert.deepEqual(chans[0].presenceState()['member-3'].map((m) => m.node), [3])
    assert.equal(await chans[2].untrack(), 'ok')
    for (const ch of chans.slice(0, 2)) {
      await waitFor(() => keys(ch) === 'member-1,member-2', {
        timeout: 15000,
        message: () => `presence after the untrack: ${safeJson(ch.presenceState())}`,
      })
    }
  })

  h.test('a user without read permission cannot join a private channel on any node', async () => {
    for (let i = 0; i < 3; i++) {
      const ch = (await on(i, h.srv.userKey)).channel('cl-no-policy', { config: { private: true } })
      await assert.rejects(subscribed(ch), /do not have permissions to read/)
    }
  })

  h.test('the inspector page of a node shows its name, all three nodes, their clients, the slot holder, and a channel on other nodes', async () => {
    // One subscriber of the channel on node-2 (so it is in node-2's list), two on node-1.
    const here = (await on(1, h.srv.anonKey)).channel('cl-insp')
    await subscribed(here)
    for (let i = 0; i < 2; i++) await subscribed((await on(0, h.srv.anonKey)).channel('cl-insp'))
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
      headless: true,
    })
    try {
      const page = await browser.newPage()
      const problems = []
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
      await page.goto(`${h.srv.info.nodes[1].url}/admin/`)
      // A service_role key is accepted instead of the admin token.
      await page.locator('#token').fill(h.srv.serviceKey)
      await page.locator('#login-submit').click()
      await page.locator('#login').waitFor({ state: 'hidden', timeout: 15000 })
      const want = '3: node-2 (this), node-1, node-3'
      await waitFor(async () => (await page.locator('#cl-nodes').textContent()) === want, {
        timeout: 15000,
        interval: 100,
        message: `the cluster strip never listed "${want}"`,
      })
      assert.equal(await page.locator('#cl-node').textContent(), 'node-2')
      assert.match(await page.locator('#cl-mode').textContent(), /^embedded · NATS connected · routes to node-1, node-3$/)
      await page.locator('#cl-dot[data-ok="true"]').waitFor({ timeout: 15000 })
      // Each node's clients and slot, from the heartbeat reports (docs/cluster.md "Inspector").
      await waitFor(async () => /^node-2 [1-9]\d* · node-1 [2-9]\d* · node-3 \d+$/.test(await page.locator('#cl-clients').textContent()), {
        timeout: 15000,
        interval: 100,
        message: 'the cluster strip never showed the nodes\' clients',
      })
      // The nodes share one slot (the change hand-off, a cluster's default): exactly one holds it.
      await waitFor(async () => /^node-[123] holds supabase_realtime_slot$/.test(await page.locator('#cl-slots').textContent()), {
        timeout: 15000,
        interval: 100,
        message: 'the cluster strip never showed one node holding the shared slot',
      })
      // The channel's subscribers on node-1, in node-2's channel view.
      await page.locator('#channel-list li[data-topic="realtime:cl-insp"] button').click()
      await waitFor(async () => (await page.locator('#cv-nodes-body tr', { hasText: 'node-1' }).count()) === 2, {
        timeout: 15000,
        interval: 100,
        message: 'the channel view never listed the two subscribers on node-1',
      })
      assert.equal(await page.locator('#subs-body tr').count(), 1)
      assert.deepEqual(problems, [])
    } finally {
      await browser.close()
    }
  })
})
