// Project picker, project overview and live charts of the inspector
// (docs/projects.md "Inspector"). Loaded before app.js, whose state,
// helpers and polling call projectsStart and projectsPoll.
'use strict'

const CHART_POINTS = 150 // 5 minutes at one sample every 2 s
const PROJECT_KEY = 'realtime-admin-project'

const projects = {
  list: [], // [{ref, state, connections, limit_hits, default}] or [] without --projects
  prev: new Map(), // ref -> {time, in, out} for rates
  history: [], // samples of the picked project: {in, out, lag, conns}
  tick: 0,
}

// projectFetch calls the admin API of ref (null: the page's own project).
async function projectFetch(ref, path) {
  const headers = { Authorization: `Bearer ${state.token}` }
  if (ref) headers['X-Project-Ref'] = ref
  const res = await fetch(API + path, { headers, cache: 'no-store' })
  if (!res.ok) throw new Error(`HTTP ${res.status}`)
  return res.json()
}

// projectsStart loads the project list and shows the picker when the
// service runs several projects.
async function projectsStart() {
  let list = []
  try {
    list = (await projectFetch(null, '/projects')).projects || []
  } catch {
    list = [] // no answer: no picker
  }
  projects.list = list
  const picker = $('project-picker')
  $('project-pick').hidden = list.length === 0
  $('projects-overview').hidden = list.length === 0
  if (list.length === 0) return
  const saved = sessionStorage.getItem(PROJECT_KEY)
  if (!state.project && saved && list.some((p) => p.ref === saved)) state.project = saved
  if (!state.project) state.project = (list.find((p) => p.default) || list[0]).ref
  picker.replaceChildren(...list.map((p) => h('option', { value: p.ref }, p.default ? `${p.ref} (default)` : p.ref)))
  picker.value = state.project
  if (!picker.dataset.bound) {
    picker.dataset.bound = '1'
    picker.addEventListener('change', () => pickProject(picker.value))
  }
  if (saved !== state.project) pickProject(state.project)
}

// pickProject switches every view of the page to ref.
function pickProject(ref) {
  state.project = ref
  sessionStorage.setItem(PROJECT_KEY, ref)
  state.lastTotals = null
  state.channels = []
  projects.history = []
  $('channel-list').replaceChildren()
  selectChannelQuiet(null)
  clearTail()
  stopTail()
  startTail()
  startPolling()
}

// projectsPoll refreshes the overview table and the charts every other tick.
async function projectsPoll() {
  if (projects.tick++ % 2 !== 0) return
  try {
    if (projects.list.length) projects.list = (await projectFetch(null, '/projects')).projects || projects.list
    const refs = projects.list.length ? projects.list.map((p) => p.ref) : [null]
    const rows = await Promise.all(refs.map(async (ref) => {
      const info = projects.list.find((p) => p.ref === ref) || {}
      if (ref && info.state !== 'running') return { ref, info }
      const [ch, rep] = await Promise.all([projectFetch(ref, '/channels'), projectFetch(ref, '/replication')])
      return { ref, info, ch, rep }
    }))
    for (const r of rows) {
      if (r.ch) projectRates(r)
      if (r.ref === state.project || (!state.project && r.ref === null)) chartSample(r)
    }
    renderProjects(rows)
    renderCharts()
  } catch {
    // the main poll reports the API state
  }
}

// projectRates sets r.inRate and r.outRate from the previous sample.
function projectRates(r) {
  const now = Date.parse(r.ch.time)
  const tot = r.ch.totals
  const last = projects.prev.get(r.ref)
  if (last && now > last.time) {
    const dt = (now - last.time) / 1000
    r.inRate = Math.max(0, (tot.messages_in - last.in) / dt)
    r.outRate = Math.max(0, (tot.messages_out - last.out) / dt)
  }
  projects.prev.set(r.ref, { time: now, in: tot.messages_in, out: tot.messages_out })
}

function chartSample(r) {
  if (r.inRate === undefined || !r.ch) return
  const conns = r.info.connections !== undefined ? r.info.connections : r.ch.totals.subscribers
  projects.history.push({ in: r.inRate, out: r.outRate, lag: r.rep && r.rep.enabled ? r.rep.lag_bytes : 0, conns })
  if (projects.history.length > CHART_POINTS) projects.history.shift()
}

function renderProjects(rows) {
  if (!projects.list.length) return
  const dash = '–'
  $('projects-body').replaceChildren(...rows.map((r) => {
    const tr = h('tr', { 'data-ref': r.ref, class: r.ref === state.project ? 'picked' : '' },
      h('td', {}, h('button', { type: 'button', class: 'link' }, r.ref)),
      h('td', {}, r.info.state || dash),
      h('td', { class: 'num' }, r.info.connections !== undefined ? fmtNum(r.info.connections) : dash),
      h('td', { class: 'num' }, r.ch ? fmtNum(r.ch.totals.channels) : dash),
      h('td', { class: 'num' }, r.inRate !== undefined ? fmtRate(r.inRate) : dash),
      h('td', { class: 'num' }, r.outRate !== undefined ? fmtRate(r.outRate) : dash),
      h('td', {}, !r.rep ? dash : !r.rep.enabled ? 'no database' : r.rep.connected ? fmtBytes(r.rep.lag_bytes) : 'down'),
      h('td', { class: 'num' }, fmtNum(r.info.limit_hits || 0)))
    tr.querySelector('button').addEventListener('click', () => {
      $('project-picker').value = r.ref
      pickProject(r.ref)
    })
    return tr
  }))
}

// renderCharts draws the picked project's last minutes as inline SVG.
function renderCharts() {
  const series = [
    ['messages in /s', (s) => s.in, fmtRate],
    ['messages out /s', (s) => s.out, fmtRate],
    ['replication lag', (s) => s.lag, fmtBytes],
    ['connections', (s) => s.conns, fmtNum],
  ]
  $('charts').replaceChildren(...series.map(([label, get, fmt]) => chart(label, projects.history.map(get), fmt)))
}

function chart(label, values, fmt) {
  const W = 220, H = 48
  // Built by the HTML parser from numbers only, which puts it in the SVG namespace.
  const tpl = document.createElement('template')
  let line = ''
  if (values.length > 1) {
    const top = Math.max(1, ...values)
    const pts = values.map((v, i) => `${((i / (CHART_POINTS - 1)) * W).toFixed(1)},${(H - 2 - (v / top) * (H - 4)).toFixed(1)}`)
    line = `<polyline points="${pts.join(' ')}" fill="none" stroke="currentColor" stroke-width="1.5"></polyline>`
  }
  tpl.innerHTML = `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">${line}</svg>`
  const svg = tpl.content.firstElementChild
  svg.setAttribute('aria-label', label)
  const last = values.length ? fmt(values[values.length - 1]) : '–'
  return h('figure', { class: 'chart' }, svg, h('figcaption', {}, h('span', {}, label), h('strong', {}, last)))
}
