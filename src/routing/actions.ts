import type { CorsPolicy, HTTPDirectResponse, HTTPFaultInjection, HTTPRedirect, HTTPRoute, Percent } from '../config/model.js'
import { parseDurationMs } from '../config/duration.js'
import type { RequestFacts } from './facts.js'
import type { CompiledMatch } from './match.js'
import { compileStringMatch, type ValueMatcher } from './string-match.js'

// ---------------------------------------------------------------- redirect

export interface CompiledRedirect {
  uri?: string
  authority?: string
  port?: number
  derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT'
  scheme?: string
  code: number
}

export function compileRedirect (r: HTTPRedirect | undefined): CompiledRedirect | undefined {
  if (r === undefined) return undefined
  return { ...r, code: r.redirectCode ?? 301 }
}

/** A redirect `uri` starting with this replaces only the matched prefix (Istio's prefix redirect). */
const PREFIX_MARKER = '%PREFIX()%'

function defaultPort (scheme: string): number {
  return scheme === 'https' ? 443 : 80
}

/**
 * The `Location` of a redirect, as Envoy builds it (route.go ApplyRedirect + Envoy newUri):
 * scheme, host and port replaced where configured (a port equal to the scheme's default is
 * left out), `uri` replacing the whole path (only the matched prefix with `%PREFIX()%`), the
 * request's query kept unless the new path carries its own.
 */
export function redirectLocation (r: CompiledRedirect, match: CompiledMatch, facts: RequestFacts, requestPort: number): string {
  const scheme = r.scheme ?? facts.scheme
  let host = facts.host
  let port: number | undefined
  const authorityPort = /:(\d+)$/.exec(facts.authority)
  if (authorityPort !== null && !facts.authority.endsWith(']')) port = Number(authorityPort[1])
  if (r.authority !== undefined) {
    const m = /^(.*?)(?::(\d+))?$/.exec(r.authority)!
    host = m[1]
    port = m[2] !== undefined ? Number(m[2]) : undefined
  }
  if (r.port !== undefined) port = r.port
  else if (r.derivePort === 'FROM_REQUEST_PORT') port = requestPort
  else if (r.derivePort === 'FROM_PROTOCOL_DEFAULT') port = defaultPort(scheme)
  else if (r.scheme !== undefined && r.scheme !== facts.scheme && port === defaultPort(facts.scheme)) port = undefined
  const portPart = port === undefined || port === defaultPort(scheme) ? '' : `:${port}`
  let path = facts.path
  if (r.uri !== undefined) {
    // Istio: "the entire path will be replaced, irrespective of the request URI being matched as
    // an exact path or prefix" (Envoy path_redirect; the query is kept unless the new URI has one).
    // `%PREFIX()%/new` replaces only the matched prefix, Istio's marker for a prefix redirect.
    if (r.uri.startsWith(PREFIX_MARKER) && match.uriKind === 'prefix') {
      path = r.uri.slice(PREFIX_MARKER.length) + facts.path.slice(match.prefix.length)
    } else {
      const uri = r.uri.startsWith(PREFIX_MARKER) ? r.uri.slice(PREFIX_MARKER.length) : r.uri
      path = uri.includes('?') || facts.query === '' ? uri : `${uri}?${facts.query}`
    }
  }
  return `${scheme}://${host}${portPart}${path}`
}

// ---------------------------------------------------------------- direct response

export interface CompiledDirectResponse {
  status: number
  body?: Buffer
}

export function compileDirectResponse (d: HTTPDirectResponse | undefined): CompiledDirectResponse | undefined {
  if (d === undefined) return undefined
  const body = d.body?.string !== undefined ? Buffer.from(d.body.string) : d.body?.bytes !== undefined ? Buffer.from(d.body.bytes, 'base64') : undefined
  return { status: d.status, ...(body !== undefined ? { body } : {}) }
}

// ---------------------------------------------------------------- fault injection

export interface CompiledFault {
  delayMs?: number
  /** Fraction in [0, 1]; a missing percentage means no fault (virtual_service.proto). */
  delayFraction: number
  abortStatus?: number
  abortGrpc?: string
  abortFraction: number
}

/** `percentage.value` (fractional percent) wins over the deprecated integer `percent`. */
function fraction (p: Percent | undefined, legacy?: number): number {
  const v = p?.value ?? legacy
  if (v === undefined) return 0
  return Math.max(0, Math.min(100, v)) / 100
}

