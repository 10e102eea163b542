// Realtime inspector page: polls the admin API for counts, streams the live
// tail over fetch (so the token travels in a header, never in a URL), and
// updates the DOM in place. No framework, no build step, no external asset.
'use strict'

const API = '/admin/api'
const POLL_MS = 1000
const TAIL_MAX = 300
const TOKEN_KEY = 'realtime-admin-token'

const REASONS = {
  filter_mismatch: 'The row did not match the binding filter.',
  rls_denied: "Row level security hid the row from this subscriber's role and claims (check the table's SELECT policy).",
  column_privilege: 'The role may not SELECT a key column of the table.',
  payload_too_large: 'The change was larger than the record size limit.',
  rate_limit: 'A rate limit dropped the message.',
  slow_consumer: "The subscriber's outgoing queue was full.",
  encoding: "The message cannot be framed for the subscriber's protocol version (binary payload to a vsn 1.0.0 client).",
  fanout_budget: "The subscriber's filters used up their time budget for the change batch (--fanout-class-budget); the rest of the batch was skipped for it.",
}

const $ = (id) => document.getElementById(id)

const state = {
  token: null,
  project: null, // ref picked in the project picker (projects.js); null: the page's own project
  selected: null, // { topic, name, private } or null for "all channels"
  channels: [],
  lastTotals: null,
  lastReplication: null,
  polling: false,
  timer: null,
  tick: 0,
  tail: { ctrl: null, paused: false, count: 0, pending: [] },
}

class AuthError extends Error {}

// h builds an element: h('div', {class: 'x', title: 'y'}, child, 'text').
function h(tag, props, ...kids) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'class') el.className = v
    else if (k === 'dataset') Object.assign(el.dataset, v)
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else el.setAttribute(k, v === true ? '' : v)
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)))
  }
  return el
}

// setText updates an element's text and flashes it when a shown value changed.
function setText(el, value) {
  const s = String(value)
  if (el.textContent === s) return
  const had = el.textContent !== '' && el.textContent !== '–'
  el.textContent = s
  if (had) {
    el.classList.remove('flash')
    void el.offsetWidth // restart the animation
    el.classList.add('flash')
  }
}

const nf = new Intl.NumberFormat()
const fmtNum = (n) => nf.format(n)

function fmtBytes(n) {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`
}

function fmtAgo(iso) {
  if (!iso) return '–'
  const t = Date.parse(iso)
  if (!Number.isFinite(t) || t <= 0) return '–'
  const s = Math.max(0, (Date.now() - t) / 1000)
  if (s < 1) return 'just now'
  if (s < 60) return `${Math.floor(s)}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ago`
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`
  return `${Math.floor(s / 86400)}d ago`
}

function fmtSeconds(s) {
  if (!s) return '0 s'
  if (s < 1) return `${Math.round(s * 1000)} ms`
  if (s < 120) return `${s.toFixed(1)} s`
  return `${Math.round(s / 60)} min`
}

