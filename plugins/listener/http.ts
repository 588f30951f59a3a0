import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2Session } from 'node:http2'
import type { FastifyPluginCallback } from 'fastify'
import type { ListenerSpec, Snapshot } from '../../src/compile/snapshot.js'
import { Errors } from '../../src/errors.js'
import { type DecisionContext, type ForwardPlan, type HealthView, type LocalPlan, type Plan, decide, routeOf } from '../../src/routing/decide.js'
import { applyDownstreamPolicy, upstreamHeaders } from '../../src/routing/header-policy.js'
import type { PathPolicy } from '../../src/routing/path.js'
import type { SnapshotStore } from '../../src/runtime/store.js'
import type { RuntimeState } from '../../src/runtime/state.js'
import type { AccessLogContext, AccessLogWriter } from '../access-log.js'
import { Exchange, type ExchangeEnv } from '../forward/exchange.js'
import type { Metrics } from '../metrics.js'
import { OverloadGuard } from '../overload.js'
import type { ClusterPools } from '../pools.js'
import type { RequestTrace, Tracing } from '../tracing.js'
import { sendError, sendLocal, serverName } from '../reply/local.js'
import { checkHeaders, hasRepeatedHeaders, matchHeaders, openContext, peerOf } from './intake.js'
import type { RequestLimits } from './limits.js'
import { type Denial, type SecurityEnv, type SecurityStats, type TokenVerifier, checkSecurity } from './security.js'
import { attachUpgrade } from './upgrade.js'

/** What a listener plugin is fed with. */
export interface ListenerPluginOptions {
  kind: 'gateway' | 'mesh'
  /** The Gateway server port this listener serves (its routes); the bind port may differ. */
  configPort: number
  /** The snapshot store: the plugin serves whatever Gateway and VirtualService configuration it holds. */
  store: SnapshotStore
  runtime: RuntimeState
  pools: ClusterPools
  accessLog: AccessLogWriter
  metrics?: Metrics
  /** Shared count of requests in flight (for shutdown and the admin API). */
  counters: { inFlight: number }
  drain: { on: boolean }
  /** The listener's HTTP/2 sessions (GOAWAY when the drain begins). */
  sessions: Set<Http2Session>
  random: () => number
  now: () => number
  limits: RequestLimits
  /** `https` on TLS listeners. */
  scheme: string
  /** JWT verification for RequestAuthentication (one verifier per gateway: its JWKS cache outlives reloads). */
  verifier: TokenVerifier
  securityStats: SecurityStats
  /** Distributed tracing; undefined when off (the request path then pays one check). */
  tracing?: Tracing
}

/** The state of one request between its stages, kept on its response. */
interface Scope {
  ctx: AccessLogContext
  exchange: Exchange | undefined
  /** The client went away during a fault delay. */
  gone: boolean
  logged: boolean
  listener: ListenerState
  /** The request's spans, when tracing is on. */
  trace: RequestTrace | undefined
}

const kScope = Symbol('meshgate.scope')
type ScopedResponse = ServerResponse & { [kScope]?: Scope }

/** The listener's view of the configuration and its collaborators. */
class ListenerState implements HealthView {
  spec: ListenerSpec | undefined
  snapshot: Snapshot
  readonly mesh: boolean
  readonly name: string
  readonly server: string
  readonly env: ExchangeEnv
  readonly guard: OverloadGuard | undefined
  readonly pathPolicy: PathPolicy
  readonly security: SecurityEnv
  private context: DecisionContext

  constructor (readonly o: ListenerPluginOptions) {
    this.mesh = o.kind === 'mesh'
    this.name = this.mesh ? 'mesh' : String(o.configPort)
    this.server = serverName(this.mesh)
    this.snapshot = o.store.current
    this.pathPolicy = { normalization: o.limits.pathNormalization, escapedSlashes: o.limits.escapedSlashes }
    this.spec = this.specOf(this.snapshot)
    this.context = this.makeContext()
    this.security = { mesh: this.mesh, configPort: o.configPort, numTrustedProxies: o.limits.numTrustedProxies, verifier: o.verifier, stats: o.securityStats }
    this.env = { runtime: o.runtime, pools: o.pools, random: o.random, server: this.server, maxBodyBytes: o.limits.maxRequestBodyBytes, drain: o.drain }
    // Overload guard (Envoy overload manager): sampled on a timer, so a request reads one field.
    this.guard = o.limits.overload === false ? undefined : new OverloadGuard(o.limits.overload)
    o.store.onSwap(next => { this.snapshot = next; this.spec = this.specOf(next); this.context = this.makeContext() })
  }

  specOf (snap: Snapshot): ListenerSpec | undefined {
    return this.mesh ? snap.mesh : snap.gateways.find(l => l.port === this.o.configPort)
  }

