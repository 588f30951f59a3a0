/* global document, window, EventSource */
import { applyHealth, drawGraph, setFallbackLabel } from './graph.js'

// The dashboard page: logs in (the token is traded for a session cookie), draws GET /graph,
// follows GET /events (traffic every second, health changes, new generations), and offers
// explain and the configuration history with a rollback. Every change it makes sends the
// x-meshgate-ui header, which the admin API requires of cookie-authenticated changes.

const $ = sel => document.querySelector(sel)
const UI = { 'x-meshgate-ui': '1' }
const state = { graph: undefined, handles: undefined, stream: undefined, routeClusters: new Map(), fallbackSeen: new Map() }
window.meshgate = state

async function api (path, init = {}) {
  const res = await fetch(path, { credentials: 'same-origin', ...init, headers: { ...(init.headers ?? {}), ...(init.method !== undefined && init.method !== 'GET' ? UI : {}) } })
  if (res.status === 401) { showLogin(); throw new Error('not logged in') }
  const body = res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text()
  return { status: res.status, body }
}

function showLogin () {
  state.stream?.close()
  state.stream = undefined
  $('#dashboard').hidden = true
  $('#logout').hidden = true
  $('#stream').hidden = true
  $('#login-view').hidden = false
  $('#token').focus()
}