function fmtClock(iso) {
  const d = new Date(iso)
  const p = (n, w = 2) => String(n).padStart(w, '0')
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`
}

// ---- API ----

function authHeaders(extra = {}) {
  const h = { Authorization: `Bearer ${state.token}`, ...extra }
  if (state.project) h['X-Project-Ref'] = state.project
  return h
}

async function api(path, opts = {}) {
  const headers = authHeaders(opts.body ? { 'Content-Type': 'application/json' } : {})
  const res = await fetch(API + path, { ...opts, headers, cache: 'no-store' })
  const body = await res.json().catch(() => null)
  if (res.status === 401) {
    throw new AuthError((body && body.error) || 'unauthorized')
  }
  if (!res.ok) {
    const err = new Error((body && body.error) || `HTTP ${res.status}`)
    err.status = res.status
    throw err
  }
  return body
}

function setConnState(s, text) {
  const el = $('conn-state')
  el.dataset.state = s
  el.textContent = text
}

// ---- login ----

function showLogin(message) {
  stopPolling()
  stopTail()
  $('login').hidden = false
  $('signout').hidden = true
  const err = $('login-error')
  err.hidden = !message
  err.textContent = message || ''
  setConnState('idle', 'signed out')
  setTimeout(() => $('token').focus(), 0)
}

function signOut(message) {
  state.token = null
  sessionStorage.removeItem(TOKEN_KEY)
  localStorage.removeItem(TOKEN_KEY)
  showLogin(message)
}

async function login(token, remember) {
  state.token = token
  try {
    await api('/channels')
  } catch (err) {
    state.token = null
    if (err instanceof AuthError) showLogin(`Not accepted: ${err.message}`)
    else showLogin(`Could not reach the API: ${err.message}`)
    return
  }
  ;(remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token)
  $('login').hidden = true
  $('signout').hidden = false
  $('token').value = ''
  startPolling()
  startTail()
  projectsStart()
}

// ---- polling ----

function startPolling() {
  stopPolling()
  state.tick = 0
  poll()
  state.timer = setInterval(poll, POLL_MS)
}

function stopPolling() {
  if (state.timer) clearInterval(state.timer)
  state.timer = null
}

async function poll() {
  if (state.polling || !state.token) return
  state.polling = true
  try {
    const jobs = [api('/channels').then(renderChannels)]
    if (state.selected) jobs.push(refreshChannel())
    if (state.tick % 2 === 0) jobs.push(api('/replication').then(renderReplication))
    if (state.tick % 2 === 0) jobs.push(api('/cluster').then(renderCluster))
    jobs.push(projectsPoll())
    await Promise.all(jobs)
    setConnState('ok', 'live')
  } catch (err) {
    if (err instanceof AuthError) {
      signOut(`Signed out: ${err.message}`)
    } else {
      setConnState('error', 'unreachable')
    }
  } finally {
    state.tick++
    state.polling = false
  }
}

// ---- channel list ----

const channelKey = (t) => `${t.private ? 'private' : 'public'}|${t.topic}`
const displayName = (t) => t.name || t.topic

function renderChannels(list) {
  state.channels = list.channels
  renderTiles(list)
  const ul = $('channel-list')
  const filter = $('filter').value.trim().toLowerCase()
  const shown = list.channels.filter((t) => !filter || t.topic.toLowerCase().includes(filter))
  const existing = new Map([...ul.children].map((li) => [li.dataset.key, li]))
  const keep = new Set()
  let prev = null
  for (const t of shown) {
    const key = channelKey(t)
    keep.add(key)
    let li = existing.get(key)
    if (!li) {
      li = buildChannelItem(t)
    }
    updateChannelItem(li, t)
    if (prev ? prev.nextSibling !== li : ul.firstChild !== li) {
      if (prev) prev.after(li)
      else ul.prepend(li)
    }
    prev = li
  }
  for (const [key, li] of existing) if (!keep.has(key)) li.remove()
  $('channels-empty').hidden = list.channels.length > 0
}

function buildChannelItem(t) {
  const li = h('li', { dataset: { key: channelKey(t), topic: t.topic, private: String(t.private) } })
  const btn = h(
    'button',
    { type: 'button', class: 'channel', onclick: () => selectChannel({ topic: t.topic, name: displayName(t), private: t.private }) },
    h(
      'span',
      { class: 'ch-row' },
      h('span', { class: 'ch-name', title: t.topic }, displayName(t)),
      t.private ? h('span', { class: 'pill private' }, 'private') : null,
      h('span', { class: 'pill pg', 'data-role': 'pg', hidden: true }, 'db'),
      h('span', { class: 'ch-count', title: 'subscribers', 'data-role': 'subs' }, '0')
    ),
    h(
      'span',
      { class: 'ch-meta' },
      h('span', {}, '↓ ', h('span', { 'data-role': 'in' }, '0'), ' in'),
      h('span', {}, '↑ ', h('span', { 'data-role': 'out' }, '0'), ' out'),
      h('span', { 'data-role': 'presence-wrap' }, '◉ ', h('span', { 'data-role': 'presence' }, '0')),
      h('span', { 'data-role': 'active' }, '')
    )
  )
  li.append(btn)
  return li
}

function updateChannelItem(li, t) {
  const q = (role) => li.querySelector(`[data-role="${role}"]`)
  setText(q('subs'), fmtNum(t.subscribers))
  setText(q('in'), fmtNum(t.messages_in))
  setText(q('out'), fmtNum(t.messages_out))
  setText(q('presence'), fmtNum(t.presence))
  q('presence-wrap').hidden = t.presence === 0
  q('active').textContent = fmtAgo(t.last_activity)
  const pg = q('pg')
  pg.hidden = !(t.postgres_changes && t.postgres_changes.length)
  pg.title = (t.postgres_changes || []).map(bindingText).join('\n')
  const sel = state.selected && state.selected.topic === t.topic && state.selected.private === t.private
  li.querySelector('button').setAttribute('aria-current', sel ? 'true' : 'false')
}

function renderTiles(list) {
  const tot = list.totals
  setText($('t-channels'), fmtNum(tot.channels))
  setText($('t-subscribers'), fmtNum(tot.subscribers))
  const now = Date.parse(list.time)
  const last = state.lastTotals
  if (last && now > last.time) {
    const dt = (now - last.time) / 1000
    const rate = (a, b) => Math.max(0, (a - b) / dt)
    setText($('t-in'), fmtRate(rate(tot.messages_in, last.messages_in)))
    setText($('t-out'), fmtRate(rate(tot.messages_out, last.messages_out)))
  }
  state.lastTotals = { ...tot, time: now }
}

const fmtRate = (r) => (r >= 100 ? fmtNum(Math.round(r)) : r.toFixed(r >= 10 || r === 0 ? 0 : 1))

function bindingText(b) {
  return `${b.event} ${b.schema}.${b.table}${b.filter ? ` where ${b.filter}` : ''}`
}

// ---- channel view ----

function selectChannel(sel) {
  state.selected = sel
  const hash = sel ? `#/channel/${sel.private ? 'private' : 'public'}/${encodeURIComponent(sel.topic)}` : '#/'
  if (location.hash !== hash) history.replaceState(null, '', hash)
  $('all-channels').setAttribute('aria-current', sel ? 'false' : 'true')
  for (const li of $('channel-list').children) {
    const on = sel && li.dataset.topic === sel.topic && li.dataset.private === String(sel.private)
    li.querySelector('button').setAttribute('aria-current', on ? 'true' : 'false')
  }
  $('overview').hidden = !!sel
  $('channel-view').hidden = !sel
  $('subs-body').replaceChildren()
  $('hints').replaceChildren()
  $('send-result').textContent = ''
  if (sel) {
    $('cv-name').textContent = sel.name
    $('cv-badges').replaceChildren(h('span', { class: `pill ${sel.private ? 'private' : 'public'}` }, sel.private ? 'private' : 'public'))
    $('send-private').checked = sel.private
    for (const id of ['cv-subs', 'cv-presence', 'cv-in', 'cv-out']) $(id).textContent = '0'
    $('cv-active').textContent = '–'
    refreshChannel().catch(() => {})
  }
  clearTail()
  startTail()
}