  hasHealthy (name: string): boolean {
    return this.o.runtime.cluster(name)?.hasHealthy() === true
  }

  /**
   * The decision context of a request: the snapshot it starts on, read once. It changes only
   * with the snapshot, so one object per snapshot serves every request (the decision only reads it).
   */
  decisionContext (): DecisionContext {
    return this.context
  }

  private makeContext (): DecisionContext {
    return Object.freeze({ listener: this.spec, clusters: this.snapshot.clusters, health: this, pathPolicy: this.pathPolicy, random: this.o.random })
  }
}

/**
 * One proxy listener as an encapsulated Fastify plugin. Every request is answered in its
 * `onRequest` hook on the raw request and response (the reply is hijacked: no body parsing,
 * no reply serialization, no hook chain after it). The request path, top to bottom:
 * overload guard → downstream header policy → header checks → the routing decision (the same
 * pure function upgrades and the admin API's explain call) → a local reply, or the exchange
 * that forwards upstream → one access-log line when the response closes.
 */
export const listenerPlugin: FastifyPluginCallback<ListenerPluginOptions> = (app, o, done) => {
  const L = new ListenerState(o)
  if (L.guard !== undefined) app.addHook('onClose', (_app, next) => { L.guard!.close(); next() })
  attachUpgrade(app.server, {
    mesh: L.mesh,
    configPort: o.configPort,
    scheme: o.scheme,
    current: () => L.decisionContext(),
    runtime: o.runtime,
    log: (ctx, status, ms) => logLine(L, ctx, status, ms),
    random: o.random,
    now: o.now,
    limits: o.limits,
    server: L.server,
    snapshot: () => L.snapshot,
    security: L.security,
    tracing: o.tracing
  })
  app.addHook('onRequest', (request, reply, _next) => {
    reply.hijack()
    handle(L, request.raw, reply.raw)
  })
  // Every request is answered in onRequest; this route only exists so Fastify has one.
  app.all('*', (_req, reply) => { reply.hijack() })
  done()
}

function handle (L: ListenerState, req: IncomingMessage, res: ScopedResponse): void {
  const o = L.o
  const repeated = hasRepeatedHeaders(req)
  o.counters.inFlight++
  const ctx = openContext(req, L.name, o.now)
  if (o.drain.on) drainConnection(L, res)
  const trace = o.tracing?.start(req.headers, ctx, L.mesh, o.scheme)
  const scope: Scope = { ctx, exchange: undefined, gone: false, logged: false, listener: L, trace }
  res[kScope] = scope
  // 'close' is emitted once; `on` spares the wrapper `once` builds and removes per request.
  res.on('close', onResponseClose)
  if (L.guard?.reason !== undefined) {
    ctx.upstreamTransportFailureReason = L.guard.reason
    return sendError(res, ctx, Errors.Overloaded, L.server)
  }
  const headers = req.headers
  const remoteAddress = peerOf(req).address
  ctx.xForwardedFor = applyDownstreamPolicy(headers, { mesh: L.mesh, remoteAddress })
  const bad = checkHeaders(req, o.limits)
  if (bad !== undefined) return sendError(res, ctx, bad, L.server)
  const snap = L.snapshot
  const dc = L.decisionContext()
  const plan = decide({
    method: ctx.method,
    scheme: o.scheme,
    authority: headers.host ?? '',
    target: req.url ?? '/',
    headers: matchHeaders(req, repeated),
    listenerPort: L.mesh ? undefined : o.configPort,
    localPort: req.socket.localPort
  }, dc)
  const route = routeOf(plan)
  if (route !== undefined) ctx.routeName = route.name
  // Security resources only cost a request anything when the configuration has some.
  if (snap.security !== undefined) {
    const d = checkSecurity(snap.security, plan, req, remoteAddress, ctx.xForwardedFor, snap.clusters, L.security)
    if (d instanceof Promise) {
      d.then(x => afterSecurity(scope, req, res, plan, dc.clusters, x), () => afterSecurity(scope, req, res, plan, dc.clusters, { error: Errors.JwtDenied }))
      return
    }
    if (d !== undefined) return deny(scope, res, d)
  }
  proceed(scope, req, res, plan, dc.clusters)
}

/** After the security stage: a denial, or the plan (a fault delay first). */
function afterSecurity (scope: Scope, req: IncomingMessage, res: ScopedResponse, plan: Plan, clusters: ReadonlyMap<string, unknown>, d: Denial | undefined): void {
  if (scope.gone || res.destroyed) return
  if (d !== undefined) return deny(scope, res, d)
  proceed(scope, req, res, plan, clusters)
}

function deny (scope: Scope, res: ScopedResponse, d: Denial): void {
  scope.ctx.upstreamCluster = '-'
  scope.ctx.responseCodeDetails = d.error.details
  sendError(res, scope.ctx, d.error, scope.listener.server, undefined, d.headers)
}

