import type { ServerResponse } from 'node:http'
import type { CompiledRoute } from '../../src/compile/snapshot.js'
import type { ErrorSpec } from '../../src/errors.js'
import { type HeaderMap, applyHeaderOps } from '../../src/routing/headers.js'
import type { AccessLogContext } from '../access-log.js'

/**
 * Replies the gateway makes itself, written to the raw response: router errors (NR, NC, UH,
 * UF, UO, UT…), with Envoy's bodies, and local replies of a route (direct response,
 * redirect, fault abort, CORS preflight) with the route's response header operations.
 */

/** The `server` header Envoy writes: gateways are `istio-envoy`, sidecars (the mesh) `envoy`. */
export function serverName (mesh: boolean): string {
  return mesh ? 'envoy' : 'istio-envoy'
}

/** Answer with an error of the one error table; `extraFlag` adds a flag such as URX. */
export function sendError (res: ServerResponse, ctx: AccessLogContext, e: ErrorSpec, server: string, extraFlag?: string, extraHeaders?: Record<string, string>): void {
  ctx.responseFlags = extraFlag === undefined ? e.flag : `${e.flag},${extraFlag}`
  if (res.headersSent || res.destroyed) return
  const body = e.flag === 'UF' || e.flag === 'UC' || e.flag === 'UR' ? resetBody(e, ctx, extraFlag === 'URX') : e.body
  const len = Buffer.byteLength(body)
  ctx.bytesSent = len
  const headers: Record<string, string | number> = { server, 'content-length': len }
  const ct = res.req.headers['content-type']
  const grpc = typeof ct === 'string' && ct.startsWith('application/grpc')
  if (grpc) {
    // A gRPC client gets a trailers-only answer (docs/grpc.md): HTTP 200, the status in grpc-status.
    headers['content-length'] = 0
    headers['content-type'] = 'application/grpc'
    headers['grpc-status'] = httpToGrpcStatus(e.status)
    headers['grpc-message'] = grpcMessage(body)
    ctx.bytesSent = 0
  } else if (body !== '') headers['content-type'] = 'text/plain' // an empty local reply has none
  // Envoy marks requests it dropped for overflow (router.cc onUpstreamAbort).
  if (e.flag === 'UO') headers['x-envoy-overloaded'] = 'true'
  if (e.flag === 'OM') headers['retry-after'] = '1'
  // The unread rest of the request (a body over the limit, bytes after bad headers) is never parsed.
  if (e.close === true && res.req.httpVersionMajor === 1) headers.connection = 'close'
  if (extraHeaders !== undefined) Object.assign(headers, extraHeaders)
  if (grpc) {
    // Set, not written: the head goes out with the end, one HEADERS frame that ends the stream
    // (a trailers-only answer; a head followed by an empty end would carry no status for gRPC).
    res.statusCode = 200
    for (const k in headers) res.setHeader(k, headers[k])
    res.end()
    return
  }
  res.writeHead(e.status, headers)
  res.end(body)
}

/**
 * The gRPC status for an HTTP status, as Envoy maps it for local replies to gRPC requests (the
 * gRPC project's HTTP-to-gRPC table): 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
 * 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
 */
export function httpToGrpcStatus (status: number): number {
  switch (status) {
    case 400: return 13
    case 401: return 16
    case 403: return 7
    case 404: return 12
    case 429: case 502: case 503: case 504: return 14
    default: return 2
  }
}

/** `grpc-message`: percent-encoded outside printable ASCII, and `%` itself (the gRPC wire rule). */
export function grpcMessage (text: string): string {
  let out = ''
  for (const b of Buffer.from(text, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  return out
}

/** A route's local reply: its response header operations apply, as Envoy applies them to direct responses. */
export function sendLocal (res: ServerResponse, ctx: AccessLogContext, route: CompiledRoute | undefined, status: number, body: Buffer | undefined, headers: Record<string,
  string>, server: string): void {
  if (res.headersSent || res.destroyed) return
  const h: HeaderMap = { ...headers }
  if (route !== undefined) applyHeaderOps(route.headers?.response, h)
  h.server = server
  const len = body?.length ?? 0
  h['content-length'] = String(len)
  ctx.bytesSent = len
  res.writeHead(status, h)
  if (len === 0) res.end()
  else res.end(body)
}

/**
 * Envoy's body for a reset before headers (router.cc onUpstreamReset): the reset reason, with
 * the transport failure reason for connect failures, "retried and the latest reset reason" after
 * retries.
 */
export function resetBody (e: ErrorSpec, ctx: AccessLogContext, retried: boolean): string {
  const head = `upstream connect error or disconnect/reset before headers. ${retried ? 'retried and the latest reset reason' : 'reset reason'}: `
  if (e.flag === 'UC') return `${head}connection termination`
  if (e.flag === 'UR') return `${head}remote refused stream reset`
  const why = ctx.upstreamTransportFailureReason
  if (why === 'UND_ERR_CONNECT_TIMEOUT' || why === 'ETIMEDOUT' || why === 'timeout') return `${head}connection timeout`
  const text = TRANSPORT_FAILURES[why] ?? why
  return why === '-' || why === '' ? `${head}remote connection failure` : `${head}remote connection failure, transport failure reason: delayed connect error: ${text}`
}

const TRANSPORT_FAILURES: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ECONNRESET: 'Connection reset by peer',
  ENOTFOUND: 'Name or service not known'
}