async function refreshChannel() {
  const sel = state.selected
  if (!sel) return
  let detail
  try {
    detail = await api(`/channels/${encodeURIComponent(sel.topic)}`)
  } catch (err) {
    if (err.status === 404) {
      if (state.selected === sel) markGone(true)
      return
    }
    throw err
  }
  if (state.selected !== sel) return
  markGone(false)
  renderChannelDetail(sel, detail)
}

function markGone(gone) {
  $('cv-gone').hidden = !gone
  if (gone) {
    setText($('cv-subs'), '0')
    $('subs-body').replaceChildren()
    $('subs-empty').hidden = false
    $('cv-nodes-wrap').hidden = true
  }
}

function renderChannelDetail(sel, d) {
  // On a cluster the channel may have subscribers on other nodes only.
  const t = d.channels.find((c) => c.private === sel.private) || d.channels[0] || { subscribers: 0, presence: 0, messages_in: 0, messages_out: 0 }
  renderPeerSubscribers(d.nodes)
  setText($('cv-subs'), fmtNum(t.subscribers))
  setText($('cv-presence'), fmtNum(t.presence))
  setText($('cv-in'), fmtNum(t.messages_in))
  setText($('cv-out'), fmtNum(t.messages_out))
  $('cv-active').textContent = fmtAgo(t.last_activity)

  const bindings = t.postgres_changes || []
  const bkey = JSON.stringify(bindings)
  const bel = $('cv-bindings')
  if (bel.dataset.key !== bkey) {
    bel.dataset.key = bkey
    bel.replaceChildren(
      ...bindings.map((b) =>
        h(
          'span',
          { class: 'binding', title: `binding id ${b.id}` },
          h('b', {}, b.event),
          ` ${b.schema}.${b.table}`,
          b.filter ? h('span', { class: 'filter' }, `  ${b.filter}`) : null,
          b.select && b.select.length ? h('span', { class: 'muted' }, `  select ${b.select.join(', ')}`) : null
        )
      )
    )
  }

  const subs = d.subscribers
  const body = $('subs-body')
  const rows = new Map([...body.children].map((tr) => [tr.dataset.id, tr]))
  const keep = new Set()
  let prev = null
  for (const s of subs) {
    const id = String(s.id)
    keep.add(id)
    let tr = rows.get(id)
    if (!tr) tr = buildSubRow(s)
    updateSubRow(tr, s)
    if (prev ? prev.nextSibling !== tr : body.firstChild !== tr) {
      if (prev) prev.after(tr)
      else body.prepend(tr)
    }
    prev = tr
  }
  for (const [id, tr] of rows) if (!keep.has(id)) tr.remove()
  $('subs-empty').hidden = subs.length > 0
  renderHints(subs)
}

