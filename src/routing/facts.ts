/**
 * The facts a route match reads, computed once per request.
 * Envoy matches `prefix` against the whole `:path` including the query string, and `exact`/`regex`
 * against the path with the query removed (docs/architecture.md#prefix-and-query).
 */
export interface RequestFacts {
  method: string
  /** `http` or `https`: the downstream scheme. */
  scheme: string
  /** `:authority` as received (Host header, port included when sent). */
  authority: string
  /** Authority lowercased, port removed: what virtual hosts are looked up by. */
  host: string
  /** Listener port for gateways; for the mesh listener, the port the caller addressed (Host port, else 80). */
  port: number
  /** Raw request target: path plus `?query` when present. */
  path: string
  /** Path without the query string. */
  pathOnly: string
  /** The query string without `?`, or '' when absent. */
  query: string
  /** Lowercase header names (Node's IncomingHttpHeaders). */
  headers: Record<string, string | string[] | undefined>
  /** Lazily parsed query parameters (first value per key, percent-decoded). */
  queryParams?: Map<string, string>
}

/** A split authority; shared between requests with the same authority, so never changed. */
export interface SplitAuthority { readonly host: string; readonly port: number | undefined }

// Most requests of a listener carry the same authority: the last split is reused.
let lastAuthority: string | undefined
let lastSplit: SplitAuthority = { host: '', port: undefined }

/** Split an authority into lowercase host and port (undefined when absent). Handles `[v6]:port`. */
export function splitAuthority (authority: string): SplitAuthority {
  if (authority === lastAuthority) return lastSplit
  const split = Object.freeze(splitOnce(authority))
  lastAuthority = authority
  lastSplit = split
  return split
}

function splitOnce (authority: string): { host: string; port: number | undefined } {
  let host = authority
  let port: number | undefined
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    if (end > 0) {
      const rest = host.slice(end + 1)
      host = host.slice(0, end + 1)
      if (rest.startsWith(':')) port = toPort(rest.slice(1))
    }
  } else {
    const colon = host.lastIndexOf(':')
    if (colon >= 0) {
      port = toPort(host.slice(colon + 1))
      host = host.slice(0, colon)
    }
  }
  if (host.endsWith('.')) host = host.slice(0, -1)
  return { host: host.toLowerCase(), port }
}

function toPort (s: string): number | undefined {
  if (s === '' || s.length > 5) return undefined
  const n = Number(s)
  return Number.isInteger(n) && n > 0 && n < 65536 ? n : undefined
}

/** Build facts from the parts of a request. `defaultPort` applies when the authority has no port. */
export function buildFacts (
  method: string,
  scheme: string,
  authority: string,
  target: string,
  headers: Record<string, string | string[] | undefined>,
  listenerPort: number | undefined
): RequestFacts {
  const q = target.indexOf('?')
  const { host, port } = splitAuthority(authority)
  return {
    method,
    scheme,
    authority,
    host,
    port: listenerPort ?? port ?? (scheme === 'https' ? 443 : 80),
    path: target,
    pathOnly: q >= 0 ? target.slice(0, q) : target,
    query: q >= 0 ? target.slice(q + 1) : '',
    headers
  }
}

/** A header's value for matching: repeated values joined with ',' as Envoy does. */
export function headerValue (facts: RequestFacts, name: string): string | undefined {
  const v = facts.headers[name]
  if (v === undefined) return undefined
  return Array.isArray(v) ? v.join(',') : v
}

/** Query parameters, parsed on first use. `?key` yields `key` → ''. The first occurrence wins. */
export function queryParams (facts: RequestFacts): Map<string, string> {
  if (facts.queryParams !== undefined) return facts.queryParams
  const out = new Map<string, string>()
  if (facts.query !== '') {
    for (const part of facts.query.split('&')) {
      if (part === '') continue
      const eq = part.indexOf('=')
      const k = safeDecode(eq >= 0 ? part.slice(0, eq) : part)
      const v = eq >= 0 ? safeDecode(part.slice(eq + 1)) : ''
      if (!out.has(k)) out.set(k, v)
    }
  }
  facts.queryParams = out
  return out
}

function safeDecode (s: string): string {
  if (!s.includes('%') && !s.includes('+')) return s
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '))
  } catch {
    return s
  }
}
