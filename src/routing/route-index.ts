import type { HTTPMatchRequest } from '../config/model.js'
import type { CompiledMatch } from './match.js'
import { matchKind } from './string-match.js'

/**
 * A per-virtual-host index that narrows the routes a request has to be tested against, built
 * once when a snapshot is compiled (never on the request path).
 *
 * Semantics are unchanged: Istio (Envoy) takes the FIRST route whose match block applies. The
 * index only ever hands out a candidate list that (a) keeps the original route order and (b)
 * contains every route that could possibly match the request; the caller still runs each
 * candidate's full `match.test`. So the answer is the same as a linear scan, just cheaper.
 *
 * How it narrows: every route gets a literal "key" its URI condition implies about the path
 * without the query (`pathOnly`):
 * - `exact: X` → pathOnly === X;
 * - `prefix: P` (P without `?`) → pathOnly starts with P (Envoy compares the prefix with the
 *   whole `:path`, query included, but a prefix without `?` can only cover the part before it);
 * - `regex: R` → pathOnly starts with the literal characters R begins with (when R has no `|`).
 * Keys are split into path segments; a segment trie holds each route at the node of its key's
 * complete segments, with the last, open segment (e.g. `/api` or `/ap` in `/ap*`) kept as an
 * open tail at that node. Routes with no usable key (no URI condition, presence, `ignoreUriCase`,
 * a regex that starts with a metacharacter or has an alternation, a key not starting with `/`)
 * are "generic" and are candidates everywhere.
 *
 * Each node stores its final candidate lists precomputed, so a lookup walks the request's path
 * segments and reads one array: no allocation beyond the segment strings, no merging.
 */
/** What the index reads of a route (a compiled route; kept structural so no cycle ties it to the snapshot). */
export interface IndexedRoute {
  match: CompiledMatch
  matchSpec?: HTTPMatchRequest
}

export interface RouteIndex<R extends IndexedRoute = IndexedRoute> {
  root: IndexNode<R>
  /** How many routes are generic (a candidate for every request). */
  generic: number
  /** Trie nodes, for memory accounting and the admin/bench. */
  nodes: number
}

interface IndexNode<R> {
  /** Child per complete path segment. */
  children: Map<string, IndexNode<R>>
  /** Candidates for a request whose walk ends here with no open tail matching. */
  base: readonly R[]
  /** Open tail → candidates (base plus the open routes whose tail is a prefix of it). */
  open: Map<string, readonly R[]>
  /** Distinct open-tail lengths, longest first: the lookups an unmatched segment needs. */
  openLengths: readonly number[]
}

/** Where a route sits in the trie: complete segments, and the open tail (undefined = none). */
interface Placement { segments: string[]; tail: string | undefined }

/** Below this many routes a linear scan is at least as fast as the walk; no index is built. */
export const INDEX_MIN_ROUTES = 8

/** Build the index for one virtual host's ordered routes. Pure; the routes are not copied. */
export function buildRouteIndex<R extends IndexedRoute> (routes: readonly R[]): RouteIndex<R> {
  interface Build {
    children: Map<string, Build>
    /** Positions of routes placed here with no tail (they apply to the whole subtree). */
    here: number[]
    /** Positions of routes placed here with an open tail. */
    tails: Array<[string, number]>
  }
  const newBuild = (): Build => ({ children: new Map(), here: [], tails: [] })
  const root = newBuild()
  let generic = 0
  routes.forEach((r, pos) => {
    const p = placement(r)
    if (p === undefined) { root.here.push(pos); generic++; return }
    let n = root
    for (const s of p.segments) {
      let c = n.children.get(s)
      if (c === undefined) { c = newBuild(); n.children.set(s, c) }
      n = c
    }
    if (p.tail === undefined) n.here.push(pos)
    else n.tails.push([p.tail, pos])
  })

  let nodes = 0
  // `inherited`: sorted positions of every route that may match anything below this node.
  const finish = (b: Build, inherited: number[]): IndexNode<R> => {
    nodes++
    const baseSet = mergeSorted(inherited, b.here)
    const open = new Map<string, readonly R[]>()
    // Open tails by value, and their distinct lengths: the tails that are a prefix of a segment
    // are found with one lookup per length (not a scan of every tail: 10,000 routes in one host).
    const byTail = new Map<string, number[]>()
    for (const [t, p] of b.tails) { const ps = byTail.get(t); if (ps === undefined) byTail.set(t, [p]); else ps.push(p) }
    const tailKeys = [...byTail.keys()]
    const tailLens = [...new Set(tailKeys.map(t => t.length))].sort((x, y) => x - y)
    const tailsFor = (seg: string): number[] => {
      const out: number[] = []
      for (const len of tailLens) {
        if (len > seg.length) break
        const ps = byTail.get(len === seg.length ? seg : seg.slice(0, len))
        if (ps !== undefined) out.push(...ps)
      }
      return out.sort((x, y) => x - y)
    }
    for (const t of tailKeys) open.set(t, toRoutes(mergeSorted(baseSet, tailsFor(t))))
    const children = new Map<string, IndexNode<R>>()
    for (const [seg, c] of b.children) children.set(seg, finish(c, mergeSorted(baseSet, tailsFor(seg))))
    return {
      children,
      base: toRoutes(baseSet),
      open,
      openLengths: [...tailLens].reverse()
    }
  }
  const toRoutes = (ps: number[]): readonly R[] => Object.freeze(ps.map(p => routes[p]))
  return Object.freeze({ root: finish(root, []), generic, nodes })
}

