import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { type ErrorSpec, Errors } from '../../src/errors.js'
import { type AccessLogContext, newAccessLogContext } from '../access-log.js'
import type { RequestLimits } from './limits.js'

/**
 * Request intake, shared by ordinary requests and upgrades: the access-log context filled from
 * what arrived (with `x-request-id` generated when absent, as Envoy's connection manager does),
 * and the header checks every request passes before routing.
 */

/** Open the access-log context of a request. */
export function openContext (raw: IncomingMessage, listener: string, now: () => number): AccessLogContext {
  const ctx = newAccessLogContext()
  ctx.startTime = now()
  ctx.startHr = process.hrtime.bigint()
  const headers = raw.headers
  ctx.method = raw.method ?? 'GET'
  // HTTP/2 carries the authority in :authority; HTTP/1.1 in Host.
  const authorityHeader = headers[':authority']
  if (typeof authorityHeader === 'string' && headers.host === undefined) headers.host = authorityHeader
  ctx.authority = headers.host ?? '-'
  ctx.path = raw.url ?? '/'
  ctx.protocol = raw.httpVersionMajor === 2 ? 'HTTP/2' : raw.httpVersionMinor === 1 ? 'HTTP/1.1' : `HTTP/${raw.httpVersion}`
  ctx.userAgent = headers['user-agent'] ?? '-'
  const p = peerOf(raw)
  ctx.downstreamLocal = p.local
  ctx.downstreamRemote = p.remote
  ctx.downstreamAddress = p.address
  ctx.listener = listener
  const cl = headers['content-length']
  if (cl !== undefined) ctx.bytesReceived = Number(cl) || 0
  let requestId = headers['x-request-id']
  if (typeof requestId !== 'string' || requestId === '') {
    requestId = randomUUID()
    headers['x-request-id'] = requestId
  }
  ctx.requestId = requestId
  ctx.traceId = traceIdOf(headers)
  return ctx
}

/**
 * The header checks before routing: header count, duplicate Host, Transfer-Encoding framing,
 * names with underscores (REJECT, or DROP them here), and a Content-Length over the body limit.
 * Returns the error to answer with, or undefined.
 */
export function checkHeaders (raw: IncomingMessage, lim: RequestLimits): ErrorSpec | undefined {
  const headers = raw.headers
  const rawHeaders = raw.rawHeaders
  // HTTP/2 lists its pseudo-headers (:method, :path, …) among the raw headers.
  if (rawHeaders.length > (lim.maxHeadersCount + (raw.httpVersionMajor === 2 ? 5 : 0)) * 2) return Errors.HeadersTooLarge
  let hosts = 0
  let underscores = false
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++
    else if (name.includes('_')) underscores = true
  }
  // Two Host headers (or Host next to a different :authority) make the authority ambiguous.
  if (hosts > 1) return Errors.BadHeaders
  // Transfer-Encoding other than exactly `chunked`, or on HTTP/1.0 (RFC 9112 §6.1: faulty
  // framing): llhttp may hand such a head over before it fails on the body, so refuse it here.
  const te = headers['transfer-encoding']
  if (te !== undefined && raw.httpVersionMajor === 1 && (raw.httpVersionMinor === 0 || te.toLowerCase() !== 'chunked')) return Errors.BadHeaders
  if (underscores && lim.headersWithUnderscores !== 'ALLOW') {
    // A backend that maps `_` to `-` could otherwise be handed a spoofed header (Envoy edge advice).
    if (lim.headersWithUnderscores === 'REJECT') return Errors.BadHeaders
    for (const name of Object.keys(headers)) if (name.includes('_')) delete headers[name]
  }
  const cl = headers['content-length']
  if (cl !== undefined && lim.maxRequestBodyBytes > 0 && Number(cl) > lim.maxRequestBodyBytes) return Errors.PayloadTooLarge
  return undefined
}

/**
 * Request headers for matching. Node joins repeated headers with ", "; Envoy matches them
 * joined with ",", so repeated ones are kept apart (cookie stays joined, as sent).
 */
export function matchHeaders (raw: IncomingMessage, repeated: boolean): Record<string, string | string[] | undefined> {
  const headers = raw.headers
  if (!repeated) return headers
  const out: Record<string, string | string[] | undefined> = { ...headers }
  for (const [k, v] of Object.entries(raw.headersDistinct)) if (v !== undefined && v.length > 1 && k !== 'cookie') out[k] = v
  return out
}

/** The two ends of a downstream connection, as the access log and the header policy use them. */
export interface Peer {
  /** `address:port` of the gateway's end. */
  local: string
  /** `address:port` of the client's end. */
  remote: string
  /** The client's address. */
  address: string
}

const kPeer = Symbol('meshgate.peer')

/**
 * The connection's ends, computed once per HTTP/1 connection: each address getter is a
 * system call, and keep-alive connections carry many requests.
 */
export function peerOf (raw: IncomingMessage): Peer {
  const sock = raw.socket as IncomingMessage['socket'] & { [kPeer]?: Peer }
  if (raw.httpVersionMajor === 1) {
    const cached = sock[kPeer]
    if (cached !== undefined) return cached
  }
  const address = sock.remoteAddress ?? ''
  const p: Peer = { local: `${sock.localAddress}:${sock.localPort}`, remote: `${address}:${sock.remotePort}`, address }
  if (raw.httpVersionMajor === 1) sock[kPeer] = p
  return p
}

/** More raw header lines than names: some header is repeated. Read before intake adds any header. */
export function hasRepeatedHeaders (raw: IncomingMessage): boolean {
  // Counted without building the array of names.
  let names = 0
  for (const _ in raw.headers) names++
  return raw.rawHeaders.length > names * 2
}

/**
 * W3C traceparent, B3 multi or B3 single trace id, else '-'. With tracing on, the listener
 * replaces it with its span's trace id (plugins/tracing.ts).
 */
function traceIdOf (h: IncomingMessage['headers']): string {
  const tp = h.traceparent
  if (typeof tp === 'string' && tp.length >= 35) return tp.slice(3, 35)
  const b3 = h['x-b3-traceid']
  if (typeof b3 === 'string' && b3 !== '') return b3
  const single = h.b3
  if (typeof single !== 'string') return '-'
  const dash = single.indexOf('-')
  return dash > 0 ? single.slice(0, dash) : '-'
}
