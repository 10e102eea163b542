// The inspector (/admin/) of a service running several projects, in real headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core): the project picker lists the default
// project and those of the --projects file, picking one shows that project's channels (joined by a
// supabase-js client through http://<ref>.localhost) and not the other's, the overview table lists
// every project, and the live charts are drawn as inline SVG with no external request.

import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import dns from 'node:dns'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe } from 'node:test'
import { chromium } from 'playwright-core'
import WebSocket from 'ws'
import { subscribed } from '../lib/client.mjs'
import { useServer } from '../lib/harness.mjs'
import { anonKey } from '../lib/tokens.mjs'

const TOKEN = `admin-${randomUUID()}`
const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run']
const UI_TIMEOUT = 15000
const secret = randomBytes(32).toString('hex')
const dir = mkdtempSync(path.join(os.tmpdir(), 'admin-projects-'))
const file = path.join(dir, 'projects.yaml')
writeFileSync(file, `projects:\n  - ref: teal\n    jwt_secret: \${E2E_SECRET_TEAL}\n`)

/** Resolves *.localhost to loopback, as browsers do (RFC 6761). */
function localhostLookup(hostname, opts, cb) {
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) {
    if (opts?.all) return cb(null, [{ address: '127.0.0.1', family: 4 }])
    return cb(null, '127.0.0.1', 4)
  }
  return dns.lookup(hostname, opts, cb)
}

class LocalhostWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { lookup: localhostLookup })
  }
}

describe('inspector with several projects in headless Chromium', () => {
  const h = useServer({ extraArgs: ['--projects', file, '--admin-token', TOKEN], env: { E2E_SECRET_TEAL: secret } })
  let browser

  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
  })
  after(async () => {
    await browser?.close()
  })

  h.test('project picker shows the picked project channels, overview and charts', async () => {
    const teal = { httpUrl: `http://teal.localhost:${h.srv.port}`, anonKey: anonKey(secret), ref: 'teal' }
    const inTeal = h.client({ server: teal, key: teal.anonKey, realtime: { transport: LocalhostWebSocket } }).channel('teal-room')
    const inDefault = h.client().channel('default-room')
    await Promise.all([subscribed(inTeal), subscribed(inDefault)])

    const page = await browser.newPage({ viewport: { width: 1440, height: 960 } })
    const problems = []
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console: ${msg.text()}`)
    })
    page.on('request', (req) => {
      if (!req.url().startsWith(h.srv.httpUrl)) problems.push(`external request: ${req.url()}`)
    })
    await page.goto(`${h.srv.httpUrl}/admin/`)
    await page.locator('#token').fill(TOKEN)
    await page.locator('#login-submit').click()

    const picker = page.locator('#project-picker')
    await picker.waitFor({ state: 'visible', timeout: UI_TIMEOUT })
    const options = await picker.locator('option').evaluateAll((os) => os.map((o) => o.value))
    assert.deepEqual(options.sort(), ['realtime-dev', 'teal'])
    // The default project first: its channel, not teal's.
    await page.locator('#channel-list', { hasText: 'default-room' }).waitFor({ timeout: UI_TIMEOUT })
    assert.equal(await page.locator('#channel-list', { hasText: 'teal-room' }).count(), 0)

    await picker.selectOption('teal')
    await page.locator('#channel-list', { hasText: 'teal-room' }).waitFor({ timeout: UI_TIMEOUT })
    assert.equal(await page.locator('#channel-list', { hasText: 'default-room' }).count(), 0)

    // The overview lists both projects with their clients; the charts are inline SVG.
    await page.locator('#projects-body tr[data-ref="teal"]').waitFor({ timeout: UI_TIMEOUT })
    assert.equal(await page.locator('#projects-body tr').count(), 2)
    await page.waitForFunction(() => document.querySelectorAll('#charts svg polyline').length === 4, null, { timeout: UI_TIMEOUT })
    assert.deepEqual(problems, [])
    await page.close()
  })
})