export function compileFault (f: HTTPFaultInjection | undefined): CompiledFault | undefined {
  if (f === undefined) return undefined
  const out: CompiledFault = { delayFraction: 0, abortFraction: 0 }
  if (f.delay !== undefined) {
    const ms = parseDurationMs(f.delay.fixedDelay ?? f.delay.exponentialDelay ?? '0s')
    if (ms !== undefined) out.delayMs = ms
    out.delayFraction = fraction(f.delay.percentage, f.delay.percent)
  }
  if (f.abort !== undefined) {
    if (f.abort.httpStatus !== undefined) out.abortStatus = f.abort.httpStatus
    if (f.abort.grpcStatus !== undefined) out.abortGrpc = f.abort.grpcStatus
    out.abortFraction = fraction(f.abort.percentage)
  }
  return out
}

/** gRPC status names to codes (grpc/status.proto). */
export const GRPC_CODES: Record<string, number> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16
}

// ---------------------------------------------------------------- CORS

export interface CompiledCors {
  origin: ValueMatcher[]
  anyOrigin: boolean
  allowMethods?: string
  allowHeaders?: string
  exposeHeaders?: string
  maxAge?: string
  allowCredentials: boolean
  unmatchedPreflights: 'FORWARD' | 'IGNORE'
}

export function compileCors (c: CorsPolicy | undefined): CompiledCors | undefined {
  if (c === undefined) return undefined
  const matchers = (c.allowOrigins ?? []).map(m => compileStringMatch(m))
  // The deprecated allowOrigin lists exact origins; "*" allows any.
  const legacy = c.allowOrigin ?? []
  for (const o of legacy) if (o !== '*') matchers.push(compileStringMatch({ exact: o }))
  const maxAgeMs = c.maxAge !== undefined ? parseDurationMs(c.maxAge) : undefined
  return {
    origin: matchers,
    anyOrigin: legacy.includes('*') || (c.allowOrigins ?? []).some(m => m.exact === '*'),
    ...(c.allowMethods !== undefined ? { allowMethods: c.allowMethods.join(',') } : {}),
    ...(c.allowHeaders !== undefined ? { allowHeaders: c.allowHeaders.join(',') } : {}),
    ...(c.exposeHeaders !== undefined ? { exposeHeaders: c.exposeHeaders.join(',') } : {}),
    ...(maxAgeMs !== undefined ? { maxAge: String(Math.floor(maxAgeMs / 1000)) } : {}),
    allowCredentials: c.allowCredentials === true,
    unmatchedPreflights: c.unmatchedPreflights === 'IGNORE' ? 'IGNORE' : 'FORWARD'
  }
}

export function corsAllows (c: CompiledCors, origin: string): boolean {
  return c.anyOrigin || c.origin.some(m => m(origin))
}

/** Headers answering an allowed preflight (Envoy cors filter). */
export function corsPreflightHeaders (c: CompiledCors, origin: string): Record<string, string> {
  const h: Record<string, string> = { 'access-control-allow-origin': origin }
  if (c.allowMethods !== undefined) h['access-control-allow-methods'] = c.allowMethods
  if (c.allowHeaders !== undefined) h['access-control-allow-headers'] = c.allowHeaders
  if (c.maxAge !== undefined) h['access-control-max-age'] = c.maxAge
  if (c.allowCredentials) h['access-control-allow-credentials'] = 'true'
  return h
}

/** Headers added to an actual (non-preflight) response for an allowed origin. */
export function corsResponseHeaders (c: CompiledCors, origin: string): Record<string, string> {
  const h: Record<string, string> = { 'access-control-allow-origin': origin }
  if (c.exposeHeaders !== undefined) h['access-control-expose-headers'] = c.exposeHeaders
  if (c.allowCredentials) h['access-control-allow-credentials'] = 'true'
  return h
}

// ---------------------------------------------------------------- mirror

/** Mirror targets of a route: `mirror` + `mirrorPercentage` (or `mirror_percent`), and `mirrors[]`. Missing percentage = 100 %. */
export function mirrorTargets (http: HTTPRoute): Array<{ destination: NonNullable<HTTPRoute['mirror']>; fraction: number }> {
  const out: Array<{ destination: NonNullable<HTTPRoute['mirror']>; fraction: number }> = []
  const pct = (p: Percent | undefined, legacy?: number): number => {
    const v = p?.value ?? legacy
    return v === undefined ? 1 : Math.max(0, Math.min(100, v)) / 100
  }
  if (http.mirror !== undefined) out.push({ destination: http.mirror, fraction: pct(http.mirrorPercentage, http.mirrorPercent) })
  for (const m of http.mirrors ?? []) out.push({ destination: m.destination, fraction: pct(m.percentage) })
  return out
}

/** The mirrored request's Host: `-shadow` appended to the host part (Envoy ShadowPolicyImpl). */
export function shadowAuthority (authority: string): string {
  const m = /^(\[[^\]]+\]|[^:]+)(:\d+)?$/.exec(authority)
  if (m === null) return `${authority}-shadow`
  return `${m[1]}-shadow${m[2] ?? ''}`
}