$('#login-form').addEventListener('submit', async ev => {
  ev.preventDefault()
  const res = await fetch('/ui/login', { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json', ...UI }, body: JSON.stringify({ token: $('#token').value }) })
  $('#token').value = ''
  if (!res.ok) { $('#login-error').textContent = res.status === 401 ? 'Wrong token.' : `Refused (${res.status}).`; return }
  $('#login-error').textContent = ''
  await start()
})

$('#logout').addEventListener('click', async () => {
  await fetch('/ui/logout', { method: 'POST', credentials: 'same-origin', headers: UI })
  showLogin()
})

for (const b of document.querySelectorAll('nav button')) {
  b.addEventListener('click', () => {
    for (const o of document.querySelectorAll('nav button')) o.classList.toggle('selected', o === b)
    for (const t of document.querySelectorAll('.tab')) t.hidden = t.id !== `tab-${b.dataset.tab}`
    if (b.dataset.tab === 'config') void loadHistory()
  })
}

/** outbound|9080|v3|reviews.default.svc.cluster.local → reviews v3 :9080 */
const short = c => { const [, port, subset, host] = c.split('|'); return host === undefined ? c : `${host.split('.')[0]}${subset ? ` ${subset}` : ''} :${port}` }
const fmt = v => v === null || v === undefined ? '–' : String(v)
const pct = v => `${Math.round(v * 1000) / 10}%`

function row (cells) {
  const tr = document.createElement('tr')
  for (const c of cells) { const td = document.createElement('td'); td.textContent = c; tr.append(td) }
  return tr
}

async function loadGraph () {
  const { body } = await api('/graph')
  state.graph = body
  state.handles = drawGraph($('#graph'), body)
  $('#generation').textContent = `generation ${body.generation}`
  $('#generation').hidden = false
  // Which clusters each route sends to (destinations and fallbacks), to place route traffic.
  state.routeClusters = new Map()
  const dests = new Map()
  for (const e of body.edges) {
    if (e.kind === 'destination') dests.set(e.to, e.from)
    if (e.kind === 'cluster') add(dests.get(e.from), e.to.slice('cluster:'.length))
  }
  for (const e of body.edges) if (e.kind === 'fallback') for (const [rid, set] of state.routeClusters) if (set.has(e.data.primary) && e.id.startsWith(`fallback:${rid}/`)) set.add(e.data.fallback)
  function add (rid, cluster) { if (rid === undefined) return; if (!state.routeClusters.has(rid)) state.routeClusters.set(rid, new Set()); state.routeClusters.get(rid).add(cluster) }
  for (const [, h] of state.handles.nodes) if (h.node.kind === 'endpoint') applyHealth(h, h.node.data)
  for (const [, h] of state.handles.nodes) if (h.node.kind === 'cluster') h.sub.textContent = `${h.node.data.healthy}/${h.node.data.endpoints} healthy`
  const sel = $('#explain-listener')
  sel.replaceChildren()
  for (const n of body.nodes.filter(x => x.kind === 'listener')) {
    const o = document.createElement('option')
    o.value = n.data.kind === 'mesh' ? 'mesh' : String(n.data.port)
    o.textContent = n.label
    sel.append(o)
  }
}

function onTraffic (t) {
  const h = state.handles
  if (h === undefined) return
  const routeTbody = $('#route-traffic tbody')
  routeTbody.replaceChildren(...t.routes.map(r => row([r.listener, r.route, short(r.cluster), fmt(r.rps), pct(r.errorRate), fmt(r.p50), fmt(r.p99)])))
  $('#cluster-traffic tbody').replaceChildren(...t.clusters.map(c => row([short(c.cluster), fmt(c.rps), pct(c.errorRate), fmt(c.p50), fmt(c.p99)])))
  // Routes: a row counts for every route node of its listener and name that sends to its cluster.
  const perRoute = new Map()
  for (const r of t.routes) {
    for (const [id, n] of h.nodes) {
      if (n.node.kind !== 'route' || n.node.data.listenerKey !== r.listener || n.node.data.name !== r.route) continue
      if (r.cluster !== '-' && !(state.routeClusters.get(id)?.has(r.cluster) ?? false)) continue
      const acc = perRoute.get(id) ?? { requests: 0, errors: 0, p50: null, p99: null }
      acc.requests += r.requests
      acc.errors += r.errors
      acc.p50 = Math.max(acc.p50 ?? 0, r.p50 ?? 0)
      acc.p99 = Math.max(acc.p99 ?? 0, r.p99 ?? 0)
      perRoute.set(id, acc)
    }
  }
  const perSecond = n => Math.round(n * 1000 / t.intervalMs * 10) / 10
  for (const [id, n] of h.nodes) {
    if (n.node.kind === 'route') {
      const a = perRoute.get(id)
      n.g.classList.toggle('active', a !== undefined)
      n.sub.textContent = a === undefined ? '' : `${perSecond(a.requests)}/s ${pct(a.errors / a.requests)} err p50 ${a.p50} p99 ${a.p99}ms`
    }
  }
  const byCluster = new Map(t.clusters.map(c => [`cluster:${c.cluster}`, c]))
  for (const [id, n] of h.nodes) {
    if (n.node.kind !== 'cluster') continue
    const c = byCluster.get(id)
    n.g.classList.toggle('active', c !== undefined)
    n.sub.textContent = c === undefined ? `${n.node.data.healthy}/${n.node.data.endpoints} healthy` : `${c.rps}/s ${pct(c.errorRate)} err p50 ${c.p50} p99 ${c.p99}ms`
  }
  for (const [, e] of h.edges) {
    if (e.edge.kind === 'cluster') e.path.classList.toggle('active', byCluster.has(e.edge.to) && perRoute.has(e.edge.from.split('/dest:')[0]))
  }
  // Fallback edges: lit while the interval had fallbacks on their path, with count and result.
  const fired = new Map()
  for (const f of t.fallbacks) {
    const k = `${f.primary} ${f.fallback}`
    const acc = fired.get(k) ?? { count: 0, results: new Set() }
    acc.count += f.count
    acc.results.add(f.result)
    fired.set(k, acc)
  }
  for (const [, e] of h.edges) {
    if (e.edge.kind !== 'fallback') continue
    const f = fired.get(`${e.edge.data.primary} ${e.edge.data.fallback}`)
    e.path.classList.toggle('firing', f !== undefined)
    e.path.dataset.count = String(f?.count ?? 0)
    if (e.label !== undefined) {
      e.label.classList.toggle('firing', f !== undefined)
      setFallbackLabel(e.label, f === undefined ? 'fallback' : `fallback ×${f.count}`, f === undefined ? '' : [...f.results].join(', '))
    }
  }
  $('#fallback-traffic tbody').replaceChildren(...t.fallbacks.map(f => row([`${short(f.primary)} → ${short(f.fallback)}`, String(f.count), f.result])))
}

function onHealth (ev) {
  for (const c of ev.changes) {
    const n = state.handles?.nodes.get(`endpoint:${c.cluster} ${c.endpoint}`)
    if (n !== undefined) applyHealth(n, c)
    const li = document.createElement('li')
    li.textContent = `${ev.at.slice(11, 19)} ${c.cluster} ${c.endpoint}: ${c.healthy ? 'healthy' : 'unhealthy'}${c.flags.length > 0 ? ` (${c.flags.join(', ')})` : ''}`
    $('#health-log').prepend(li)
  }
  while ($('#health-log').children.length > 50) $('#health-log').lastElementChild.remove()
  // Cluster counters follow their endpoints.
  for (const [, n] of state.handles?.nodes ?? []) {
    if (n.node.kind !== 'cluster') continue
    const eps = [...state.handles.nodes.values()].filter(x => x.node.kind === 'endpoint' && x.node.parent === n.node.id)
    n.node.data.healthy = eps.filter(x => x.g.dataset.healthy === 'true').length
  }
}

function connect () {
  state.stream?.close()
  const es = new EventSource('/events')
  state.stream = es
  es.addEventListener('open', () => { $('#stream').hidden = false; $('#stream').classList.remove('down') })
  es.addEventListener('traffic', m => onTraffic(JSON.parse(m.data)))
  es.addEventListener('health', m => onHealth(JSON.parse(m.data)))
  es.addEventListener('config', () => { void loadGraph(); if (!$('#tab-config').hidden) void loadHistory() })
  es.addEventListener('rejection', () => { if (!$('#tab-config').hidden) void loadHistory() })
  es.addEventListener('error', async () => {
    $('#stream').classList.add('down')
    // EventSource retries by itself; a lost session shows the login form instead.
    try { await api('/graph') } catch { es.close() }
  })
}

// Explain: the decision for a described request, highlighted on the graph.
function clearHighlight () {
  for (const x of document.querySelectorAll('.highlight')) x.classList.remove('highlight')
}

function highlight (ids) {
  clearHighlight()
  for (const id of ids) {
    const n = state.handles.nodes.get(id)
    if (n !== undefined) n.g.classList.add('highlight')
    const e = state.handles.edges.get(id)
    if (e !== undefined) e.path.classList.add('highlight')
  }
}

$('#explain-clear').addEventListener('click', clearHighlight)
$('#explain-form').addEventListener('submit', async ev => {
  ev.preventDefault()
  const f = new window.FormData(ev.target)
  const q = new URLSearchParams({ listener: f.get('listener'), method: f.get('method'), authority: f.get('authority'), path: f.get('path') })
  for (const line of String(f.get('headers')).split('\n')) if (line.includes(':')) q.append('header', line.trim())
  const { status, body } = await api(`/routes/explain?${q}`)
  const out = $('#explain-result')
  if (status !== 200) { out.textContent = body.error; return }
  const listenerNode = state.graph.nodes.find(n => n.kind === 'listener' && n.data.name === body.listener)
  const ids = [listenerNode?.id]
  const lines = [`${body.result}${body.status !== undefined ? ` ${body.status} ${body.flag}` : ''}`]
  if (body.virtualHost) ids.push(`vhost:${body.listener}/${body.virtualHost}`)
  if (body.route) {
    const rid = `route:${body.listener}/${body.virtualHost}/${body.route.order}`
    ids.push(rid)
    lines.push(`route ${body.route.name} (${body.route.virtualService}, order ${body.route.order})`)
    for (const [i, d] of (body.destinations ?? []).entries()) {
      if (d.share === 0) continue
      const did = `${rid}/dest:${i}`
      ids.push(did, `${rid}>${did}`)
      const serves = d.decision.serves
      lines.push(`${Math.round(d.share * 100)}% → ${d.cluster}: ${serves === null ? `503 ${d.decision.flag}` : `served by ${serves}`}${d.decision.fallbackResult ? ` (${d.decision.fallbackResult})` : ''}`)
      if (serves !== null) {
        ids.push(`cluster:${serves}`)
        for (const [id, n] of state.handles.nodes) if (n.node.kind === 'endpoint' && n.node.parent === `cluster:${serves}`) ids.push(id)
        if (serves === d.cluster) ids.push(`${did}>cluster:${serves}`)
        else for (const [id, e] of state.handles.edges) if (e.edge.kind === 'fallback' && id.startsWith(`fallback:${did}:`)) ids.push(id)
      }
    }
  }
  highlight(ids.filter(x => x !== undefined))
  out.replaceChildren(...lines.map(l => { const p = document.createElement('p'); p.textContent = l; return p }))
  out.dataset.serves = (body.destinations ?? []).filter(d => d.share > 0).map(d => d.decision.serves).join(' ')
})

// Configuration: generation, refused changes, history with diffs, rollback.
async function loadHistory () {
  const { body } = await api('/config/history')
  $('#config-summary').textContent = `Running generation ${body.generation}; ${body.history.length} generation(s) kept.`
  $('#rejections').replaceChildren(...(body.rejections.length === 0 ? [text('p', 'None.')] : body.rejections.slice().reverse().map(r => {
    const d = document.createElement('details')
    d.append(text('summary', `${r.at} ${r.source}${r.who ? ` by ${r.who.via} ${r.who.remote ?? ''}` : ''}: ${r.problems.length} problem(s)`))
    const ul = document.createElement('ul')
    for (const p of r.problems) ul.append(text('li', `${p.severity} ${p.code} ${p.file}:${p.line}:${p.column} ${p.path ?? ''} ${p.message}`))
    d.append(ul)
    return d
  })))
  $('#history').replaceChildren(...body.history.slice().reverse().map(g => {
    const d = document.createElement('details')
    d.className = 'generation'
    d.dataset.generation = String(g.generation)
    const who = g.who.remote !== undefined ? `${g.who.via} from ${g.who.remote} (${g.who.method} ${g.who.url})` : g.who.via
    d.append(text('summary', `#${g.generation} ${g.loadedAt} ${g.source} by ${who}: ${g.changes.length} change(s), ${g.resources} resources`))
    for (const c of g.changes) {
      d.append(text('h4', `${c.change} ${c.kind} ${c.namespace}/${c.name}`))
      const pre = document.createElement('pre')
      pre.className = 'diff'
      for (const line of c.diff.split('\n')) {
        const s = text('span', `${line}\n`)
        if (line.startsWith('+') && !line.startsWith('+++')) s.className = 'add'
        if (line.startsWith('-') && !line.startsWith('---')) s.className = 'del'
        pre.append(s)
      }
      d.append(pre)
    }
    return d
  }))
}

function text (tag, s) { const e = document.createElement(tag); e.textContent = s; return e }

$('#rollback').addEventListener('click', async () => {
  if (!window.confirm('Roll the running configuration back to the previous generation?')) return
  const { status, body } = await api('/config/rollback', { method: 'POST' })
  $('#rollback-result').textContent = status === 200 ? `Rolled back: generation ${body.generation} is running.` : `Refused (${status}): ${body.error}`
  await loadHistory()
  await loadGraph()
})

async function start () {
  try {
    await loadGraph()
  } catch {
    return
  }
  $('#login-view').hidden = true
  $('#dashboard').hidden = false
  $('#logout').hidden = false
  connect()
}

void start()