function proceed (scope: Scope, req: IncomingMessage, res: ScopedResponse, plan: Plan, clusters: ReadonlyMap<string, unknown>): void {
  const ctx = scope.ctx
  if ('delayMs' in plan && plan.delayMs !== undefined) {
    ctx.responseFlags = 'DI'
    setTimeout(afterDelay, plan.delayMs, scope, req, res, plan, clusters)
    return
  }
  serve(scope, req, res, plan, clusters, true)
}

/**
 * Shutdown has begun: this response closes its HTTP/1 connection (Connection: close), so a
 * keep-alive client opens its next request elsewhere instead of meeting a closed socket; HTTP/2
 * sessions get GOAWAY first, once.
 */
function drainConnection (L: { o: { sessions: Set<Http2Session> } }, res: ServerResponse): void {
  if (res.req.httpVersionMajor === 1) { res.shouldKeepAlive = false; return }
  for (const s of L.o.sessions) if (!s.closed && !s.destroyed) s.close()
}

function afterDelay (scope: Scope, req: IncomingMessage, res: ScopedResponse, plan: Plan, clusters: ReadonlyMap<string, unknown>): void {
  if (!scope.gone) serve(scope, req, res, plan, clusters, false)
}

/** The plan carried out: a local reply, or the exchange upstream. */
function serve (scope: Scope, req: IncomingMessage, res: ScopedResponse, plan: Plan, clusters: ReadonlyMap<string, unknown>, fresh: boolean): void {
  const { ctx, listener: L } = scope
  switch (plan.kind) {
    case 'reject':
      return sendError(res, ctx, plan.error!, L.server)
    case 'redirect':
      return sendLocal(res, ctx, undefined, plan.status!, undefined, { location: plan.location! }, L.server)
    case 'error':
      if (plan.flags !== '') ctx.responseFlags = plan.flags
      ctx.upstreamCluster = plan.upstreamCluster
      return sendError(res, ctx, plan.error, L.server)
    case 'local':
      return local(ctx, res, plan, L.server)
    case 'forward':
      return forward(scope, req, res, plan, clusters, fresh)
  }
}

function local (ctx: AccessLogContext, res: ServerResponse, plan: LocalPlan, server: string): void {
  if (plan.flags !== '') ctx.responseFlags = plan.flags
  if (plan.upstreamCluster !== '-') ctx.upstreamCluster = plan.upstreamCluster
  sendLocal(res, ctx, plan.route, plan.status, plan.body, plan.headers, server)
}

function forward (scope: Scope, req: IncomingMessage, res: ScopedResponse, plan: ForwardPlan, clusters: ReadonlyMap<string, unknown>, fresh: boolean): void {
  const { ctx, listener: L } = scope
  if (plan.flags !== '') ctx.responseFlags = plan.flags
  const bodyless = ctx.method === 'GET' || ctx.method === 'HEAD'
  const headers = upstreamHeaders(req.headers, plan, { mesh: L.mesh, scheme: L.o.scheme, bodyless })
  // The access log reads the request headers as the router left them (Envoy rewrites in place).
  ctx.authority = plan.authority
  // HTTP/2 frames the body itself: a stream that did not end with its HEADERS frame has one.
  const h2 = (req as unknown as { stream?: { endAfterHeaders: boolean } }).stream
  const cl = req.headers['content-length']
  const hasBody = !bodyless && (h2 !== undefined
    ? !h2.endAfterHeaders
    : req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0'))
  const x = new Exchange(L.env, { ctx, req, res, plan, headers, hasBody, clusters, remoteAddress: peerOf(req).address, resolutionFresh: fresh, trace: scope.trace })
  scope.exchange = x
  x.run()
}

/** The response closed (finished, or the client went away): stop the exchange, log once. */
function onResponseClose (this: ScopedResponse): void {
  const scope = this[kScope]
  if (scope === undefined || scope.logged) return
  scope.logged = true
  const ctx = scope.ctx
  let status = this.statusCode
  if (!this.writableFinished) {
    scope.gone = true
    scope.exchange?.clientClosed()
    // A client that goes away before the response completes: Envoy logs DC with code 0.
    if (ctx.responseFlags === '-') ctx.responseFlags = 'DC'
    status = 0
  }
  const L = scope.listener
  L.o.counters.inFlight--
  scope.trace?.end(ctx, status)
  logLine(L, ctx, status, Number((process.hrtime.bigint() - ctx.startHr) / 1000000n))
}

function logLine (L: ListenerState, ctx: AccessLogContext, status: number, ms: number): void {
  L.o.accessLog.log(ctx, status, ms)
  L.o.metrics?.record(ctx, status, ms)
}
