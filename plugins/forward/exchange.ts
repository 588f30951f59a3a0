import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import { type ErrorSpec, Errors } from '../../src/errors.js'
import type { FallbackDecision } from '../../src/resilience/fallback.js'
import { type TryFailure, backoffMs, isRetriable } from '../../src/resilience/retry.js'
import { type ForwardPlan, type HealthView, resolveDestination } from '../../src/routing/decide.js'
import type { HeaderMap } from '../../src/routing/headers.js'
import type { ClusterState } from '../../src/runtime/cluster-state.js'
import type { RuntimeState } from '../../src/runtime/state.js'
import { type EndpointState, Flag } from '../../src/upstream/endpoint.js'
import type { Outcome } from '../../src/upstream/outlier.js'
import { type AccessLogContext, logFallback } from '../access-log.js'
import type { ClusterPools } from '../pools.js'
import { sendError } from '../reply/local.js'
import type { RequestTrace } from '../tracing.js'
import { type CountedBody, RETRY_BUFFER_BYTES, countBody, readBody } from './body.js'
import { chooseEndpoint, consistentHashKey, hostPort, originOf } from './endpoint.js'
import { mirror } from './mirror.js'
import { writeHead } from './response.js'
import { effectiveTimeoutMs } from './grpc-timeout.js'
import { H2Try } from './h2-try.js'
import { UpstreamTry, type ForwardTry, type TryOwner, classify, errCode, failureReason, isFailedConnectAttempt, isProtocolError } from './try.js'

/** What every exchange of a listener shares. */
export interface ExchangeEnv {
  runtime: RuntimeState
  pools: ClusterPools
  random: () => number
  server: string
  /** Request body limit for bodies without Content-Length (counted while streaming), 0 = none. */
  maxBodyBytes: number
  /** Shutdown has begun: responses close their connection. */
  drain: { on: boolean }
}

/** One request's way upstream, as the listener hands it over. */
export interface ExchangeInput {
  ctx: AccessLogContext
  req: IncomingMessage
  res: ServerResponse
  plan: ForwardPlan
  /** Request headers for upstream (header policy applied). */
  headers: HeaderMap
  hasBody: boolean
  /** The clusters of the request's snapshot: they decide what exists for it. */
  clusters: ReadonlyMap<string, unknown>
  remoteAddress: string
  /** False when the plan's resolution may be stale (a fault delay ran): resolve again. */
  resolutionFresh: boolean
  /** The request's spans, when tracing is on: each try is a client span under them. */
  trace?: RequestTrace
}

const ABORTED = Object.assign(new Error('aborted by the gateway'), { name: 'AbortError' })

/**
 * The retry loop of one request, Istio's semantics: before each try the destination is
 * resolved (ASM fallback by health), an endpoint is chosen (balancer, previous hosts, breaker,
 * pool admission), and the try is dispatched with per-try and route timeouts. A try's response
 * head is inspected before anything is written to the client, so a retriable answer never
 * leaks; the chosen response then streams straight to the raw ServerResponse. All callbacks
 * are methods of this one object: the common case allocates no closures.
 */
export class Exchange implements TryOwner, HealthView {
  private body: Buffer | Readable | null = null
  private replayable = true
  private tooLarge = false
  private attempt = 0
  /** Endpoints tried so far, once there was more than one try; the first try's is `firstTried`. */
  private tried: Set<EndpointState> | undefined = undefined
  private firstTried: EndpointState | undefined = undefined
  private lastFailure: ErrorSpec | undefined = undefined
  private current: ForwardTry | undefined = undefined
  private cluster: ClusterState | undefined = undefined
  private ep: EndpointState | undefined = undefined
  private settle: ((ok: boolean) => void) | undefined = undefined
  private inFlight = false
  private isRetry = false
  private routeTimer: NodeJS.Timeout | undefined = undefined
  private perTryTimer: NodeJS.Timeout | undefined = undefined
  private backoffTimer: NodeJS.Timeout | undefined = undefined
  private perTryTimedOut = false
  private routeTimedOut = false
  private clientGone = false
  private committed = false
  private finished = false
  private startedAt = 0n
  private setCookie: string | undefined = undefined
  private draining = false
  /** The upstream sent no Content-Length: bytes_sent is counted chunk by chunk. */
  private countSent = false
  /** The one transparent resend after a reset before any response byte was used. */
  private resetRetried = false
  /** Bytes of a sized body still to come. */
  private remaining = -1
  /** The response was ended with its last chunk. */
  private ended = false
  /** The route timeout, or the gRPC deadline when shorter (0 = none). */
  private timeoutMs = 0