// renderPeerSubscribers lists the channel's subscribers on the other nodes
// of a cluster (the "nodes" of GET /admin/api/channels/<name>): one row
// per subscriber, or per node when it has none or its answer failed.
function renderPeerSubscribers(nodes) {
  const wrap = $('cv-nodes-wrap')
  wrap.hidden = !nodes || nodes.length === 0
  if (wrap.hidden) return
  const rows = []
  for (const n of nodes) {
    const name = h('td', { class: 'mono', title: n.origin }, n.node)
    if (n.error || !n.subscribers.length) {
      rows.push(h('tr', {}, name, h('td', { colspan: 7, class: 'muted' }, n.error || 'no subscribers')))
      continue
    }
    for (const s of n.subscribers) {
      rows.push(
        h(
          'tr',
          {},
          h('td', { class: 'mono', title: n.origin }, n.node),
          h('td', { class: 'mono' }, `#${s.id}`),
          h('td', {}, s.transport || '–'),
          h('td', { class: 'mono' }, s.remote_addr || '–'),
          h('td', {}, s.role || '–', h('div', { class: 'small mono', title: s.sub || '' }, s.sub ? shortId(s.sub) : '')),
          h('td', { title: s.connected_since || '' }, fmtAgo(s.connected_since)),
          h('td', { class: 'num' }, fmtBytes(s.queued_bytes)),
          h('td', { class: 'num' }, fmtNum(s.messages_sent))
        )
      )
    }
    if (n.subscriber_count > n.subscribers.length) {
      rows.push(h('tr', {}, h('td', { class: 'mono' }, n.node), h('td', { colspan: 7, class: 'muted' }, `and ${fmtNum(n.subscriber_count - n.subscribers.length)} more`)))
    }
  }
  $('cv-nodes-body').replaceChildren(...rows)
}

function buildSubRow(s) {
  const td = (role, cls, ...kids) => h('td', { class: cls, 'data-role': role }, ...kids)
  const tr = h(
    'tr',
    { dataset: { id: String(s.id) } },
    td('id', 'mono', h('span', { class: 'sub-id' }, `#${s.id}`), h('div', { class: 'small' }, `conn ${s.conn_id}`)),
    td('transport', '', s.transport || '–', h('div', { class: 'small' }, s.protocol_version ? `vsn ${s.protocol_version}` : '')),
    td('client', 'mono', s.remote_addr || '–'),
    td('who', '', h('span', { 'data-role': 'role' }, ''), h('div', { class: 'small mono', 'data-role': 'sub' }, ''), h('div', { class: 'perms', 'data-role': 'perms' })),
    td('since', '', ''),
    td('queued', 'num', ''),
    td('sent', 'num', ''),
    td('notsent', '', h('div', { class: 'reasons' })),
    td(
      'actions',
      '',
      h('button', { type: 'button', class: 'danger', title: 'Close this connection', onclick: (e) => disconnect(e.currentTarget, s.id) }, 'Disconnect')
    )
  )
  return tr
}