/**
 * The routes to test, in order, for a request with this path (query removed). Every route that
 * can match is included; the first one whose `match.test` passes is Istio's answer.
 */
export function candidates<R extends IndexedRoute> (index: RouteIndex<R>, pathOnly: string): readonly R[] {
  let n = index.root
  if (pathOnly.charCodeAt(0) !== 47 /* / */) return n.base
  let start = 1
  for (;;) {
    const slash = pathOnly.indexOf('/', start)
    const seg = slash < 0 ? pathOnly.slice(start) : pathOnly.slice(start, slash)
    const child = n.children.get(seg)
    if (child !== undefined) {
      if (slash < 0) return child.base
      n = child
      start = slash + 1
      continue
    }
    const lengths = n.openLengths
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i]
      if (len > seg.length) continue
      const hit = n.open.get(len === seg.length ? seg : seg.slice(0, len))
      if (hit !== undefined) return hit
    }
    return n.base
  }
}

/** The literal key a route's URI condition implies, split for the trie; undefined = generic. */
function placement (r: IndexedRoute): Placement | undefined {
  const m = r.matchSpec
  if (m === undefined || m.uri === undefined) return undefined
  const kind = matchKind(m.uri)
  // Only index what the compiled predicate really tests (defensive: they come from one spec).
  if (kind !== r.match.uriKind) return undefined
  let key: string
  let exact = false
  if (kind === 'exact') {
    if (m.ignoreUriCase === true) return undefined
    key = m.uri.exact!
    exact = true
  } else if (kind === 'prefix') {
    if (m.ignoreUriCase === true) return undefined
    key = m.uri.prefix!
    if (key.includes('?')) return undefined
  } else if (kind === 'regex') {
    // ignoreUriCase never applies to regex (string-match.ts), so the literal is case-exact.
    const lit = regexLiteralPrefix(m.uri.regex!)
    if (lit === undefined) return undefined
    key = lit
  } else {
    return undefined
  }
  if (key.charCodeAt(0) !== 47) return undefined
  const parts = key.slice(1).split('/')
  // An exact key fixes every segment; a prefix key's last part is open (it may continue).
  if (exact) return { segments: parts, tail: undefined }
  const tail = parts.pop()!
  return { segments: parts, tail: tail === '' ? undefined : tail }
}

const META = new Set(['\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$'])
const OPTIONAL_AFTER = new Set(['*', '?', '{'])

/**
 * The literal characters every full match of RE2 `source` must start with, or undefined when
 * it cannot be told cheaply (an alternation anywhere, which could bypass the literal). A
 * quantifier that allows zero repeats takes back the character before it.
 */
export function regexLiteralPrefix (source: string): string | undefined {
  if (source.includes('|')) return undefined
  let i = 0
  while (i < source.length && !META.has(source[i])) i++
  let lit = source.slice(0, i)
  if (i < source.length && OPTIONAL_AFTER.has(source[i]) && lit.length > 0) {
    // The quantifier applies to the last code point (two UTF-16 units for a surrogate pair).
    const last = lit.charCodeAt(lit.length - 1)
    lit = lit.slice(0, last >= 0xDC00 && last <= 0xDFFF && lit.length >= 2 ? -2 : -1)
  }
  return lit === '' ? undefined : lit
}

/** Merge two ascending lists of positions without duplicates. */
function mergeSorted (a: readonly number[], b: readonly number[]): number[] {
  if (b.length === 0) return a as number[]
  if (a.length === 0) return [...b].sort((x, y) => x - y)
  const bs = [...b].sort((x, y) => x - y)
  const out: number[] = []
  let i = 0
  let j = 0
  while (i < a.length || j < bs.length) {
    const next = j >= bs.length || (i < a.length && a[i] <= bs[j]) ? a[i++] : bs[j++]
    if (out.length === 0 || out[out.length - 1] !== next) out.push(next)
  }
  return out
}
