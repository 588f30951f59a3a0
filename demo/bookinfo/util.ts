// Small helpers shared by the Bookinfo stand-ins.

import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'

/**
 * Trace-context headers that both productpage and reviews copy from their incoming request onto
 * the calls they make (the lists in the upstream services start with these).
 */
export const TRACE_HEADERS: readonly string[] = [
  'x-request-id',
  'x-ot-span-context',
  'x-datadog-trace-id',
  'x-datadog-parent-id',
  'x-datadog-sampling-priority',
  'traceparent',
  'tracestate',
  'x-cloud-trace-context',
  'grpc-trace-bin'
]

/** Zipkin B3 headers. */
export const B3_HEADERS: readonly string[] = ['x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags']

/** Identity headers passed on after the trace headers: sw8 (SkyWalking), then who the user is. */
export const USER_HEADERS: readonly string[] = ['user-agent', 'cookie', 'authorization', 'jwt']

/** Path part of a request target (query and fragment removed), still percent-encoded. */
export function requestPath (url: string | undefined): string {
  const u = url ?? '/'
  let end = u.length
  const q = u.indexOf('?')
  if (q >= 0) end = q
  const h = u.indexOf('#')
  if (h >= 0 && h < end) end = h
  return u.slice(0, end)
}

/** Query string (without '?'), or ''. */
export function requestQuery (url: string | undefined): string {
  const u = url ?? ''
  const q = u.indexOf('?')
  if (q < 0) return ''
  const h = u.indexOf('#', q)
  return u.slice(q + 1, h < 0 ? undefined : h)
}

/** Percent-decode, leaving the text as is when it is not valid UTF-8 percent-encoding. */
export function safeDecode (s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

export function readBody (req: IncomingMessage, limit = 1024 * 1024): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > limit) {
        reject(new Error('request body too large'))
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

/** Jinja2 / MarkupSafe escaping. */
export function escapeHtml (s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&#34;')
    .replace(/'/g, '&#39;')
}

/** First value of an incoming header (Node joins most repeated headers with ", "). */
export function headerValue (req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()]
  if (v === undefined) return undefined
  return Array.isArray(v) ? v.join(', ') : v
}

/** Copy each header of `names` that `req` carries onto `into` (its value as `headerValue` reads it). */
export function copyHeaders (req: IncomingMessage, names: readonly string[], into: OutgoingHttpHeaders): OutgoingHttpHeaders {
  for (const h of names) {
    const v = headerValue(req, h)
    if (v !== undefined) into[h] = v
  }
  return into
}