function updateSubRow(tr, s) {
  const q = (role) => tr.querySelector(`[data-role="${role}"]`)
  q('role').textContent = s.role || '–'
  q('sub').textContent = s.sub ? shortId(s.sub) : ''
  q('sub').title = s.sub || ''
  q('since').textContent = fmtAgo(s.connected_since)
  q('since').title = s.connected_since || ''
  renderPerms(q('perms'), s.permissions)
  setText(q('queued'), fmtBytes(s.queued_bytes))
  setText(q('sent'), fmtNum(s.messages_sent))
  const ns = s.messages_not_sent || {}
  const key = JSON.stringify(ns)
  const cell = q('notsent')
  if (cell.dataset.key !== key) {
    const first = cell.dataset.key === undefined
    cell.dataset.key = key
    const chips = Object.entries(ns)
      .filter(([, n]) => n > 0)
      .map(([r, n]) => h('span', { class: `reason ${r}`, title: REASONS[r] || r, 'data-reason': r }, `${r.replace(/_/g, ' ')} `, h('b', {}, fmtNum(n))))
    const wrap = h('div', { class: 'reasons' }, chips.length ? chips : h('span', { class: 'none' }, '—'))
    cell.replaceChildren(wrap)
    if (!first) {
      wrap.classList.add('flash')
    }
  }
}

const PERMS = [
  ['broadcast_read', 'broadcast read'],
  ['broadcast_write', 'broadcast write'],
  ['presence_read', 'presence read'],
  ['presence_write', 'presence write'],
]
const PERM_MARK = { granted: '✓', denied: '✗', unknown: '?' }

// Private channels: one chip per permission (granted, denied, not probed yet), why in the title.
function renderPerms(cell, p) {
  const key = JSON.stringify(p || null)
  if (cell.dataset.key === key) return
  cell.dataset.key = key
  if (!p) {
    cell.replaceChildren()
    return
  }
  const why = p.why || {}
  cell.replaceChildren(
    ...PERMS.map(([k, label]) =>
      h('span', { class: `perm ${p[k]}`, title: why[k] || `${label}: ${p[k]}`, dataset: { perm: k, state: p[k] } }, `${label} ${PERM_MARK[p[k]] || p[k]}`)
    )
  )
}

const shortId = (s) => (s.length > 14 ? `${s.slice(0, 8)}…${s.slice(-4)}` : s)

function renderHints(subs) {
  const hints = []
  for (const s of subs) {
    const ns = s.messages_not_sent || {}
    if (ns.rls_denied > 0) {
      hints.push(
        `#${s.id} (${s.role || 'no role'}${s.sub ? ` ${shortId(s.sub)}` : ''}) had ${fmtNum(ns.rls_denied)} change(s) hidden by row level security: ` +
          'the SELECT policy did not return those rows for its claims. That is the usual reason for "RLS is on and I receive nothing".'
      )
    }
    if (ns.column_privilege > 0) {
      hints.push(`#${s.id} (${s.role || 'no role'}) may not read a key column of the table, so ${fmtNum(ns.column_privilege)} change(s) were withheld. GRANT SELECT on the key columns.`)
    }
    const p = s.permissions
    if (p && p.failure) {
      hints.push(`#${s.id} (${s.role || 'no role'}): a policy probe on realtime.messages failed: ${p.failure}`)
    }
    if (p && p.why) {
      for (const [k, label] of PERMS) {
        if (p[k] === 'denied' && p.why[k]) hints.push(`#${s.id} ${label} denied: ${p.why[k]}.`)
      }
    }
    if (ns.slow_consumer > 0) {
      hints.push(`#${s.id} could not keep up and lost ${fmtNum(ns.slow_consumer)} message(s); its connection is closed as a slow consumer.`)
    }
  }
  const key = hints.join('\n')
  const el = $('hints')
  if (el.dataset.key === key) return
  el.dataset.key = key
  el.replaceChildren(...hints.map((t) => h('div', { class: 'hint' }, t)))
}

async function disconnect(btn, id) {
  if (!btn.classList.contains('armed')) {
    btn.classList.add('armed')
    btn.textContent = 'Confirm'
    setTimeout(() => {
      btn.classList.remove('armed')
      btn.textContent = 'Disconnect'
    }, 3000)
    return
  }
  btn.disabled = true
  try {
    await api(`/subscribers/${id}`, { method: 'DELETE' })
    btn.textContent = 'Closed'
  } catch (err) {
    btn.textContent = err.status === 404 ? 'Gone' : 'Failed'
    btn.title = err.message
  }
  refreshChannel().catch(() => {})
}