  constructor (private readonly env: ExchangeEnv, private readonly x: ExchangeInput) {}

  /** HealthView for the fallback resolution: the runtime's health of the snapshot's clusters. */
  hasHealthy (name: string): boolean {
    return this.env.runtime.cluster(name)?.hasHealthy() === true
  }

  /** Start: prepare the body, arm the route timeout, run the first try. */
  run (): void {
    const { x } = this
    const retry = x.plan.retry
    if (x.hasBody) {
      const cl = Number(x.req.headers['content-length'])
      if (retry.attempts > 0 && Number.isFinite(cl) && cl <= RETRY_BUFFER_BYTES) {
        readBody(x.req, RETRY_BUFFER_BYTES).then(buf => {
          if (buf === undefined || this.clientGone) return // client went away
          this.body = buf
          x.ctx.bytesReceived = buf.length
          this.begin()
        }, () => {})
        return
      }
      // An HTTP/2 body of unknown length (every gRPC call) streams with a copy kept for retries.
      const keep = retry.attempts > 0 && x.req.httpVersionMajor === 2 ? RETRY_BUFFER_BYTES : 0
      this.body = Number.isFinite(cl) ? x.req : countBody(x.req, x.ctx, this.env.maxBodyBytes, () => { this.tooLarge = true }, keep)
      this.replayable = false
    }
    this.begin()
  }

  private begin (): void {
    const { plan } = this.x
    if (plan.mirrors !== undefined) {
      this.body = mirror({ mirrors: plan.mirrors, port: plan.port, method: this.x.ctx.method, path: plan.path, headers: this.x.headers, body: this.body },
        this.env.runtime, this.env.pools, this.env.random)
    }
    const gt = this.x.headers['grpc-timeout']
    this.timeoutMs = gt === undefined ? plan.timeoutMs : effectiveTimeoutMs(plan.timeoutMs, gt)
    if (this.timeoutMs > 0) this.routeTimer = setTimeout(onRouteTimeout, this.timeoutMs, this)
    this.next(this.x.resolutionFresh ? plan.resolution : undefined)
  }

