import { randomUUID } from 'node:crypto'
import type { IncomingMessage, Server } from 'node:http'
import { connect, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { ListenerSpec } from '../src/compile/snapshot.js'
import { Errors, type ErrorSpec } from '../src/errors.js'
import { buildFacts } from '../src/routing/facts.js'
import { applyHeaderOps, type HeaderMap } from '../src/routing/headers.js'
import { type PathPolicy, canonicalTarget } from '../src/routing/path.js'
import { rewritePath } from '../src/routing/rewrite.js'
import { pickDestination, selectRoute } from '../src/routing/select.js'
import { resolveFallback } from '../src/resilience/fallback.js'
import type { RuntimeState } from '../src/runtime/state.js'
import { Flag } from '../src/upstream/endpoint.js'
import { type AccessLogWriter, newAccessLogContext } from './access-log.js'
import type { Metrics } from './metrics.js'

const UNSAFE_HEADER = /[\r\n\0]/
const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 404: 'Not Found', 431: 'Request Header Fields Too Large', 502: 'Bad Gateway' }

export interface UpgradeOptions {
  isMesh: boolean
  configPort: number
  listener: () => ListenerSpec | undefined
  runtime: RuntimeState
  accessLog: AccessLogWriter
  metrics?: Metrics
  random: () => number
  /** The listener's path policy: upgrades are matched on the same canonical path as requests. */
  pathPolicy?: PathPolicy
  /** Header checks shared with ordinary requests (proxy.ts RequestLimits). */
  headersWithUnderscores?: 'REJECT' | 'DROP' | 'ALLOW'
  maxHeadersCount?: number
}

/**
 * HTTP/1.1 upgrades (WebSocket) through routes, as Envoy allows them by default: the request
 * is routed like any other (host, match, rewrite, header operations, fallback, endpoint pick),
 * forwarded on a fresh upstream connection, and once the upstream answers 101 the two sockets
 * are piped. Mirroring never applies to upgrades; a route without destinations answers 404 NR.
 */
