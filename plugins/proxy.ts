import { randomBytes, randomUUID } from 'node:crypto'
import { createServer as createHttp1Server, STATUS_CODES, type IncomingMessage, type Server as Http1Server, type ServerResponse } from 'node:http'
import { createServer as createH2cServer, type Http2Session } from 'node:http2'
import type { Socket } from 'node:net'
import { getHeapStatistics } from 'node:v8'
import type { Readable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { ListenerSpec, Snapshot } from '../src/compile/snapshot.js'
import { parseDurationMs } from '../src/config/duration.js'
import { type ErrorSpec, Errors } from '../src/errors.js'
import { buildFacts, headerValue, queryParams, type RequestFacts } from '../src/routing/facts.js'
import { applyHeaderOps, type HeaderMap } from '../src/routing/headers.js'
import { type EscapedSlashesAction, type PathNormalization, canonicalize } from '../src/routing/path.js'
import { rewritePath } from '../src/routing/rewrite.js'
import { pickDestination, selectRoute } from '../src/routing/select.js'
import { retryPolicy } from '../src/resilience/retry.js'
import { GRPC_CODES, corsAllows, corsPreflightHeaders, corsResponseHeaders, redirectLocation } from '../src/routing/actions.js'
import type { CompiledRoute } from '../src/compile/snapshot.js'
import type { ClusterState } from '../src/runtime/cluster-state.js'
import type { SnapshotStore } from '../src/runtime/store.js'
import type { RuntimeState } from '../src/runtime/state.js'
import { attachUpgrade } from './upgrade.js'
import { OverloadGuard } from './overload.js'
import { httpsServerOptions } from './tls.js'
import { hostMatches } from '../src/config/hosts.js'
import { clusterFor } from '../src/compile/compile.js'
import { type AccessLogContext, type AccessLogWriter, newAccessLogContext } from './access-log.js'
import { type Forwarder, HOP_BY_HOP_SET, countBody, responseHeaders } from './forwarder.js'
import type { Metrics } from './metrics.js'

declare module 'fastify' {
  interface FastifyRequest {
    mg: AccessLogContext | null
  }
}

export interface ListenerOptions {
  kind: 'gateway' | 'mesh'
  /** The Gateway server port this listener serves (its routes); the bind port may differ. */
  configPort: number
  store: SnapshotStore
  forwarder: Forwarder
  /** Runtime state (upgrade requests pick endpoints here directly). */
  runtime: RuntimeState
  accessLog: AccessLogWriter
  metrics?: Metrics
  /** Shared count of requests in flight (for shutdown and the admin API). */
  counters?: { inFlight: number }
  random?: () => number
  now?: () => number
  /** Request limits, timeouts and normalization policy; unset fields take DEFAULT_LIMITS. */
  limits?: Partial<RequestLimits>
  /** Fastify server options merged in last (tests, special cases). */
  serverOptions?: Record<string, unknown>
}

/** Event-loop and memory guards that shed requests with 503 OM before the process falls over. */
export interface OverloadOptions {
  /** Mean event-loop delay over a sample interval above which requests are shed. 0 = off. */
  maxEventLoopDelayMs: number
  /** Heap used above which requests are shed. 0 = off. Default: 95 % of V8's heap limit (Envoy edge). */
  maxHeapUsedBytes: number
  /** Resident set size above which requests are shed. 0 = off. */
  maxRssBytes: number
  /** How often the guards sample (ms). */
  sampleIntervalMs: number
}

/** `headers_with_underscores_action` (Envoy): REJECT answers 400, DROP removes the header. */
export type UnderscoreHeadersAction = 'REJECT' | 'DROP' | 'ALLOW'

/** The downstream limits of a proxy listener (hardening.md §2 A–C). */
export interface RequestLimits {
  pathNormalization: PathNormalization
  escapedSlashes: EscapedSlashesAction
  headersWithUnderscores: UnderscoreHeadersAction
  /** Request line plus headers, bytes (HTTP/1.1 `maxHeaderSize`, HTTP/2 `maxHeaderListSize`) → 431. */
  maxHeaderBytes: number
  /** Request header fields → 431. */
  maxHeadersCount: number
  /** Request body bytes, by Content-Length or counted while streaming → 413. 0 = unlimited. */
  maxRequestBodyBytes: number
  /** Time to receive the request headers → 408 and close (slowloris). */
  headersTimeoutMs: number
  /** Time to receive the whole request, body included → 408 and close (slow body). */
  requestTimeoutMs: number
  /** Idle keep-alive connections close after this long. Keep it above any load balancer's idle timeout. */
  keepAliveTimeoutMs: number
  /** Open downstream connections per listener; more are closed at accept. */
  maxConnections: number
  /** HTTP/2 streams per connection (Envoy edge: 100). */
  maxConcurrentStreams: number
  overload: OverloadOptions | false
}

/** meshgate's defaults, each anchored in hardening.md §3 (README "Security"). */
export const DEFAULT_LIMITS: Readonly<RequestLimits> = Object.freeze({
  pathNormalization: 'BASE',
  escapedSlashes: 'REJECT',
  headersWithUnderscores: 'REJECT',
  maxHeaderBytes: 60 * 1024,
  maxHeadersCount: 100,
  maxRequestBodyBytes: 1024 * 1024 * 1024,
  headersTimeoutMs: 30_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 75_000,
  maxConnections: 10_000,
  maxConcurrentStreams: 100,
  overload: Object.freeze({ maxEventLoopDelayMs: 1000, maxHeapUsedBytes: Math.floor(getHeapStatistics().heap_size_limit * 0.95), maxRssBytes: 0, sampleIntervalMs: 1000 })
})

/** Defaults filled in; `overload` merges field by field unless it is `false`. */
export function resolveLimits (partial: Partial<RequestLimits> | undefined): RequestLimits {
  const out = { ...DEFAULT_LIMITS, ...partial } as RequestLimits
  if (partial?.overload !== undefined && partial.overload !== false) out.overload = { ...(DEFAULT_LIMITS.overload as OverloadOptions), ...partial.overload }
  return out
}

/**
 * Build the Fastify instance of one listener (a Gateway port or the mesh). Proxying runs in the
 * `onRequest` hook: nothing is routed by Fastify and no body is parsed; the request stream goes
 * to the upstream as is, so bodies stream in both directions.
 */
export async function createListener (opts: ListenerOptions): Promise<FastifyInstance> {
  const random = opts.random ?? Math.random
  const now = opts.now ?? Date.now
  const isMesh = opts.kind === 'mesh'
  // Envoy overwrites the response's server header: Istio names gateways istio-envoy, sidecars keep envoy.
  const serverName = isMesh ? 'envoy' : 'istio-envoy'
  const initial = isMesh ? opts.store.current.mesh : opts.store.current.gateways.find(l => l.port === opts.configPort)
  const secure = initial?.tls !== undefined && initial.tls.length > 0
  const scheme = secure ? 'https' : 'http'
  const lim = resolveLimits(opts.limits)
  const pathPolicy = { normalization: lim.pathNormalization, escapedSlashes: lim.escapedSlashes }
  // Node's parser options, explicit so no leniency can slip in: llhttp strict, Host required,
  // duplicate headers not joined (duplicate Host is refused below), header bytes capped.
  const httpOptions = {
    maxHeaderSize: lim.maxHeaderBytes,
    insecureHTTPParser: false,
    requireHostHeader: true,
    joinDuplicateHeaders: false,
    // Node enforces headersTimeout/requestTimeout only when it checks (every 30 s by default).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(lim.headersTimeoutMs / 4)))
  }
  const h2Settings = { maxConcurrentStreams: lim.maxConcurrentStreams, maxHeaderListSize: lim.maxHeaderBytes }
  // Plain Gateway ports declared HTTP2 or GRPC take HTTP/1.1 and h2c with prior knowledge.
  const h2c = !secure && !isMesh && (initial?.protocol === 'HTTP2' || initial?.protocol === 'GRPC')
  const h2Sessions = new Set<Http2Session>()
  // Typed as the HTTP/1 instance: Node's HTTP/2 compatibility API gives the hooks the same
  // request/response surface (headers, url, method, socket, streams) for both protocols.
  const app = Fastify({
    // HTTPS listeners speak HTTP/2 (ALPN h2) and HTTP/1.1; requests go upstream as HTTP/1.1.
    ...(secure
      ? { http2: true, https: { ...httpsServerOptions(initial!.tls!, () => opts.store.current.gateways.find(l => l.port === opts.configPort)?.tls), allowHTTP1: true, settings: h2Settings, maxHeaderListPairs: lim.maxHeadersCount + 4 } }
      : h2c
        ? { serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => polyglotServer(handler, httpOptions, { settings: h2Settings, maxHeaderListPairs: lim.maxHeadersCount + 4 }, lim.headersTimeoutMs, h2Sessions) }
        : { http: httpOptions }),
    requestTimeout: lim.requestTimeoutMs,
    keepAliveTimeout: lim.keepAliveTimeoutMs,
    forceCloseConnections: 'idle',
    // Parse errors, header overflow and timeouts: Envoy-style local reply, connection closed, logged.
    clientErrorHandler: (err: Error & { code?: string }, socket: Socket) => { onClientError(err, socket) },
    logger: false,
    return503OnClosing: true,
    // Forward-proxy style requests (absolute-form, as HTTP_PROXY clients send them) carry the
    // authority in the target: RFC 9112 §3.2.2 says it replaces Host.
    rewriteUrl: isMesh ? absoluteFormToOrigin : undefined,
    // Requests Fastify's router rejects (malformed URL) get Envoy's 400 and an access-log line.
    frameworkErrors: (_err: Error, request: FastifyRequest, reply: FastifyReply) => {
      const ctx = newAccessLogContext()
      ctx.startTime = now()
      ctx.startHr = process.hrtime.bigint()
      ctx.method = request.raw.method ?? '-'
      ctx.path = request.raw.url ?? '-'
      ctx.authority = request.raw.headers.host ?? '-'
      ctx.protocol = `HTTP/${request.raw.httpVersion}`
      request.mg = ctx
      reply.raw.once('finish', () => {
        opts.accessLog.log(ctx, reply.statusCode, 0)
        opts.metrics?.record(ctx, reply.statusCode, 0)
      })
      request.mg = null
      sendError(reply, ctx, Errors.BadRequest)
    },
    ...opts.serverOptions
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance
  app.decorateRequest('mg', null)
  // Set on the server itself too: Fastify applies these only to plain HTTP/1 servers it creates.
  const srv = app.server as unknown as Http1Server & { connectionsCheckingInterval?: number; maxHeaderSize?: number; requireHostHeader?: boolean; insecureHTTPParser?: boolean; joinDuplicateHeaders?: boolean }
  // HTTPS listeners parse their HTTP/1.1 fallback with these server properties.
  srv.maxHeaderSize = lim.maxHeaderBytes
  srv.requireHostHeader = true
  srv.insecureHTTPParser = false
  srv.joinDuplicateHeaders = false
  srv.headersTimeout = lim.headersTimeoutMs
  srv.requestTimeout = lim.requestTimeoutMs
  srv.keepAliveTimeout = lim.keepAliveTimeoutMs
  srv.maxHeadersCount = lim.maxHeadersCount + 1
  srv.maxConnections = lim.maxConnections
  srv.connectionsCheckingInterval = httpOptions.connectionsCheckingInterval
  if (secure) {
    // Node's HTTP/2 secure server tracks neither its sessions for close() nor has
    // closeAllConnections (used at the shutdown deadline): both are provided here.
    const tlsSockets = new Set<Socket>()
    srv.on('secureConnection', (s: Socket) => { tlsSockets.add(s); s.once('close', () => tlsSockets.delete(s)) })
    srv.on('session', (s: Http2Session) => { h2Sessions.add(s); s.once('close', () => h2Sessions.delete(s)) })
    if (typeof srv.closeAllConnections !== 'function') srv.closeAllConnections = () => { for (const s of tlsSockets) s.destroy() }
  }
  if (h2c || secure) {
    // HTTP/2 sessions are not connections Fastify tracks: end them gracefully (GOAWAY) on close.
    app.addHook('preClose', async () => { for (const s of h2Sessions) s.close() })
  }

  function onClientError (err: Error & { code?: string }, socket: Socket): void {
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    const inFlight = (socket as unknown as { _httpMessage?: { headersSent: boolean } | null })._httpMessage
    // Bytes after a `Connection: close` request: never parsed; the response in flight finishes
    // and the connection closes after it.
    if (err.code === 'HPE_CLOSED_CONNECTION' && inFlight !== undefined && inFlight !== null) return
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400
    const ctx = newAccessLogContext()
    ctx.startTime = now()
    ctx.startHr = process.hrtime.bigint()
    ctx.protocol = 'HTTP/1.1'
    ctx.downstreamLocal = `${socket.localAddress}:${socket.localPort}`
    ctx.downstreamRemote = `${socket.remoteAddress}:${socket.remotePort}`
    ctx.listener = isMesh ? 'mesh' : String(opts.configPort)
    ctx.responseFlags = status === 408 ? '-' : 'DPE'
    ctx.upstreamTransportFailureReason = err.code ?? '-'
    const body = STATUS_CODES[status] ?? ''
    ctx.bytesSent = body.length
    if (socket.writable && (inFlight === undefined || inFlight === null || !inFlight.headersSent)) {
      socket.write(`HTTP/1.1 ${status} ${body}\r\ncontent-length: ${body.length}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${body}`)
    }
    // Nothing after a framing error is read: the rest of the bytes may be a smuggled request.
    socket.destroySoon()
    setTimeout(() => socket.destroy(), 1000).unref()
    opts.accessLog.log(ctx, status, 0)
    opts.metrics?.record(ctx, status, 0)
  }
  attachUpgrade(app.server, {
    isMesh,
    configPort: opts.configPort,
    listener: () => listener,
    runtime: opts.runtime,
    accessLog: opts.accessLog,
    metrics: opts.metrics,
    random,
    pathPolicy,
    headersWithUnderscores: lim.headersWithUnderscores,
    maxHeadersCount: lim.maxHeadersCount
  })

  let listener = currentListener(opts.store.current)
  // The snapshot requests start on (its cluster set decides what exists for them: NC).
  let snapshot = opts.store.current
  opts.store.onSwap(next => { listener = currentListener(next); snapshot = next })
  function currentListener (snap: Snapshot): ListenerSpec | undefined {
    return isMesh ? snap.mesh : snap.gateways.find(l => l.port === opts.configPort)
  }

  const counters = opts.counters ?? { inFlight: 0 }
  /** The access-log context of a request, filled from what arrived. */
  const begin = (request: FastifyRequest): AccessLogContext => {
    counters.inFlight++
    const ctx = newAccessLogContext()
    request.mg = ctx
    ctx.startTime = now()
    ctx.startHr = process.hrtime.bigint()
    const raw = request.raw
    const headers = raw.headers
    const sock = raw.socket
    ctx.method = raw.method ?? 'GET'
    // HTTP/2 carries the authority in :authority; HTTP/1.1 in Host.
    const authorityHeader = headers[':authority']
    if (typeof authorityHeader === 'string' && headers.host === undefined) headers.host = authorityHeader
    ctx.authority = headers.host ?? '-'
    ctx.path = raw.url ?? '/'
    ctx.protocol = raw.httpVersion === '2.0' ? 'HTTP/2' : `HTTP/${raw.httpVersion}`
    ctx.userAgent = headers['user-agent'] ?? '-'
    ctx.downstreamLocal = `${sock.localAddress}:${sock.localPort}`
    ctx.downstreamRemote = `${sock.remoteAddress}:${sock.remotePort}`
    ctx.listener = isMesh ? 'mesh' : String(opts.configPort)
    const cl = headers['content-length']
    if (cl !== undefined) ctx.bytesReceived = Number(cl) || 0

    // x-request-id is generated when absent and passed on (Envoy's HCM behaviour).
    let requestId = headers['x-request-id']
    if (typeof requestId !== 'string' || requestId === '') {
      requestId = randomUUID()
      headers['x-request-id'] = requestId
    }
    ctx.requestId = requestId
    ctx.traceId = traceIdOf(headers)
    return ctx
  }

  // Overload guard (Envoy overload manager): sampled on a timer, so a request reads one field.
  const guard = lim.overload === false ? undefined : new OverloadGuard(lim.overload)
  if (guard !== undefined) app.addHook('onClose', async () => { guard.close() })

  app.addHook('onRequest', async (request, reply) => {
    if (guard?.reason !== undefined) {
      const ctx = begin(request)
      ctx.responseFlags = Errors.Overloaded.flag
      ctx.upstreamTransportFailureReason = guard.reason
      ctx.bytesSent = Errors.Overloaded.body.length
      reply.code(503).header('content-type', 'text/plain').header('retry-after', '1').header('connection', 'close')
      reply.send(Errors.Overloaded.body)
      return reply
    }
    // Repeated request headers (more raw lines than names): Node joins them with ", ", Envoy
    // matches them joined with "," — so matching sees the separate values.
    const repeated = request.raw.rawHeaders.length > Object.keys(request.raw.headers).length * 2
    const ctx = begin(request)
    const raw = request.raw
    const headers = raw.headers
    const sock = raw.socket
    const cl = headers['content-length']
    // Envoy's HCM sets these before routing, so local replies carry and log them too.
    reply.header('server', serverName)
    // x-forwarded-for: an edge listener appends the peer, joined with "," as Envoy does
    // (use_remote_address); sidecar outbound (the mesh) leaves it as the caller sent it.
    const xffIn = headers['x-forwarded-for']
    if (!isMesh) headers['x-forwarded-for'] = xffIn === undefined || xffIn === '' ? (sock.remoteAddress ?? '') : `${xffIn},${sock.remoteAddress ?? ''}`
    const xff = headers['x-forwarded-for']
    if (typeof xff === 'string' && xff !== '') ctx.xForwardedFor = xff

    // Header count, underscores and duplicate Host, in one pass over the raw list.
    const rawHeaders = raw.rawHeaders
    // HTTP/2 lists its pseudo-headers (:method, :path, …) among the raw headers.
    if (rawHeaders.length > (lim.maxHeadersCount + (raw.httpVersionMajor === 2 ? 5 : 0)) * 2) return sendError(reply, ctx, Errors.HeadersTooLarge)
    let hosts = 0
    let underscores = false
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]
      if (name.length === 4 && name.toLowerCase() === 'host') hosts++
      else if (name.includes('_')) underscores = true
    }
    // Two Host headers (or Host next to a different :authority) make the authority ambiguous.
    if (hosts > 1) return sendError(reply, ctx, Errors.BadHeaders)
    // Transfer-Encoding other than exactly `chunked`, or on HTTP/1.0 (RFC 9112 §6.1: faulty
    // framing): llhttp may hand such a head over before it fails on the body, so refuse it here.
    const te = headers['transfer-encoding']
    if (te !== undefined && raw.httpVersionMajor === 1 && (raw.httpVersionMinor === 0 || te.toLowerCase() !== 'chunked')) {
      return sendError(reply, ctx, Errors.BadHeaders)
    }
    if (underscores && lim.headersWithUnderscores !== 'ALLOW') {
      // A backend that maps `_` to `-` could otherwise be handed a spoofed header (Envoy edge advice).
      if (lim.headersWithUnderscores === 'REJECT') return sendError(reply, ctx, Errors.BadHeaders)
      for (const name of Object.keys(headers)) if (name.includes('_')) delete headers[name]
    }
    if (cl !== undefined && lim.maxRequestBodyBytes > 0 && Number(cl) > lim.maxRequestBodyBytes) {
      return sendError(reply, ctx, Errors.PayloadTooLarge)
    }

    const l = listener
    const clusters = snapshot.clusters
    if (l === undefined) return sendError(reply, ctx, Errors.NoRoute)
    // The one canonical target: matched on, rewritten from and forwarded (hardening.md §4.2).
    const canon = canonicalize(raw.url ?? '/', pathPolicy)
    if (canon.kind === 'reject') return sendError(reply, ctx, Errors.BadRequest)
    if (canon.kind === 'redirect') {
      // UNESCAPE_AND_REDIRECT: the client comes back with the unescaped path, which every hop sees alike.
      reply.code(307).header('location', canon.target).send('')
      return reply
    }
    const target = canon.target
    const facts = buildFacts(ctx.method, scheme, headers.host ?? '', target, repeated ? distinctHeaders(raw) : headers, isMesh ? undefined : opts.configPort)
    // Gateway `tls.httpsRedirect`: plain-HTTP requests for those hosts get a 301 to https (Envoy require_tls).
    if (l.httpsRedirectHosts !== undefined && l.httpsRedirectHosts.some(h => hostMatches(h, facts.host))) {
      reply.code(301).header('location', `https://${facts.host}${target}`).send('')
      return reply
    }
    const { route } = selectRoute(l, facts)
    if (route === undefined) return sendError(reply, ctx, Errors.NoRoute)
    ctx.routeName = route.name

    // CORS (Envoy cors filter): preflights are answered here; allowed origins get headers on the response.
    let corsHeaders: Record<string, string> | undefined
    const origin = headers.origin
    if (route.cors !== undefined && typeof origin === 'string') {
      const allowed = corsAllows(route.cors, origin)
      if (ctx.method === 'OPTIONS' && headers['access-control-request-method'] !== undefined) {
        if (allowed) return sendLocal(reply, ctx, route, 200, undefined, corsPreflightHeaders(route.cors, origin))
        if (route.cors.unmatchedPreflights === 'IGNORE') return sendLocal(reply, ctx, route, 200, undefined, {})
      } else if (allowed) {
        corsHeaders = corsResponseHeaders(route.cors, origin)
      }
    }

    // Fault injection: delay, then abort, each drawn independently (Envoy fault filter).
    const fault = route.fault
    if (fault !== undefined) {
      if (fault.delayMs !== undefined && fault.delayFraction > 0 && random() < fault.delayFraction) {
        ctx.responseFlags = 'DI'
        const gone = await delay(fault.delayMs, reply.raw)
        if (gone) return reply
      }
      if (fault.abortFraction > 0 && random() < fault.abortFraction) {
        ctx.responseFlags = ctx.responseFlags === 'DI' ? 'DI,FI' : 'FI'
        // Envoy resolved the route's cluster before the fault filter ran, and logs it.
        if (route.destinations.length === 1) ctx.upstreamCluster = clusterFor(route.destinations[0], facts.port)
        if (fault.abortGrpc !== undefined) {
          return sendLocal(reply, ctx, route, 200, undefined, { 'content-type': 'application/grpc', 'grpc-status': String(GRPC_CODES[fault.abortGrpc] ?? 2), 'grpc-message': 'fault filter abort', ...corsHeaders }, true)
        }
        return sendLocal(reply, ctx, route, fault.abortStatus ?? 503, Buffer.from('fault filter abort'), { 'content-type': 'text/plain', ...corsHeaders }, true)
      }
    }
    if (route.redirect !== undefined) {
      const location = redirectLocation(route.redirect, route.match, facts, isMesh ? facts.port : (sock.localPort ?? facts.port))
      return sendLocal(reply, ctx, route, route.redirect.code, undefined, { location, ...corsHeaders })
    }
    if (route.directResponse !== undefined) {
      const d = route.directResponse
      return sendLocal(reply, ctx, route, d.status, d.body, { ...(d.body !== undefined ? { 'content-type': 'text/plain' } : {}), ...corsHeaders })
    }

    const dest = pickDestination(route, random)
    if (dest === undefined) return sendError(reply, ctx, Errors.NoCluster)

    const remoteAddress = sock.remoteAddress ?? ''
    const bodyless = ctx.method === 'GET' || ctx.method === 'HEAD'
    // The upstream headers, copied without hop-by-hop headers (and those Connection names),
    // pseudo-headers, or a bodyless request's content-length. Built by adding, never by
    // deleting: `delete` turns the object into a slow dictionary, and the profile showed every
    // later header write on it as a hot line.
    const connection = headers.connection
    const named = typeof connection === 'string' ? connectionTokens(connection) : undefined
    const out: HeaderMap = {}
    for (const name in headers) {
      if (HOP_BY_HOP_SET.has(name) || name.charCodeAt(0) === 58 /* : */ || (named !== undefined && named.has(name)) || (bodyless && name === 'content-length')) continue
      out[name] = headers[name]
    }
    // HTTP/2 frames the body itself (no content-length needed): a stream that did not end with
    // its HEADERS frame has one, sent upstream chunked.
    const h2 = (raw as unknown as { stream?: { endAfterHeaders: boolean } }).stream
    const hasBody = !bodyless && (h2 !== undefined
      ? !h2.endAfterHeaders
      : headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0'))
    // A weighted destination's `set.host` (Envoy ClusterWeight host_rewrite) unless the route rewrites it.
    out.host = route.rewrite?.authority ?? dest.headers?.hostRewrite ?? headers.host ?? ''
    // x-forwarded-proto at the edge (the mesh keeps the caller's).
    if (!isMesh || out['x-forwarded-proto'] === undefined) out['x-forwarded-proto'] = scheme
    // Envoy applies the most specific level first, so route-level operations win on conflicts.
    applyHeaderOps(dest.headers?.request, out)
    applyHeaderOps(route.headers?.request, out)

    let setCookie: string | undefined
    const hashKey = (cluster: ClusterState): string | undefined => {
      const ch = cluster.spec.policy.loadBalancer?.consistentHash
      if (ch === undefined) return undefined
      const r = consistentHashKey(ch, facts, remoteAddress)
      if (r.setCookie !== undefined) setCookie = r.setCookie
      return r.key
    }

    // The access log reads the request headers as the router left them (Envoy rewrites in place).
    ctx.authority = String(out.host)
    const upstreamPath = rewritePath(route.rewrite, route.match, facts)
    // Envoy passes the pre-rewrite path on (and Istio logs it as the request's path).
    if (upstreamPath !== target) out['x-envoy-original-path'] = target

    await opts.forwarder.forward({
      ctx,
      route,
      dest,
      port: facts.port,
      method: ctx.method,
      path: upstreamPath,
      headers: out,
      req: raw,
      res: reply.raw,
      hasBody,
      retry: route.retry ?? DEFAULT_RETRY,
      timeoutMs: route.timeoutMs ?? 0,
      maxBodyBytes: lim.maxRequestBodyBytes,
      hashKey,
      mirrors: route.mirrors,
      clusters
    }, {
      error: (spec, extra) => { sendError(reply, ctx, spec, extra) },
      response: (status, h, body) => {
        const rh = responseHeaders(route, dest, h, ctx.upstreamServiceTime)
        if (setCookie !== undefined) rh['set-cookie'] = h['set-cookie'] === undefined ? setCookie : [...[h['set-cookie']].flat(), setCookie]
        if (corsHeaders !== undefined) Object.assign(rh, corsHeaders)
        const len = rh['content-length']
        if (len !== undefined) ctx.bytesSent = Number(len) || 0
        rh.server = serverName
        reply.code(status)
        reply.headers(rh)
        reply.send(len === undefined && ctx.method !== 'HEAD' ? countBody(body as Readable, ctx, 'sent') : body)
      }
    })
    return reply
  })

  // Every request is answered in onRequest; this route only exists so Fastify has one.
  app.all('*', async (_req, reply) => reply)

  const finished = (request: { mg: AccessLogContext | null }, status: number): void => {
    const ctx = request.mg
    if (ctx === null) return
    request.mg = null
    counters.inFlight--
    const ms = Number((process.hrtime.bigint() - ctx.startHr) / 1000000n)
    opts.accessLog.log(ctx, status, ms)
    opts.metrics?.record(ctx, status, ms)
  }
  app.addHook('onResponse', async (request, reply) => { finished(request, reply.statusCode) })
  // A client that goes away before the response completes: Envoy logs DC with code 0.
  app.addHook('onRequestAbort', async request => {
    if (request.mg !== null) { if (request.mg.responseFlags === '-') request.mg.responseFlags = 'DC'; finished(request, 0) }
  })
  // An upstream body that fails before its first byte reached the client (Fastify has not
  // written the status yet): answered like a reset before headers, never Fastify's JSON 500.
  app.setErrorHandler((_err, request, reply) => {
    const ctx = request.mg ?? newAccessLogContext()
    sendError(reply, ctx, ctx.responseFlags === 'UPE' ? Errors.UpstreamProtocolError : Errors.UpstreamReset)
  })

  return app
}

const DEFAULT_RETRY = retryPolicy(undefined)

function sendError (reply: FastifyReply<any, any, any, any>, ctx: AccessLogContext, e: ErrorSpec, extraFlag?: string): FastifyReply<any, any, any, any> {
  ctx.responseFlags = extraFlag === undefined ? e.flag : `${e.flag},${extraFlag}`
  if (reply.sent || reply.raw.headersSent) return reply
  const body = e.flag === 'UF' || e.flag === 'UC' ? resetBody(e, ctx, extraFlag === 'URX') : e.body
  ctx.bytesSent = Buffer.byteLength(body)
  reply.code(e.status)
  if (body !== '') reply.header('content-type', 'text/plain')
  // Envoy marks requests it dropped for overflow (router.cc onUpstreamAbort).
  if (e.flag === 'UO') reply.header('x-envoy-overloaded', 'true')
  // The unread rest of the request (a body over the limit, bytes after bad headers) is never parsed.
  if ((e as ErrorSpec).close === true && reply.request.raw.httpVersionMajor === 1) reply.header('connection', 'close')
  // An empty local reply has no content-type (Fastify would add text/plain for '').
  if (body === '') reply.send()
  else reply.send(body)
  return reply
}

/**
 * A local reply (redirect, direct response, fault abort, CORS preflight): the route's response
 * header operations apply, as Envoy applies them to direct responses.
 */
function sendLocal (
  reply: FastifyReply<any, any, any, any>, ctx: AccessLogContext, route: CompiledRoute, status: number,
  body: Buffer | undefined, headers: Record<string, string>, _fault = false
): FastifyReply<any, any, any, any> {
  const h: HeaderMap = { ...headers }
  applyHeaderOps(route.headers?.response, h)
  ctx.bytesSent = body?.length ?? 0
  reply.code(status)
  reply.headers(h)
  if (body === undefined || body.length === 0) reply.send()
  else reply.send(body)
  return reply
}

/** The header names a Connection header lists (RFC 9110 §7.6.1), lowercased. */
function connectionTokens (value: string): Set<string> {
  const out = new Set<string>()
  for (const name of value.toLowerCase().split(',')) out.add(name.trim())
  return out
}

/** Request headers for matching with repeated ones kept apart (cookie stays joined, as sent). */
function distinctHeaders (raw: IncomingMessage): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = { ...raw.headers }
  for (const [k, v] of Object.entries(raw.headersDistinct)) if (v !== undefined && v.length > 1 && k !== 'cookie') out[k] = v
  return out
}

/**
 * Envoy's body for a reset before headers (router.cc onUpstreamReset): the reset reason, with
 * the transport failure reason for connect failures, "retried and the latest reset reason" after
 * retries.
 */
function resetBody (e: ErrorSpec, ctx: AccessLogContext, retried: boolean): string {
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

/** Wait `ms`, unless the client goes away first (returns true then). */
function delay (ms: number, res: import('node:http').ServerResponse): Promise<boolean> {
  return new Promise(resolve => {
    const onClose = (): void => { clearTimeout(timer); resolve(true) }
    const timer = setTimeout(() => { res.off('close', onClose); resolve(false) }, ms)
    res.once('close', onClose)
  })
}

/** The consistent-hash key of a request, and a cookie to set when Envoy would generate one. */
function consistentHashKey (
  ch: NonNullable<NonNullable<ClusterState['spec']['policy']['loadBalancer']>['consistentHash']>,
  facts: RequestFacts,
  remoteAddress: string
): { key?: string; setCookie?: string } {
  if (ch.httpHeaderName !== undefined) return { key: headerValue(facts, ch.httpHeaderName.toLowerCase()) }
  if (ch.useSourceIp === true) return { key: remoteAddress }
  if (ch.httpQueryParameterName !== undefined) return { key: queryParams(facts).get(ch.httpQueryParameterName) }
  if (ch.httpCookie !== undefined) {
    const name = ch.httpCookie.name
    const cookie = headerValue(facts, 'cookie')
    if (cookie !== undefined) {
      for (const part of cookie.split(/;\s*/)) {
        const eq = part.indexOf('=')
        if (eq > 0 && part.slice(0, eq) === name) return { key: part.slice(eq + 1) }
      }
    }
    // Envoy generates the cookie when it is missing and a ttl is set.
    if (ch.httpCookie.ttl !== undefined) {
      const value = randomBytes(8).toString('hex')
      const ttlS = Math.round((parseDurationMs(ch.httpCookie.ttl) ?? 0) / 1000)
      const attrs = [`${name}=${value}`, ...(ttlS > 0 ? [`Max-Age=${ttlS}`] : []), ...(ch.httpCookie.path !== undefined ? [`Path=${ch.httpCookie.path}`] : []), 'HttpOnly']
      return { key: value, setCookie: attrs.join('; ') }
    }
  }
  return {}
}

/** W3C traceparent or B3 trace id, else '-'. */
function traceIdOf (h: IncomingMessage['headers']): string {
  const tp = h.traceparent
  if (typeof tp === 'string' && tp.length >= 35) return tp.slice(3, 35)
  const b3 = h['x-b3-traceid']
  return typeof b3 === 'string' && b3 !== '' ? b3 : '-'
}

/** Turn an absolute-form target into origin-form, moving its authority into Host. */
function absoluteFormToOrigin (req: IncomingMessage): string {
  const url = req.url ?? '/'
  if (url.startsWith('/')) return url
  const m = /^http:\/\/([^/?#]+)([^#]*)/i.exec(url)
  if (m === null) return url
  req.headers.host = m[1]
  const rest = m[2] === '' ? '/' : m[2].startsWith('/') ? m[2] : `/${m[2]}`
  req.url = rest
  return rest
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

/**
 * One port, two protocols: HTTP/1.1 and HTTP/2 cleartext with prior knowledge (gRPC clients).
 * The first bytes of each connection are read: the HTTP/2 connection preface hands the socket
 * to an http2 server, anything else to the HTTP/1.1 server; the bytes read are put back first.
 * A connection that sends nothing decisive is closed after `sniffTimeoutMs`.
 */
function polyglotServer (
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  httpOptions: Record<string, unknown>,
  h2Options: Record<string, unknown>,
  sniffTimeoutMs: number,
  sessions: Set<Http2Session>
): Http1Server {
  const h1 = createHttp1Server(httpOptions, handler)
  const h2 = createH2cServer(h2Options, handler as unknown as Parameters<typeof createH2cServer>[1])
  h2.on('session', (s: Http2Session) => { sessions.add(s); s.once('close', () => sessions.delete(s)) })
  const h1Connection = h1.listeners('connection') as Array<(socket: Socket) => void>
  h1.removeAllListeners('connection')
  h1.on('connection', (socket: Socket) => {
    let seen: Buffer = Buffer.alloc(0)
    const timer = setTimeout(() => socket.destroy(), sniffTimeoutMs)
    const onError = (): void => { clearTimeout(timer); socket.destroy() }
    socket.once('error', onError)
    const onReadable = (): void => {
      let chunk: Buffer | null
      while ((chunk = socket.read() as Buffer | null) !== null) seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk])
      const n = Math.min(seen.length, H2_PREFACE.length)
      const isH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n))
      if (isH2 && n < H2_PREFACE.length) return // a prefix of the preface so far: wait for more
      socket.off('readable', onReadable)
      socket.off('error', onError)
      clearTimeout(timer)
      socket.unshift(seen)
      if (isH2) h2.emit('connection', socket)
      else for (const l of h1Connection) l.call(h1, socket)
    }
    socket.on('readable', onReadable)
  })
  // The shutdown deadline destroys what is left: HTTP/2 sessions too, not only HTTP/1 sockets.
  const closeAll = h1.closeAllConnections.bind(h1)
  h1.closeAllConnections = () => { closeAll(); for (const s of sessions) s.destroy() }
  return h1
}
