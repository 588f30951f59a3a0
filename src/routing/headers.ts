import type { HeaderOperations, Headers } from '../config/model.js'

/** One compiled `HeaderOperations`: names lowercased, entries sorted by name as Istio does. */
export interface CompiledHeaderOps {
  remove: readonly string[]
  set: ReadonlyArray<readonly [string, string]>
  add: ReadonlyArray<readonly [string, string]>
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
  const set = h.request?.set ?? {}
  let hostRewrite: string | undefined
  for (const [k, v] of Object.entries(set)) {
    const n = k.toLowerCase()
    if (n === 'host' || n === ':authority') hostRewrite = v
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
  for (let i = 0; i < ops.set.length; i++) headers[ops.set[i][0]] = ops.set[i][1]
  for (let i = 0; i < ops.add.length; i++) {
    const [k, v] = ops.add[i]
    const cur = headers[k]
    if (cur === undefined) headers[k] = v
    else if (Array.isArray(cur)) headers[k] = [...cur, v]
    else headers[k] = [cur, v]
  }
}