  /** One try: resolve, choose, dispatch. */
  private next (given: FallbackDecision | undefined): void {
    if (this.clientGone || this.finished) return
    const { ctx, plan } = this.x
    const decision = given ?? resolveDestination(plan.dest, plan.port, { clusters: this.x.clusters, health: this })
    logFallback(ctx, decision)
    if (decision.cluster === undefined) {
      if (this.lastFailure !== undefined && decision.fallbackCluster === undefined) return this.fail(this.lastFailure, 'URX')
      return this.fail(decision.failure === 'NC' ? Errors.NoCluster : Errors.NoHealthyUpstream)
    }
    const cluster = this.env.runtime.cluster(decision.cluster)!
    cluster.stats.requests++
    const retry = plan.retry
    const isRetry = this.attempt > 0
    let hashKey: string | undefined
    if (cluster.spec.policy.loadBalancer?.consistentHash !== undefined) {
      const h = consistentHashKey(cluster, plan.facts, this.x.remoteAddress)
      hashKey = h.key
      if (h.setCookie !== undefined) this.setCookie = h.setCookie
    }
    // The set of tried hosts is built when a second try begins: most requests have one try.
    if (this.firstTried !== undefined && this.tried === undefined) this.tried = new Set([this.firstTried])
    const choice = chooseEndpoint(cluster, this.env.random, hashKey, retry.ignorePreviousHosts ? this.tried : undefined, isRetry)
    if (choice.kind === 'overflow') return this.fail(Errors.Overflow)
    if (choice.kind === 'none') return this.lastFailure !== undefined ? this.fail(this.lastFailure, 'URX') : this.fail(Errors.NoHealthyUpstream)
    const ep = choice.ep
    if (this.tried === undefined) this.firstTried = ep
    else this.tried.add(ep)
    this.cluster = cluster
    this.ep = ep
    this.settle = choice.settle
    ctx.upstreamHost = hostPort(ep)
    ctx.upstreamTransportFailureReason = '-'
    ctx.upstreamLabels = ep.spec.labels
    this.isRetry = isRetry
    if (isRetry) { cluster.activeRetries++; cluster.stats.retries++ }
    ep.active++
    ep.requests++
    cluster.active++
    this.inFlight = true
    this.perTryTimedOut = false
    // Envoy's router headers: the try number (Istio sets include_request_attempt_count) and
    // the time the upstream has (the per-try timeout, else the route timeout).
    const headers = this.x.headers
    headers['x-envoy-attempt-count'] = String(this.attempt + 1)
    const expectMs = retry.perTryTimeoutMs > 0 ? retry.perTryTimeoutMs : this.timeoutMs
    if (expectMs > 0) headers['x-envoy-expected-rq-timeout-ms'] = String(expectMs)
    if (retry.perTryTimeoutMs > 0) this.perTryTimer = setTimeout(onPerTryTimeout, retry.perTryTimeoutMs, this)
    this.x.trace?.startTry(headers, decision.cluster, ctx.upstreamHost)
    this.startedAt = process.hrtime.bigint()
    const spec = cluster.spec
    const req = { origin: originOf(cluster, ctx.upstreamHost), path: plan.path, method: ctx.method, headers, body: this.body }
    if (spec.upstreamProtocol === undefined) {
      const t = new UpstreamTry(this)
      this.current = t
      t.start(this.env.pools.get(spec.name, cluster.limits, spec.policy.tls), req)
    } else {
      const t = new H2Try(this, this.env.pools.h2(spec.name, cluster.limits, spec.policy.tls, spec.policy.connectionPool?.http?.maxConcurrentStreams), this.env.pools.idleTimeoutMs)
      this.current = t
      t.start(req)
    }
  }

  /** Counters of the try in flight are released once (end, failure, retry, client gone). */
  private release (): void {
    if (!this.inFlight) return
    this.inFlight = false
    this.ep!.active--
    this.cluster!.active--
    if (this.isRetry) this.cluster!.activeRetries--
  }

  private clearPerTry (): void {
    if (this.perTryTimer !== undefined) { clearTimeout(this.perTryTimer); this.perTryTimer = undefined }
  }

  onTryHeaders (t: ForwardTry, status: number, raw: Buffer[], endStream?: boolean): boolean {
    if (t !== this.current) return true
    this.clearPerTry()
    const { ctx, plan, res } = this.x
    ctx.upstreamServiceTime = Number((process.hrtime.bigint() - this.startedAt) / 1000000n)
    const cluster = this.cluster!
    cluster.record(this.ep!, responseOutcome(status))
    this.x.trace?.tryStatus(status)
    this.settle?.(status < 500)
    const retry = plan.retry
    let grpc: number | undefined
    if (status < 500 && retry.grpc) grpc = grpcStatusOf(raw)
    const failure: TryFailure | undefined = status >= 500 || grpc !== undefined ? { kind: 'status', status, ...(grpc !== undefined ? { grpcStatus: grpc } : {}) } : undefined
    const retriable = failure !== undefined && isRetriable(retry, failure)
    if (retriable && !this.routeTimedOut && this.attempt < retry.attempts && this.canReplay()) {
      this.current = undefined
      t.abort(ABORTED)
      this.release()
      this.retryAfterBackoff()
      return true
    }
    if (retriable && this.attempt > 0) ctx.responseFlags = 'URX'
    this.committed = true
    // A response whose head goes out after shutdown began closes its connection too.
    if (this.env.drain.on && res.req.httpVersionMajor === 1) res.shouldKeepAlive = false
    let len: number
    try {
      len = writeHead(res, status, raw, plan, { server: this.env.server, serviceTimeMs: ctx.upstreamServiceTime, setCookie: this.setCookie, cors: plan.cors }, endStream)
    } catch (err) {
      // A header Node refuses to write (a character not allowed in a field value): 502 UPE, as
      // for any answer that is not valid HTTP; nothing has been sent yet.
      this.committed = false
      this.current = undefined
      t.abort(ABORTED)
      this.release()
      ctx.upstreamTransportFailureReason = errCode(err) ?? 'invalid header'
      this.fail(Errors.UpstreamProtocolError)
      return true
    }
    if (len >= 0) ctx.bytesSent = len
    this.countSent = len < 0
    this.remaining = len
    return true
  }

