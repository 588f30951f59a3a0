import type { ForwardPlan } from './decide.js'
import { type HeaderMap, applyHeaderOps } from './headers.js'

/** Hop-by-hop headers (RFC 9110 §7.6.1) never forwarded in either direction. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization'])

/**
 * Headers the gateway itself owns on the way upstream. A client's `Connection` header may
 * nominate other hop-by-hop headers for removal, but never these: removing them would let a
 * client strip what the gateway set for the upstream's benefit (Envoy ignores such nominations).
 */
function protectedHeader (name: string): boolean {
  return name === 'host' || name === 'x-forwarded-for' || name === 'x-forwarded-proto' || name === 'x-request-id' ||
    name === 'te' || name.startsWith('x-envoy-') || name.charCodeAt(0) === 58 /* : */
}

/** The header names a Connection header nominates (RFC 9110 §7.6.1), lowercased; gateway-owned names never. */
export function nominatedHeaders (connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined
  let out: Set<string> | undefined
  for (const part of String(connection).toLowerCase().split(',')) {
    const name = part.trim()
    if (name === '' || name === 'close' || name === 'keep-alive' || name === 'upgrade' || protectedHeader(name)) continue
    if (out === undefined) out = new Set()
    out.add(name)
  }
  return out
}

export interface DownstreamPolicy {
  /** The mesh listener is a sidecar's outbound side: it keeps the caller's forwarding headers. */
  mesh: boolean
  /** The peer address of the downstream connection. */
  remoteAddress: string
}

/**
 * What the connection manager does to a request before routing, for every entry point alike:
 * an edge listener appends the peer to `x-forwarded-for`, joined with "," as Envoy does
 * (use_remote_address) and removes the `x-envoy-*` headers an untrusted client sent; the mesh
 * listener leaves both as the caller sent them. Changes `headers` in place and returns the
 * `x-forwarded-for` to log ('-' when there is none).
 */
export function applyDownstreamPolicy (headers: Record<string, string | string[] | undefined>, p: DownstreamPolicy): string {
  if (p.mesh) {
    const xff = headers['x-forwarded-for']
    return typeof xff === 'string' && xff !== '' ? xff : '-'
  }
  // An untrusted client's x-envoy-* headers would steer the gateway or the upstream (Envoy
  // removes them from external requests). Deleted only when present: the common request has none.
  for (const name in headers) if (name.charCodeAt(0) === 120 /* x */ && name.startsWith('x-envoy-')) delete headers[name]
  const xffIn = headers['x-forwarded-for']
  const xff = xffIn === undefined || xffIn === '' ? p.remoteAddress : `${String(xffIn)},${p.remoteAddress}`
  headers['x-forwarded-for'] = xff
  return xff === '' ? '-' : xff
}

export interface UpstreamPolicy {
  mesh: boolean
  /** Downstream scheme, sent as `x-forwarded-proto` at the edge. */
  scheme: string
  /** GET and HEAD: a content-length of such a request is not forwarded. */
  bodyless: boolean
}

/**
 * The request headers sent upstream for a plan: the client's headers without hop-by-hop ones
 * (and those its Connection header nominates), without pseudo-headers, with the plan's
 * authority, `x-forwarded-proto` at the edge, the destination's then the route's header
 * operations (Envoy applies the most specific level first, so the route wins on conflicts)
 * and `x-envoy-original-path` after a rewrite. `Expect` is not forwarded: the listener has
 * already answered `100 Continue` itself, as Envoy does by default. Built by adding, never by deleting: `delete`
 * turns the object into a slow dictionary.
 */
export function upstreamHeaders (headers: Record<string, string | string[] | undefined>, plan: ForwardPlan, p: UpstreamPolicy): HeaderMap {
  const named = nominatedHeaders(headers.connection)
  const out: HeaderMap = {}
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || name.charCodeAt(0) === 58 /* : */ || (named !== undefined && named.has(name)) || (p.bodyless && name === 'content-length') || name === 'expect') continue
    out[name] = headers[name]
  }
  out.host = plan.authority
  if (!p.mesh || out['x-forwarded-proto'] === undefined) out['x-forwarded-proto'] = p.scheme
  applyHeaderOps(plan.dest.headers?.request, out)
  applyHeaderOps(plan.route.headers?.request, out)
  if (plan.originalPath !== undefined) out['x-envoy-original-path'] = plan.originalPath
  return out
}