async function sendBroadcast(e) {
  e.preventDefault()
  const sel = state.selected
  if (!sel) return
  const out = $('send-result')
  let payload
  try {
    payload = JSON.parse($('send-payload').value || '{}')
  } catch (err) {
    out.textContent = `Payload is not JSON: ${err.message}`
    return
  }
  try {
    const r = await api(`/channels/${encodeURIComponent(sel.topic)}/broadcast`, {
      method: 'POST',
      body: JSON.stringify({ event: $('send-event').value, payload, private: $('send-private').checked }),
    })
    out.textContent = `Sent "${r.event}" to ${r.topic} at ${fmtClock(new Date().toISOString())}`
  } catch (err) {
    out.textContent = `Failed: ${err.message}`
  }
}

// ---- replication ----

function renderReplication(r) {
  state.lastReplication = r
  const dot = $('rep-dot')
  if (!r.enabled) {
    dot.dataset.ok = 'unknown'
    $('rep-kind').textContent = 'replication'
    $('rep-state').textContent = 'no database configured'
    for (const id of ['rep-slot', 'rep-received', 'rep-confirmed', 'rep-lag', 'rep-commit', 'rep-changes', 'rep-rls']) $(id).textContent = '–'
    $('t-lag').textContent = 'n/a'
    $('rep-error').hidden = true
    return
  }
  dot.dataset.ok = String(r.connected)
  $('rep-kind').textContent = r.kind
  $('rep-state').textContent = r.connected ? `streaming for ${fmtAgo(r.connected_since).replace(' ago', '').replace('just now', '<1s')}` : 'disconnected'
  $('rep-slot').textContent = r.slot ? `${r.slot} → ${r.publication}` : '–'
  setText($('rep-received'), r.received_position)
  setText($('rep-confirmed'), r.confirmed_position)
  setText($('rep-lag'), `${fmtBytes(r.lag_bytes)} · ${fmtSeconds(r.lag_seconds)}`)
  $('rep-commit').textContent = r.last_commit_time ? fmtAgo(r.last_commit_time) : 'none yet'
  $('rep-commit').title = r.last_fanout_seconds ? `newest batch reached subscribers ${fmtSeconds(r.last_fanout_seconds)} after commit` : ''
  setText($('rep-changes'), fmtNum(r.changes))
  renderRLS(r)
  setText($('t-lag'), r.connected ? fmtBytes(r.lag_bytes) : 'down')
  const err = $('rep-error')
  err.hidden = !r.last_error
  err.textContent = r.last_error ? `last error ${fmtAgo(r.last_error_time)}: ${r.last_error}` : ''
}

// ---- cluster ----

// renderCluster shows this node's name and what it knows of the cluster
// (GET /admin/api/cluster): "single node", or the mode, the NATS link and
// every node heard from in the last 3 s.
function renderCluster(c) {
  setText($('cl-node'), c.node || '–')
  const dot = $('cl-dot')
  const nodes = $('cl-nodes')
  if (c.mode === 'single') {
    dot.dataset.ok = 'unknown'
    $('cl-mode').textContent = 'single node'
    nodes.textContent = '1'
    nodes.title = ''
    $('cl-traffic-item').hidden = true
    $('cl-clients-item').hidden = true
    $('cl-slots-item').hidden = true
    return
  }
  dot.dataset.ok = String(c.connected)
  let mode = `${c.mode} · NATS ${c.connected ? 'connected' : 'disconnected'}`
  if (c.mode === 'embedded') mode += c.routed_to.length ? ` · routes to ${c.routed_to.join(', ')}` : ' · no routes'
  $('cl-mode').textContent = mode
  $('cl-mode').title = c.mode === 'embedded' ? `${fmtNum(c.routes)} route connections` : ''
  const names = c.nodes.map((n) => n.self ? `${n.name} (this)` : n.name)
  setText(nodes, `${c.nodes.length}: ${names.join(', ')}`)
  nodes.title = c.nodes.map((n) => n.self ? `${n.origin} (this node)` : `${n.origin} heard ${fmtSeconds(n.last_seen_age_seconds)} ago`).join('\n')
  const dropped = Object.values(c.dropped || {}).reduce((a, b) => a + b, 0)
  $('cl-traffic-item').hidden = false
  setText($('cl-traffic'), `out ${fmtNum(c.published)} · in ${fmtNum(c.received)} · dropped ${fmtNum(dropped)}`)
  renderClusterProjects(c.nodes)
}

