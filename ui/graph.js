/* global document */
// The topology as SVG: one column per kind (listeners, virtual hosts, routes, destinations,
// clusters, endpoints), nodes in the order a walk from the listeners first reaches them, edges
// as curves from one column to the next; fallback edges join two clusters of the same column
// and are drawn as arcs to the right of it. Every node and edge carries its id in `data-id`
// and its state in classes, so that the page (and the browser test) can find and restyle it.

const SVG = 'http://www.w3.org/2000/svg'
const COLUMNS = ['listener', 'vhost', 'route', 'destination', 'cluster', 'endpoint']
const COL_W = 195
const NODE_W = 172
const NODE_H = 34
const ROW_H = 44
const PAD = 20
/** Room between the cluster and endpoint columns for the fallback arcs and their labels. */
const ARC_GAP = 150

function el (name, attrs = {}, text) {
  const e = document.createElementNS(SVG, name)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  if (text !== undefined) e.textContent = text
  return e
}

/** Positions: x by kind, y by first-reached order within the column, columns centred. */
function layout (graph) {
  const out = new Map()
  const children = new Map()
  for (const e of graph.edges) {
    if (e.kind === 'fallback') continue
    if (!children.has(e.from)) children.set(e.from, [])
    children.get(e.from).push(e.to)
  }
  const order = COLUMNS.map(() => [])
  const seen = new Set()
  const byId = new Map(graph.nodes.map(n => [n.id, n]))
  const visit = id => {
    if (seen.has(id) || !byId.has(id)) return
    seen.add(id)
    order[COLUMNS.indexOf(byId.get(id).kind)].push(id)
    for (const c of children.get(id) ?? []) visit(c)
  }
  for (const n of graph.nodes) if (n.kind === 'listener') visit(n.id)
  for (const n of graph.nodes) visit(n.id)
  const rows = Math.max(1, ...order.map(c => c.length))
  order.forEach((ids, col) => {
    const offset = (rows - ids.length) * ROW_H / 2
    ids.forEach((id, i) => out.set(id, { x: PAD + col * COL_W + (COLUMNS[col] === 'endpoint' ? ARC_GAP : 0), y: PAD + offset + i * ROW_H }))
  })
  return { pos: out, width: PAD * 2 + (COLUMNS.length - 1) * COL_W + NODE_W + ARC_GAP + 10, height: PAD * 2 + rows * ROW_H }
}

function edgePath (a, b, fallback) {
  if (fallback) {
    const x = a.x + NODE_W
    const bend = x + 30 + Math.min(80, Math.abs(b.y - a.y) / 3)
    return `M ${x} ${a.y + NODE_H / 2} C ${bend} ${a.y + NODE_H / 2}, ${bend} ${b.y + NODE_H / 2}, ${x} ${b.y + NODE_H / 2}`
  }
  const x1 = a.x + NODE_W
  const y1 = a.y + NODE_H / 2
  const x2 = b.x
  const y2 = b.y + NODE_H / 2
  const mid = (x1 + x2) / 2
  return `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`
}

/** Draws `graph` (GET /graph) into `container`; answers the handles the page updates. */
export function drawGraph (container, graph) {
  const { pos, width, height } = layout(graph)
  const svg = el('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'topology graph' })
  const edges = el('g', { class: 'edges' })
  const labels = el('g', { class: 'edge-labels' })
  const nodes = el('g', { class: 'nodes' })
  svg.append(edges, labels, nodes)
  const nodeEls = new Map()
  const edgeEls = new Map()
  for (const e of graph.edges) {
    const a = pos.get(e.from)
    const b = pos.get(e.to)
    if (a === undefined || b === undefined) continue
    const path = el('path', { d: edgePath(a, b, e.kind === 'fallback'), class: `edge edge-${e.kind}`, 'data-id': e.id, 'data-from': e.from, 'data-to': e.to })
    path.append(el('title', {}, e.kind === 'fallback' ? `fallback ${e.data.primary} → ${e.data.fallback}` : `${e.from} → ${e.to}`))
    edges.append(path)
    let label
    if (e.label !== undefined) {
      const lx = e.kind === 'fallback' ? a.x + NODE_W + 14 : (a.x + NODE_W + b.x) / 2
      const ly = e.kind === 'fallback' ? (a.y + b.y) / 2 + NODE_H / 2 : (a.y + b.y) / 2 + NODE_H / 2 - 4
      label = el('text', { x: lx, y: ly, class: `edge-label edge-label-${e.kind}`, 'data-id': e.id }, e.label)
      labels.append(label)
    }
    edgeEls.set(e.id, { path, label, edge: e })
  }
  for (const n of graph.nodes) {
    const p = pos.get(n.id)
    const g = el('g', { class: `node node-${n.kind}`, 'data-id': n.id, transform: `translate(${p.x} ${p.y})` })
    g.append(el('rect', { width: NODE_W, height: NODE_H, rx: 6 }))
    const label = n.label.length > 26 ? `${n.label.slice(0, 25)}…` : n.label
    g.append(el('text', { x: 8, y: 14, class: 'node-label' }, label))
    const sub = el('text', { x: 8, y: 28, class: 'node-stats' }, '')
    g.append(sub)
    g.append(el('title', {}, `${n.kind}: ${n.label}`))
    nodes.append(g)
    nodeEls.set(n.id, { g, sub, node: n })
  }
  container.replaceChildren(svg)
  return { nodes: nodeEls, edges: edgeEls }
}

/** A fallback edge's label: two lines (count, then the fallback_result). */
export function setFallbackLabel (label, first, second) {
  const x = label.getAttribute('x')
  const a = el('tspan', { x, dy: 0 }, first)
  const b = el('tspan', { x, dy: 12 }, second)
  label.replaceChildren(a, b)
}

/** An endpoint node's classes from its health (GET /graph data or a health event). */
export function applyHealth (handle, h) {
  const g = handle.g
  g.classList.toggle('healthy', h.healthy === true)
  g.classList.toggle('unhealthy', h.healthy === false)
  g.classList.toggle('drained', h.drained === true)
  g.classList.toggle('ejected', h.ejected === true)
  g.classList.toggle('breaker-open', h.breaker === 'open')
  g.dataset.healthy = String(h.healthy)
  const notes = []
  if (h.flags !== undefined && h.flags.length > 0) notes.push(h.flags.join(','))
  if (h.breaker !== undefined && h.breaker !== 'closed') notes.push(`breaker ${h.breaker}`)
  handle.sub.textContent = h.healthy ? 'healthy' : `unhealthy ${notes.join(' ')}`
}
