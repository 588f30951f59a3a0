import type { HeaderOperations, Headers } from '../config/model.js'

/** One compiled `HeaderOperations`: names lowercased, entries sorted by name as Istio does. */
export interface CompiledHeaderOps {
  remove: readonly string[]
  set: ReadonlyArray<readonly [string, string]>
  add: ReadonlyArray<readonly [string, string]>
  /**
   * Operations appended after these in the same Envoy list (a single destination's `headers`,
   * which Istio appends to the route's: route.go processDestination). Their removes still run
   * first with the others; their set and add run after these.
   */
  then?: CompiledHeaderOps
}

export interface CompiledHeaders {
  request?: CompiledHeaderOps
  response?: CompiledHeaderOps
  /** `headers.request.set.host` (or `:authority`): Istio turns it into an authority rewrite. */
  hostRewrite?: string
}

export type HeaderMap = Record<string, string | string[] | undefined>

/** Istio never sets pseudo-headers or `host` directly (route.go translateAppendHeaders). */
function settable (name: string): boolean {
  return !name.startsWith(':') && name !== 'host'
}

function compileOps (ops: HeaderOperations | undefined): CompiledHeaderOps | undefined {
  if (ops === undefined) return undefined
  const sorted = (r: Record<string, string> | undefined): Array<readonly [string, string]> =>
    Object.entries(r ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const)
      .filter(([k]) => settable(k))
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  const out = {
    remove: (ops.remove ?? []).map(h => h.toLowerCase()).filter(settable),
    set: sorted(ops.set),
    add: sorted(ops.add)
  }
  if (out.remove.length === 0 && out.set.length === 0 && out.add.length === 0) return undefined
  return out
}

/** Compile route- or destination-level `headers`. */
export function compileHeaders (h: Headers | undefined): CompiledHeaders | undefined {
  if (h === undefined) return undefined
  // route.go TranslateHeadersOperations: `host`/`:authority` in `add` rewrites the authority too,
  // and one in `set` wins over it.
  let hostRewrite: string | undefined
  for (const ops of [h.request?.add, h.request?.set]) {
    for (const [k, v] of Object.entries(ops ?? {})) {
      const n = k.toLowerCase()
      if (n === 'host' || n === ':authority') hostRewrite = v
    }
  }
  const out: CompiledHeaders = {}
  const req = compileOps(h.request)
  const res = compileOps(h.response)
  if (req !== undefined) out.request = req
  if (res !== undefined) out.response = res
  if (hostRewrite !== undefined) out.hostRewrite = hostRewrite
  return out.request === undefined && out.response === undefined && out.hostRewrite === undefined ? undefined : out
}

/**
 * Apply operations to a header map in Envoy's order: remove first, then set (overwrite),
 * then add (append another value).
 */
export function applyHeaderOps (ops: CompiledHeaderOps | undefined, headers: HeaderMap): void {
  if (ops === undefined) return
  for (let i = 0; i < ops.remove.length; i++) delete headers[ops.remove[i]]
  if (ops.then !== undefined) for (let i = 0; i < ops.then.remove.length; i++) delete headers[ops.then.remove[i]]
  setAndAdd(ops, headers)
  if (ops.then !== undefined) setAndAdd(ops.then, headers)
}

function setAndAdd (ops: CompiledHeaderOps, headers: HeaderMap): void {
  for (let i = 0; i < ops.set.length; i++) headers[ops.set[i][0]] = ops.set[i][1]
  for (let i = 0; i < ops.add.length; i++) {
    const [k, v] = ops.add[i]
    const cur = headers[k]
    if (cur === undefined) headers[k] = v
    else if (Array.isArray(cur)) headers[k] = [...cur, v]
    else headers[k] = [cur, v]
  }
}

/**
 * A single destination's header operations folded into its route's, as Istio does for a route
 * with one destination: one Envoy list, route entries first, so the destination's `set` wins.
 * (With several destinations they stay per weighted cluster, which Envoy applies before the
 * route's.) The route's authority rewrite wins over the destination's.
 */
export function foldSingleDestination (route: CompiledHeaders | undefined, dest: CompiledHeaders | undefined): CompiledHeaders | undefined {
  if (dest === undefined) return route
  if (route === undefined) return dest
  const chain = (a: CompiledHeaderOps | undefined, b: CompiledHeaderOps | undefined): CompiledHeaderOps | undefined =>
    a === undefined ? b : b === undefined ? a : { ...a, then: b }
  const out: CompiledHeaders = {}
  const request = chain(route.request, dest.request)
  const response = chain(route.response, dest.response)
  const hostRewrite = route.hostRewrite ?? dest.hostRewrite
  if (request !== undefined) out.request = request
  if (response !== undefined) out.response = response
  if (hostRewrite !== undefined) out.hostRewrite = hostRewrite
  return out
}