// renderClusterProjects shows each node's clients (all projects) and the
// slots it holds, from the nodes' heartbeat reports; the titles break the
// clients down by project.
function renderClusterProjects(nodes) {
  const projects = (n) => n.projects || []
  const clients = nodes.map((n) => `${n.name} ${fmtNum(projects(n).reduce((a, p) => a + p.clients, 0))}`)
  $('cl-clients-item').hidden = false
  setText($('cl-clients'), clients.join(' · '))
  $('cl-clients').title = nodes
    .map((n) => `${n.name}: ` + (projects(n).length ? projects(n).map((p) => `${p.ref} ${p.clients}`).join(', ') : 'no clients'))
    .join('\n')
  const slots = []
  for (const n of nodes) for (const p of projects(n)) if (p.slot_holder) slots.push({ node: n.name, ref: p.ref, slot: p.slot })
  $('cl-slots-item').hidden = slots.length === 0
  setText($('cl-slots'), slots.map((s) => `${s.node} holds ${s.slot}`).join(' · '))
  $('cl-slots').title = slots.map((s) => `${s.ref}: ${s.slot} held by ${s.node}`).join('\n')
}

// renderRLS shows the row-check counters: groups judged in Go and in
// PostgreSQL, and with --rls-verify the re-checked groups and disagreements.
function renderRLS(r) {
  const el = $('rep-rls')
  const x = r.rls
  if (!x) {
    el.textContent = '–'
    return
  }
  let text = `compiled ${fmtNum(x.compiled_groups)} · sql ${fmtNum(x.sql_groups)}`
  if (x.verify_fraction > 0) text += ` · verified ${fmtNum(x.verified_groups)} · disagreements ${fmtNum(x.disagreements)}`
  if (x.live_reads > 0) text += ` · live reads ${fmtNum(x.live_reads)}`
  setText(el, text)
  el.dataset.disagree = String(x.disagreements > 0)
  el.title = `groups of a batch judged by compiled policies / by PostgreSQL; batches that waited for commit visibility: ${fmtNum(r.visibility_waits)}`
}

// ---- live tail ----

function stopTail() {
  const ctrl = state.tail.ctrl
  state.tail.ctrl = null
  if (ctrl) ctrl.abort()
  setTailState('off', 'off')
}

function setTailState(s, text) {
  const el = $('tail-state')
  el.dataset.state = s
  el.textContent = text
}