  onTryData (t: ForwardTry, chunk: Buffer): boolean {
    if (t !== this.current || this.clientGone) return true
    if (this.countSent) this.x.ctx.bytesSent += chunk.length
    else if ((this.remaining -= chunk.length) === 0) {
      // The last bytes of a sized body go out with the end: one write instead of two.
      this.ended = true
      this.x.res.end(chunk)
      return true
    }
    if (this.x.res.write(chunk)) return true
    // Downstream is slow: pause the upstream until it drains (one listener, only when needed).
    if (!this.draining) {
      this.draining = true
      this.x.res.once('drain', () => { this.draining = false; this.current?.resume() })
    }
    return false
  }

  /** HTTP/2 trailers (gRPC's status) go to the client with the end of the response. */
  onTryTrailers (t: ForwardTry, trailers: Readonly<Record<string, string | string[] | undefined>>): void {
    if (t !== this.current || this.clientGone || this.ended) return
    const out: Record<string, string | string[]> = {}
    for (const name in trailers) {
      const v = trailers[name]
      if (v !== undefined && name.charCodeAt(0) !== 58 /* : */) out[name] = v
    }
    this.x.res.addTrailers(out)
  }

  onTryEnd (t: ForwardTry): void {
    if (t !== this.current) return
    this.release()
    this.x.trace?.endTry()
    this.done()
    if (!this.ended) this.x.res.end()
  }

  onTryError (t: ForwardTry, err: Error): void {
    if (t !== this.current) return
    this.clearPerTry()
    this.release()
    const { ctx } = this.x
    if (this.clientGone) return
    this.x.trace?.endTry(this.perTryTimedOut || this.routeTimedOut ? 'timeout' : errCode(err) ?? err.message)
    if (this.committed) {
      // The body fails after the status went out (reset, short body, idle timeout): the client's
      // response is aborted, never completed; the log says why.
      ctx.responseFlags = isProtocolError(err) ? 'UPE' : this.routeTimedOut || errCode(err) === 'UND_ERR_BODY_TIMEOUT' ? 'UT' : 'UC'
      ctx.upstreamTransportFailureReason = errCode(err) ?? err.message
      this.done()
      this.x.res.destroy()
      return
    }
    const cluster = this.cluster!
    const ep = this.ep!
    // A streamed body over the limit: the client's fault, not the endpoint's.
    if (this.tooLarge) { this.settle?.(true); return this.fail(Errors.PayloadTooLarge) }
    const failure = classify(err, this.perTryTimedOut || this.routeTimedOut)
    ctx.upstreamTransportFailureReason = failureReason(err, failure)
    this.settle?.(false)
    // Not HTTP (CL with TE, a bad status line) or a header undici refuses to write (CR/LF):
    // 502 UPE, never retried; outlier detection counts it as a 502, the host is not marked down.
    if (isProtocolError(err)) {
      cluster.record(ep, { kind: 'response', status: 502 })
      return this.fail(Errors.UpstreamProtocolError)
    }
    // Only a failed connection attempt marks the host down at once (probes bring it back); every
    // failure feeds outlier detection as a local-origin failure.
    if (isFailedConnectAttempt(err)) ep.host.set(Flag.FailedConnect, true)
    if (failure.kind !== 'status') cluster.record(ep, { kind: 'local', error: failure.kind })
    const spec = failure.kind === 'timeout' ? Errors.UpstreamTimeout : failure.kind === 'connect' ? Errors.UpstreamConnectFailure
      : failure.kind === 'reset' && failure.refused === true ? Errors.UpstreamRefusedStream : Errors.UpstreamReset
    // A reset before any response byte, once per request: most often a pooled connection the
    // upstream closed as the request went out (the keep-alive race). Sent again at once, to the
    // same host if need be, and not counted as a retry, as Envoy does for a request that never
    // reached the upstream. A refused HTTP/2 stream is left to the policy (`refused-stream`).
    if (failure.kind === 'reset' && failure.refused !== true && !this.resetRetried && this.canReplay() && !this.routeTimedOut) {
      this.resetRetried = true
      if (this.tried === undefined) this.firstTried = undefined
      else this.tried.delete(ep)
      this.next(undefined)
      return
    }
    const retry = this.x.plan.retry
    if (!this.routeTimedOut && this.attempt < retry.attempts && this.canReplay() && isRetriable(retry, failure)) {
      this.lastFailure = spec
      this.retryAfterBackoff()
      return
    }
    this.fail(spec, this.attempt > 0 && this.attempt >= retry.attempts && isRetriable(retry, failure) ? 'URX' : undefined)
  }