export function attachUpgrade (server: Server, opts: UpgradeOptions): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const ctx = newAccessLogContext()
    ctx.startTime = Date.now()
    ctx.startHr = process.hrtime.bigint()
    const headers = req.headers
    const sock = req.socket
    ctx.method = req.method ?? 'GET'
    ctx.path = req.url ?? '/'
    ctx.authority = headers.host ?? '-'
    ctx.protocol = `HTTP/${req.httpVersion}`
    ctx.userAgent = headers['user-agent'] ?? '-'
    ctx.downstreamLocal = `${sock.localAddress}:${sock.localPort}`
    ctx.downstreamRemote = `${sock.remoteAddress}:${sock.remotePort}`
    let requestId = headers['x-request-id']
    if (typeof requestId !== 'string' || requestId === '') { requestId = randomUUID(); headers['x-request-id'] = requestId }
    ctx.requestId = requestId
    let logged = false
    const log = (status: number): void => {
      if (logged) return
      logged = true
      const ms = Number((process.hrtime.bigint() - ctx.startHr) / 1000000n)
      opts.accessLog.log(ctx, status, ms)
      opts.metrics?.record(ctx, status, ms)
    }
    const fail = (e: ErrorSpec): void => {
      ctx.responseFlags = e.flag
      socket.end(`HTTP/1.1 ${e.status} ${STATUS_TEXT[e.status] ?? 'Service Unavailable'}\r\ncontent-length: ${Buffer.byteLength(e.body)}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${e.body}`)
      log(e.status)
    }
    socket.on('error', () => socket.destroy())
    // The same header checks as ordinary requests: count, duplicate Host, underscores.
    const raw = req.rawHeaders
    if (raw.length > (opts.maxHeadersCount ?? 100) * 2) { fail(Errors.HeadersTooLarge); return }
    let hosts = 0
    let underscores = false
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i].toLowerCase() === 'host') hosts++
      else if (raw[i].includes('_')) underscores = true
    }
    if (hosts > 1) { fail(Errors.BadHeaders); return }
    if (underscores && opts.headersWithUnderscores !== 'ALLOW') {
      if (opts.headersWithUnderscores !== 'DROP') { fail(Errors.BadHeaders); return }
      for (const name of Object.keys(headers)) if (name.includes('_')) delete headers[name]
    }
    const l = opts.listener()
    const target = canonicalTarget(req.url ?? '/', opts.pathPolicy)
    if (l === undefined) { fail(Errors.NoRoute); return }
    if (target === undefined) { fail(Errors.BadRequest); return }
    const facts = buildFacts(ctx.method, 'http', headers.host ?? '', target, headers, opts.isMesh ? undefined : opts.configPort)
    const { route } = selectRoute(l, facts)
    if (route === undefined || route.destinations.length === 0) { fail(Errors.NoRoute); return }
    ctx.routeName = route.name
    const dest = pickDestination(route, opts.random)!
    const rt = opts.runtime
    const decision = resolveFallback(dest, facts.port, {
      exists: n => rt.cluster(n) !== undefined,
      hasHealthy: n => rt.cluster(n)?.hasHealthy() === true
    })
    ctx.upstreamCluster = decision.cluster ?? decision.primary
    if (decision.fallbackCluster !== undefined) {
      ctx.fallbackPath = `${decision.primary}:${decision.fallbackCluster}`
      ctx.fallbackResult = decision.result ?? '-'
      ctx.fallbackFinalCluster = decision.cluster ?? '-'
    }
    if (decision.cluster === undefined) { fail(decision.failure === 'NC' ? Errors.NoCluster : Errors.NoHealthyUpstream); return }
    const cluster = rt.cluster(decision.cluster)!
    const ep = cluster.pick({ random: opts.random })
    if (ep === undefined) { fail(Errors.NoHealthyUpstream); return }
    ctx.upstreamHost = `${ep.spec.address}:${ep.spec.port}`

    const out: HeaderMap = { ...headers }
    out.host = route.rewrite?.authority ?? headers.host ?? ''
    const xff = out['x-forwarded-for']
    out['x-forwarded-for'] = xff === undefined ? sock.remoteAddress ?? '' : `${String(xff)}, ${sock.remoteAddress ?? ''}`
    ctx.xForwardedFor = out['x-forwarded-for'] as string
    applyHeaderOps(dest.headers?.request, out)
    applyHeaderOps(route.headers?.request, out)
    const path = rewritePath(route.rewrite, route.match, facts)
    const lines = [`${ctx.method} ${path} HTTP/1.1`]
    for (const [k, v] of Object.entries(out)) {
      if (v === undefined) continue
      for (const one of [v].flat()) {
        // This request line is written by hand: a CR, LF or NUL would split it (undici's check
        // does not run here), so such a value is refused like undici refuses it.
        if (UNSAFE_HEADER.test(k) || UNSAFE_HEADER.test(one)) { fail(Errors.UpstreamProtocolError); return }
        lines.push(`${k}: ${one}`)
      }
    }
    const upstream: Socket = connect({ host: ep.spec.address, port: ep.spec.port })
    ep.active++
    cluster.active++
    let released = false
    const release = (): void => { if (!released) { released = true; ep.active--; cluster.active-- } }
    const started = process.hrtime.bigint()
    upstream.once('connect', () => {
      upstream.write(lines.join('\r\n') + '\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      upstream.once('data', (first: Buffer) => {
        ctx.upstreamServiceTime = Number((process.hrtime.bigint() - started) / 1000000n)
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(first.toString('latin1', 0, 16))?.[1] ?? 0)
        cluster.record(ep, { kind: 'response', status })
        socket.write(first)
        upstream.pipe(socket)
        socket.pipe(upstream)
        if (status !== 101) log(status)
        socket.once('close', () => { upstream.destroy(); release(); log(status) })
      })
    })
    upstream.once('error', err => {
      release()
      if (logged) { socket.destroy(); return }
      const code = (err as { code?: string }).code
      ctx.upstreamTransportFailureReason = code ?? err.message
      ep.host.set(Flag.FailedConnect, true)
      cluster.record(ep, { kind: 'local', error: 'connect' })
      fail(Errors.UpstreamConnectFailure)
    })
    upstream.once('close', () => { release(); if (!socket.destroyed) socket.end() })
    socket.once('close', () => { if (!upstream.destroyed) upstream.destroy() })
  })
}
