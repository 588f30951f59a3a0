import type { ServerResponse } from 'node:http'
import { util } from 'undici'
import type { ForwardPlan } from '../../src/routing/decide.js'
import { HOP_BY_HOP } from '../../src/routing/header-policy.js'
import { type HeaderMap, applyHeaderOps } from '../../src/routing/headers.js'

/**
 * The response head sent downstream for an upstream answer: the upstream's headers without
 * hop-by-hop ones, names lowercased as Envoy's codec writes them, `server` replaced,
 * `x-envoy-upstream-service-time`, a generated hash cookie, CORS headers, and the
 * destination's then the route's response header operations. Without header operations the
 * head stays a flat name/value list (no object built per response).
 */

/** Upstream header names never copied downstream: hop-by-hop ones, and the two the gateway writes itself. */
const NOT_COPIED: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'server', 'x-envoy-upstream-service-time'])

export interface HeadExtras {
  server: string
  serviceTimeMs: number
  setCookie?: string
  cors?: Record<string, string>
}

/**
 * Write the head for `status` to `res`; returns the upstream's Content-Length (-1 when absent).
 * `headersOnly`: the upstream answered with a head that ended its stream (gRPC's trailers-only
 * answer); the head is only set here and goes out with the end, so that an HTTP/2 client gets
 * it as one HEADERS frame that ends the stream too.
 */
export function writeHead (res: ServerResponse, status: number, raw: Buffer[], plan: ForwardPlan, x: HeadExtras, headersOnly = false): number {
  const ops = plan.dest.headers?.response !== undefined || plan.route.headers?.response !== undefined
  const flat: string[] = []
  let contentLength = -1
  for (let i = 0; i < raw.length; i += 2) {
    const name = util.headerNameToString(raw[i])
    if (NOT_COPIED.has(name)) continue
    const value = raw[i + 1].toString('latin1')
    if (name.length === 14 && name === 'content-length') contentLength = Number(value)
    flat.push(name, value)
  }
  flat.push('x-envoy-upstream-service-time', String(x.serviceTimeMs))
  if (!ops) {
    if (x.setCookie !== undefined) flat.push('set-cookie', x.setCookie)
    if (x.cors !== undefined) for (const k in x.cors) flat.push(k, x.cors[k])
    flat.push('server', x.server)
    if (headersOnly) setHead(res, status, flat)
    else res.writeHead(status, flat)
    return contentLength
  }
  const h: HeaderMap = {}
  for (let i = 0; i < flat.length; i += 2) {
    const cur = h[flat[i]]
    h[flat[i]] = cur === undefined ? flat[i + 1] : Array.isArray(cur) ? [...cur, flat[i + 1]] : [cur, flat[i + 1]]
  }
  applyHeaderOps(plan.dest.headers?.response, h)
  applyHeaderOps(plan.route.headers?.response, h)
  if (x.setCookie !== undefined) { const c = h['set-cookie']; h['set-cookie'] = c === undefined ? x.setCookie : [...[c].flat(), x.setCookie] }
  if (x.cors !== undefined) Object.assign(h, x.cors)
  h.server = x.server
  const len = h['content-length']
  if (headersOnly) setHead(res, status, h)
  else res.writeHead(status, h)
  return len === undefined ? -1 : Number(len)
}

/** Set the head without sending it (it goes out with `res.end()`). */
function setHead (res: ServerResponse, status: number, headers: string[] | HeaderMap): void {
  res.statusCode = status
  if (!Array.isArray(headers)) {
    for (const k in headers) { const v = headers[k]; if (v !== undefined) res.setHeader(k, v) }
    return
  }
  for (let i = 0; i < headers.length; i += 2) {
    const cur = res.getHeader(headers[i])
    res.setHeader(headers[i], cur === undefined ? headers[i + 1] : [...[cur].flat().map(String), headers[i + 1]])
  }
}
