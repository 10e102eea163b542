// The admin page (/admin/) in real headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core): it asks for the token, lists a channel that supabase-js clients joined, shows
// its subscribers with an RLS drop, streams a broadcast into the live tail, and saves a screenshot
// to e2e/artifacts/admin-inspector.png; on a private channel it shows each subscriber's permissions.

import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { after, before, describe } from 'node:test'
import { chromium } from 'playwright-core'
import { Collector, collectBroadcasts, subscribed } from '../lib/client.mjs'
import { useDevServer } from '../lib/dev.mjs'
import { waitFor } from '../lib/wait.mjs'

const TOKEN = `admin-${randomUUID()}`
const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
]
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url))
const UI_TIMEOUT = 15000

describe('admin page in headless Chromium', () => {
  const h = useDevServer({ extraArgs: ['--admin-token', TOKEN] })
  let browser

  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
  })

  after(async () => {
    await browser?.close()
  })

  h.test('token prompt, live channel list, subscribers with drop reasons, live tail, screenshot', async () => {
    // Three supabase-js clients on one channel: alice and bob (user2) listen to todos inserts,
    // an anonymous client listens to broadcasts.
    const alice = h.client()
    await alice.realtime.setAuth(h.srv.userKey)
    const bob = h.client()
    await bob.realtime.setAuth(h.srv.user2Key)
    const anon = h.client()
    const binding = { event: 'INSERT', schema: 'public', table: 'todos' }
    const aliceRows = new Collector('alice rows')
    const chAlice = alice
      .channel('lobby', { config: { presence: { key: 'alice' } } })
      .on('postgres_changes', binding, aliceRows.push)
      .on('presence', { event: 'sync' }, () => {})
    const chBob = bob.channel('lobby').on('postgres_changes', binding, () => {})
    const chAnon = anon.channel('lobby')
    const anonGot = collectBroadcasts(chAnon, 'chat')
    await Promise.all([subscribed(chAlice), subscribed(chBob), subscribed(chAnon)])
    await chAlice.track({ status: 'online' })

    const page = await browser.newPage({ viewport: { width: 1440, height: 960 } })
    const problems = []
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
    page.on('console', (msg) => {
      // The refused login attempt below logs its 401 response; anything else is a problem.
      if (msg.type() === 'error' && !/status of 401/.test(msg.text())) problems.push(`console: ${msg.text()}`)
    })
    page.on('requestfailed', (req) => {
      if (!req.url().includes('/admin/api/events')) problems.push(`request failed: ${req.url()}`)
    })
    page.on('request', (req) => {
      if (!req.url().startsWith(h.srv.httpUrl)) problems.push(`external request: ${req.url()}`)
    })

    await page.goto(`${h.srv.httpUrl}/admin/`)
    const login = page.locator('#login')
    await login.waitFor({ state: 'visible', timeout: UI_TIMEOUT })

    // A wrong token is refused in the form.
    await page.locator('#token').fill('not-the-token')
    await page.locator('#login-submit').click()
    await page.locator('#login-error').waitFor({ state: 'visible', timeout: UI_TIMEOUT })
    assert.match(await page.locator('#login-error').textContent(), /invalid admin token/)

    await page.locator('#token').fill(TOKEN)
    await page.locator('#login-submit').click()
    await login.waitFor({ state: 'hidden', timeout: UI_TIMEOUT })

    // The channel list shows the channel with live counts.
    const item = page.locator('#channel-list li[data-topic="realtime:lobby"]')
    await item.waitFor({ timeout: UI_TIMEOUT })
    await waitFor(async () => (await item.locator('[data-role="subs"]').textContent()) === '3', {
      timeout: UI_TIMEOUT,
      interval: 100,
      message: 'lobby never showed 3 subscribers in the list',
    })
    await item.locator('button').click()
    assert.equal(await page.locator('#cv-name').textContent(), 'lobby')
    await waitFor(async () => (await page.locator('#subs-body tr').count()) === 3, {
      timeout: UI_TIMEOUT,
      interval: 100,
      message: 'the subscriber table never had 3 rows',
    })
    await page.locator('#cv-bindings .binding').first().waitFor({ timeout: UI_TIMEOUT })
    assert.match(await page.locator('#cv-bindings').textContent(), /INSERT public\.todos/)
    await page.locator('#tail-state[data-state="live"]').waitFor({ timeout: UI_TIMEOUT })

    // A row owned by alice: alice receives it, bob's subscriber shows an RLS drop.
    const title = `buy milk ${randomUUID().slice(0, 8)}`
    await h.sql('INSERT INTO public.todos (user_id, title) VALUES ($1, $2)', [h.srv.userId, title])
    await aliceRows.waitFor((p) => p.new?.title === title, UI_TIMEOUT)
    const chip = page.locator('#subs-body [data-reason="rls_denied"]')
    await chip.waitFor({ timeout: UI_TIMEOUT })
    assert.match(await chip.textContent(), /rls denied\s*1/)
    const bobRow = page.locator('#subs-body tr', { has: page.locator('[data-reason="rls_denied"]') })
    assert.match(await bobRow.textContent(), /authenticated/)
    await page.locator('#hints .hint').first().waitFor({ timeout: UI_TIMEOUT })
    await page.locator('#tail-list li[data-kind="postgres_changes"]').first().waitFor({ timeout: UI_TIMEOUT })

    // A broadcast from supabase-js appears in the live tail.
    const text = 'hello from supabase-js'
    assert.equal(await chAlice.send({ type: 'broadcast', event: 'chat', payload: { text } }), 'ok')
    await anonGot.waitFor((m) => m.payload?.text === text)
    const row = page.locator('#tail-list li[data-event="chat"]')
    await row.waitFor({ timeout: UI_TIMEOUT })
    const rowText = await row.textContent()
    assert.match(rowText, /broadcast/)
    assert.match(rowText, new RegExp(text))
    assert.match(rowText, /→ 2/, 'queued to the two other subscribers')

    // The counters in the view follow without a reload.
    await waitFor(async () => Number((await page.locator('#cv-in').textContent()).replace(/\D/g, '')) >= 1, {
      timeout: UI_TIMEOUT,
      interval: 100,
      message: 'messages in never updated',
    })
    await page.locator('#rep-dot[data-ok="true"]').waitFor({ timeout: UI_TIMEOUT })
    // One node: the cluster strip says so (docs/inspector.md "Cluster").
    await waitFor(async () => (await page.locator('#cl-mode').textContent()) === 'single node', {
      timeout: UI_TIMEOUT,
      interval: 100,
      message: 'the cluster strip never said "single node"',
    })
    assert.equal(await page.locator('#cl-nodes').textContent(), '1')
    // The RLS row-check counters (alice's and bob's owner-only policy compiles).
    await waitFor(async () => /compiled [1-9]/.test(await page.locator('#rep-rls').textContent()), {
      timeout: UI_TIMEOUT,
      interval: 100,
      message: 'rls counters never shown',
    })

    mkdirSync(ARTIFACTS, { recursive: true })
    const shot = `${ARTIFACTS}admin-inspector.png`
    await page.screenshot({ path: shot, fullPage: true, animations: 'disabled' })
    await page.close()
    assert.deepEqual(problems, [], 'the page ran without errors or outside requests')
  })

  h.test('private channel: each subscriber shows its permissions and why one is denied', async () => {
    await h.sql(`DROP POLICY IF EXISTS "insp page read" ON realtime.messages`)
    await h.sql(`CREATE POLICY "insp page read" ON realtime.messages FOR SELECT TO authenticated USING (realtime.topic() = 'insp-page')`)
    const alice = h.client({ accessToken: async () => h.srv.userKey })
    await alice.realtime.setAuth(h.srv.userKey)
    const ch = alice.channel('insp-page', { config: { private: true } })
    await subscribed(ch)

    const page = await browser.newPage({ viewport: { width: 1440, height: 960 } })
    const problems = []
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
    await page.goto(`${h.srv.httpUrl}/admin/`)
    await page.locator('#token').fill(TOKEN)
    await page.locator('#login-submit').click()
    const item = page.locator('#channel-list li[data-topic="realtime:insp-page"][data-private="true"]')
    await item.waitFor({ timeout: UI_TIMEOUT })
    await item.locator('button').click()
    const read = page.locator('#subs-body [data-perm="broadcast_read"]')
    await read.waitFor({ timeout: UI_TIMEOUT })
    assert.equal(await read.getAttribute('data-state'), 'granted')
    const write = page.locator('#subs-body [data-perm="broadcast_write"]')
    assert.equal(await write.getAttribute('data-state'), 'unknown')
    assert.match(await write.getAttribute('title'), /not probed yet/)

    // The first broadcast probes the write permission: no INSERT policy, so denied, with why.
    assert.equal(await ch.send({ type: 'broadcast', event: 'chat', payload: { text: 'hi' } }), 'ok')
    await page.locator('#subs-body [data-perm="broadcast_write"][data-state="denied"]').waitFor({ timeout: UI_TIMEOUT })
    assert.match(await write.getAttribute('title'), /no INSERT policy on realtime\.messages admits role authenticated/)
    await waitFor(async () => /broadcast write denied/.test(await page.locator('#hints').textContent()), {
      timeout: UI_TIMEOUT,
      interval: 100,
      message: 'no hint about the denied broadcast write',
    })
    await page.close()
    assert.deepEqual(problems, [])
  })
})