async function startTail() {
  stopTail()
  if (!state.token) return
  const ctrl = new AbortController()
  state.tail.ctrl = ctrl
  const sel = state.selected
  $('tail-scope').textContent = sel ? `· ${sel.name}` : '· all channels'
  const q = sel ? `?channel=${encodeURIComponent(sel.topic)}` : ''
  setTailState('connecting', 'connecting')
  try {
    const res = await fetch(`${API}/events${q}`, { headers: authHeaders(), signal: ctrl.signal, cache: 'no-store' })
    if (res.status === 401) {
      const body = await res.json().catch(() => ({}))
      signOut(`Signed out: ${body.error || 'unauthorized'}`)
      return
    }
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`)
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    let buf = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buf += value
      let i
      while ((i = buf.indexOf('\n\n')) >= 0) {
        handleSSE(buf.slice(0, i))
        buf = buf.slice(i + 2)
      }
    }
  } catch (err) {
    if (ctrl.signal.aborted) return
  }
  if (state.tail.ctrl !== ctrl) return
  setTailState('error', 'reconnecting')
  setTimeout(() => {
    if (state.tail.ctrl === ctrl) startTail()
  }, 2000)
}

function handleSSE(block) {
  let event = 'message'
  const data = []
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue
    const c = line.indexOf(':')
    const field = c < 0 ? line : line.slice(0, c)
    const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '')
    if (field === 'event') event = value
    else if (field === 'data') data.push(value)
  }
  if (!data.length) return
  let msg
  try {
    msg = JSON.parse(data.join('\n'))
  } catch {
    return
  }
  if (event === 'ready') setTailState(state.tail.paused ? 'paused' : 'live', state.tail.paused ? 'paused' : 'live')
  else if (event === 'fanout') addTailEvent(msg)
  else if (event === 'lost') addTailNote(`The tail fell behind: ${fmtNum(msg.lost)} event(s) skipped.`)
}

function addTailEvent(ev) {
  state.tail.count++
  $('tail-count').textContent = `${fmtNum(state.tail.count)} event${state.tail.count === 1 ? '' : 's'}`
  if (state.tail.paused) return
  const kind = ['broadcast', 'presence', 'postgres_changes'].includes(ev.kind) ? ev.kind : 'other'
  const li = h(
    'li',
    { class: 'new', dataset: { kind: ev.kind, event: ev.event, topic: ev.topic }, title: 'Click to expand the payload' },
    h('span', { class: 'time', title: ev.time }, fmtClock(ev.time)),
    h('span', { class: `kind ${kind}` }, ev.kind.replace('_', ' ')),
    h('span', { class: 'event', title: ev.event }, ev.event || '–', h('span', { class: 'topic' }, ev.topic)),
    h('span', { class: 'delivered', title: `queued to ${ev.delivered} subscriber(s), ${ev.bytes} bytes` }, `→ ${fmtNum(ev.delivered)} · ${fmtBytes(ev.bytes)}`),
    h('span', { class: 'payload' }, ev.payload || '')
  )
  li.addEventListener('click', () => li.classList.toggle('open'))
  prependTail(li)
}

function addTailNote(text) {
  prependTail(h('li', { class: 'lost' }, text))
}

function prependTail(li) {
  const list = $('tail-list')
  list.prepend(li)
  while (list.children.length > TAIL_MAX) list.lastChild.remove()
  $('tail-empty').hidden = true
}

function clearTail() {
  $('tail-list').replaceChildren()
  state.tail.count = 0
  $('tail-count').textContent = '0 events'
  $('tail-empty').hidden = false
}

// ---- boot ----

function parseHash() {
  const m = /^#\/channel\/(public|private)\/(.+)$/.exec(location.hash)
  if (!m) return null
  const topic = decodeURIComponent(m[2])
  return { topic, name: topic.replace(/^realtime:/, ''), private: m[1] === 'private' }
}

function boot() {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault()
    const token = $('token').value.trim()
    if (token) login(token, $('remember').checked)
  })
  $('signout').addEventListener('click', () => signOut())
  $('all-channels').addEventListener('click', () => selectChannel(null))
  $('filter').addEventListener('input', () => {
    if (state.channels.length) renderChannels({ channels: state.channels, totals: state.lastTotals || {}, time: new Date().toISOString() })
  })
  $('send-form').addEventListener('submit', sendBroadcast)
  $('tail-pause').addEventListener('click', () => {
    state.tail.paused = !state.tail.paused
    $('tail-pause').textContent = state.tail.paused ? 'Resume' : 'Pause'
    if (state.tail.ctrl) setTailState(state.tail.paused ? 'paused' : 'live', state.tail.paused ? 'paused' : 'live')
  })
  $('tail-clear').addEventListener('click', clearTail)

  const sel = parseHash()
  if (sel) {
    state.selected = sel
  }
  const saved = sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY)
  if (saved) {
    selectChannelQuiet(sel)
    login(saved, !!localStorage.getItem(TOKEN_KEY))
  } else {
    selectChannelQuiet(sel)
    showLogin()
  }
}

// selectChannelQuiet sets up the view for sel without starting requests.
function selectChannelQuiet(sel) {
  state.selected = sel
  $('all-channels').setAttribute('aria-current', sel ? 'false' : 'true')
  $('overview').hidden = !!sel
  $('channel-view').hidden = !sel
  if (sel) {
    $('cv-name').textContent = sel.name
    $('cv-badges').replaceChildren(h('span', { class: `pill ${sel.private ? 'private' : 'public'}` }, sel.private ? 'private' : 'public'))
    $('send-private').checked = sel.private
  }
  $('tail-scope').textContent = sel ? `· ${sel.name}` : '· all channels'
}

boot()