  /** Can the body be sent again? A streamed body that ended within its kept copy becomes that copy. */
  private canReplay (): boolean {
    if (this.replayable) return true
    const copy = (this.body as CountedBody | null)?.replay?.()
    if (copy === undefined) return false
    this.body = copy
    this.replayable = true
    return true
  }

  private retryAfterBackoff (): void {
    const ms = backoffMs(this.x.plan.retry, this.attempt, this.env.random)
    this.attempt++
    if (ms <= 0) { this.next(undefined); return }
    this.backoffTimer = setTimeout(onBackoff, ms, this)
  }

  /** Backoff over: the next try. */
  resumeAfterBackoff (): void {
    this.backoffTimer = undefined
    this.next(undefined)
  }

  /** The route timeout fired: the try in flight is aborted, the request answered 504 UT. */
  routeTimeout (): void {
    this.routeTimer = undefined
    this.routeTimedOut = true
    if (this.backoffTimer !== undefined) {
      clearTimeout(this.backoffTimer)
      this.backoffTimer = undefined
      return this.fail(Errors.UpstreamTimeout)
    }
    this.current?.abort(ABORTED)
  }

  perTryTimeout (): void {
    this.perTryTimer = undefined
    this.perTryTimedOut = true
    this.current?.abort(ABORTED)
  }

  /** The client went away: abort what is in flight, release everything. */
  clientClosed (): void {
    if (this.finished) return
    this.clientGone = true
    const t = this.current
    this.current = undefined
    t?.abort(ABORTED)
    this.release()
    this.done()
  }

  private fail (e: ErrorSpec, extraFlag?: string): void {
    this.done()
    sendError(this.x.res, this.x.ctx, e, this.env.server, extraFlag)
  }

  private done (): void {
    if (this.finished) return
    this.finished = true
    this.clearPerTry()
    if (this.routeTimer !== undefined) { clearTimeout(this.routeTimer); this.routeTimer = undefined }
    if (this.backoffTimer !== undefined) { clearTimeout(this.backoffTimer); this.backoffTimer = undefined }
  }
}

function onRouteTimeout (x: Exchange): void { x.routeTimeout() }

/** One outcome object per status for outlier detection, which only reads it. */
const OUTCOMES = new Map<number, Outcome>()
function responseOutcome (status: number): Outcome {
  let o = OUTCOMES.get(status)
  if (o === undefined) {
    o = Object.freeze({ kind: 'response', status })
    if (OUTCOMES.size < 1000) OUTCOMES.set(status, o)
  }
  return o
}
function onPerTryTimeout (x: Exchange): void { x.perTryTimeout() }
function onBackoff (x: Exchange): void { x.resumeAfterBackoff() }

function grpcStatusOf (raw: Buffer[]): number | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 11 && raw[i].toString('latin1').toLowerCase() === 'grpc-status') return Number(raw[i + 1].toString('latin1'))
  }
  return undefined
}
