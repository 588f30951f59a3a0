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
  const body = e.flag === 'UF' || e.flag === 'UC' ? resetBody(e, ctx, extraFlag === 'URX') : e.body
  const len = Buffer.byteLength(body)
  ctx.bytesSent = len
  const headers: Record<string, string | number> = { server, 'content-length': len }
  // An empty local reply has no content-type.
  if (body !== '') headers['content-type'] = 'text/plain'
  // Envoy marks requests it dropped for overflow (router.cc onUpstreamAbort).
  if (e.flag === 'UO') headers['x-envoy-overloaded'] = 'true'
  if (e.flag === 'OM') headers['retry-after'] = '1'
  // The unread rest of the request (a body over the limit, bytes after bad headers) is never parsed.
  if (e.close === true && res.req.httpVersionMajor === 1) headers.connection = 'close'
  if (extraHeaders !== undefined) Object.assign(headers, extraHeaders)
  res.writeHead(e.status, headers)
  res.end(body)
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
