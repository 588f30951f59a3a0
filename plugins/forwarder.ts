import type { IncomingMessage, ServerResponse } from 'node:http'
import { PassThrough, Transform, type Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { CompiledDestination, CompiledRoute, DestinationTarget } from '../src/compile/snapshot.js'
import { clusterFor } from '../src/compile/compile.js'
import { shadowAuthority } from '../src/routing/actions.js'
import { Errors, type ErrorSpec } from '../src/errors.js'
import { applyHeaderOps, type HeaderMap } from '../src/routing/headers.js'
import { type ClusterHealthView, resolveFallback } from '../src/resilience/fallback.js'
import { admit } from '../src/resilience/pool.js'
import { type RetryPolicy, type TryFailure, backoffMs, isRetriable } from '../src/resilience/retry.js'
import type { ClusterState } from '../src/runtime/cluster-state.js'
import type { RuntimeState } from '../src/runtime/state.js'
import { type EndpointState, Flag } from '../src/upstream/endpoint.js'
import type { AccessLogContext } from './access-log.js'
import type { ClusterPools } from './pools.js'

/** Hop-by-hop headers (RFC 9110 §7.6.1) never forwarded in either direction. */
export const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']

/** Cluster existence as one snapshot sees it, health from the runtime state. */
class SnapshotView implements ClusterHealthView {
  constructor (private readonly clusters: ReadonlyMap<string, unknown>, private readonly runtime: RuntimeState) {}
  exists (name: string): boolean { return this.clusters.has(name) }
  hasHealthy (name: string): boolean { return this.runtime.cluster(name)?.hasHealthy() === true }
}

/** The shared empty exclusion set of a first try (never added to). */
const NO_HOSTS: Set<EndpointState> = new Set()

/** HOP_BY_HOP as a set, for the copy loops of the request path. */
export const HOP_BY_HOP_SET: ReadonlySet<string> = new Set(HOP_BY_HOP)

/** Largest request body buffered so that a retry can replay it. Bigger bodies stream, and are not retried. */
export const RETRY_BUFFER_BYTES = 64 * 1024

export interface ForwardJob {
  ctx: AccessLogContext
  route: CompiledRoute
  dest: CompiledDestination
  /** The port the caller addressed (picks the cluster of multi-port services). */
  port: number
  method: string
  path: string
  /** Request headers after forwarding rules and header operations. */
  headers: HeaderMap
  /** The client's request (body source, abort signal). */
  req: IncomingMessage
  res: ServerResponse
  hasBody: boolean
  retry: RetryPolicy
  /** Route timeout in ms, 0 = none. */
  timeoutMs: number
  /** Request body limit for bodies without Content-Length (counted while streaming), 0 = none. */
  maxBodyBytes?: number
  /** Consistent-hash key for the cluster's balancer, when it hashes. */
  hashKey: (cluster: ClusterState) => string | undefined
  /** Mirror targets: fire-and-forget copies (Envoy shadowing). */
  mirrors?: ReadonlyArray<{ target: DestinationTarget; fraction: number }>
  /**
   * The clusters of the snapshot the request started on: they decide what exists for it (a
   * cluster removed by a later reload still serves its retries; one this snapshot lacks is NC
   * even while a retiring cluster of that name drains).
   */
  clusters: ReadonlyMap<string, unknown>
}

/** Bytes a mirror may fall behind the primary before its copy is abandoned. */
export const MIRROR_LAG_BYTES = 1024 * 1024

export interface Sender {
  error: (spec: ErrorSpec, extraFlag?: string) => void
  response: (status: number, headers: HeaderMap, body: Readable) => void
}

/**
 * Forwards one request with Istio's semantics: fallback resolution by health before each try,
 * endpoint choice by the cluster's balancer (avoiding hosts already tried), connection-pool
 * admission (503 UO), the endpoint's breaker, per-try and route timeouts (504 UT), and retries
 * (Istio defaults) that re-resolve within the destination and its fallback. A try's response
 * is inspected before anything is written to the client, so a retriable answer never leaks.
 */
export class Forwarder {
  constructor (
    private readonly runtime: RuntimeState,
    private readonly pools: ClusterPools,
    private readonly random: () => number
  ) {}

  async forward (job: ForwardJob, send: Sender): Promise<void> {
    const { ctx, retry } = job
    // Body: bodyless requests replay freely; small bodies with a length are buffered (bounded)
    // so they can be replayed; anything else streams once and is not retried.
    let body: Buffer | Readable | null = null
    let replayable = true
    let tooLarge = false
    if (job.hasBody) {
      const cl = Number(job.req.headers['content-length'])
      if (retry.attempts > 0 && Number.isFinite(cl) && cl <= RETRY_BUFFER_BYTES) {
        const buf = await readBody(job.req, RETRY_BUFFER_BYTES)
        if (buf === undefined) return // client went away
        body = buf
        ctx.bytesReceived = buf.length
      } else {
        body = Number.isFinite(cl) ? job.req : countBody(job.req, ctx, 'received', job.maxBodyBytes, () => { tooLarge = true })
        replayable = false
      }
    }
    if (job.mirrors !== undefined) body = this.mirror(job, body)

    let current: TrySignal | undefined
    let clientGone = false
    let routeTimedOut = false
    const onClose = (): void => {
      if (!job.res.writableFinished) { clientGone = true; current?.abort() }
    }
    job.res.once('close', onClose)
    let routeTimer: NodeJS.Timeout | undefined
    if (job.timeoutMs > 0) {
      routeTimer = setTimeout(() => { routeTimedOut = true; current?.abort() }, job.timeoutMs)
    }
    const view = new SnapshotView(job.clusters, this.runtime)
    const tried = new Set<EndpointState>()
    // After a failed try, a retry that finds nothing to try reports that failure, as retries exhausted.
    let lastFailure: ErrorSpec | undefined
    try {
      for (let attempt = 0; ; attempt++) {
        const decision = resolveFallback(job.dest, job.port, view)
        ctx.upstreamCluster = decision.cluster ?? decision.primary
        if (decision.fallbackCluster !== undefined) {
          ctx.fallbackPath = `${decision.primary}:${decision.fallbackCluster}`
          ctx.fallbackResult = decision.result ?? '-'
          ctx.fallbackFinalCluster = decision.cluster ?? '-'
          if (decision.cluster === undefined) ctx.upstreamCluster = decision.primary
        } else {
          ctx.fallbackPath = '-'
          ctx.fallbackResult = '-'
          ctx.fallbackFinalCluster = '-'
        }
        if (decision.cluster === undefined) {
          if (lastFailure !== undefined && decision.fallbackCluster === undefined) { send.error(lastFailure, 'URX'); return }
          // Envoy has no cluster info for a cluster it does not know: %UPSTREAM_CLUSTER% is "-".
          if (decision.failure === 'NC' && decision.fallbackCluster === undefined) ctx.upstreamCluster = '-'
          send.error(decision.failure === 'NC' ? Errors.NoCluster : Errors.NoHealthyUpstream)
          return
        }
        const cluster = this.runtime.cluster(decision.cluster)!
        cluster.stats.requests++
        // A half-open breaker admits one trial: an endpoint whose breaker refuses is skipped
        // for another healthy one before the request is refused with UO.
        let ep: EndpointState | undefined
        let settle: ((ok: boolean) => void) | undefined
        let refused = false
        // Hosts to skip: those already tried (previous-host predicate), and breakers that refuse.
        let skipped: Set<EndpointState> = retry.ignorePreviousHosts && tried.size > 0 ? new Set(tried) : NO_HOSTS
        for (let k = 0; k < cluster.healthy.length; k++) {
          const cand = cluster.pick({ random: this.random, hashKey: job.hashKey(cluster), exclude: skipped })
          if (cand === undefined || (refused && skipped.has(cand))) break
          const b = cluster.breaker(cand)
          settle = b?.begin()
          if (b === undefined || settle !== undefined) { ep = cand; break }
          refused = true
          if (skipped === NO_HOSTS) skipped = new Set()
          skipped.add(cand)
        }
        if (ep === undefined && refused) {
          cluster.stats.overflows++
          send.error(Errors.Overflow)
          return
        }
        if (ep === undefined) {
          cluster.stats.noHealthy++
          if (lastFailure !== undefined) send.error(lastFailure, 'URX')
          else send.error(Errors.NoHealthyUpstream)
          return
        }
        if (admit(cluster.limits, cluster.active) === 'overflow' ||
            (attempt > 0 && cluster.activeRetries >= cluster.limits.maxRetries)) {
          settle?.(true)
          cluster.stats.overflows++
          send.error(Errors.Overflow)
          return
        }
        tried.add(ep)
        // The endpoint key is `address:port`; IPv6 addresses need brackets in a host.
        ctx.upstreamHost = ep.spec.address.includes(':') ? `[${ep.spec.address}]:${ep.spec.port}` : ep.spec.key
        ctx.upstreamTransportFailureReason = '-'
        const labels = ep.spec.labels
        ctx.upstreamApp = labels.app ?? 'unknown'
        ctx.upstreamVersion = labels.version ?? 'unknown'
        ctx.upstreamWorkload = labels.app !== undefined && labels.version !== undefined ? `${labels.app}-${labels.version}` : 'unknown'
        const ac = new TrySignal()
        current = ac
        let perTryTimedOut = false
        const perTry = retry.perTryTimeoutMs > 0 ? setTimeout(() => { perTryTimedOut = true; ac.abort() }, retry.perTryTimeoutMs) : undefined
        const isRetry = attempt > 0
        if (isRetry) { cluster.activeRetries++; cluster.stats.retries++ }
        ep.active++
        ep.requests++
        cluster.active++
        const start = process.hrtime.bigint()
        let released = false
        const release = (): void => {
          if (released) return
          released = true
          ep.active--
          cluster.active--
          if (isRetry) cluster.activeRetries--
        }
        let res: Dispatcher.ResponseData
        // Envoy's router headers: the try number (Istio sets include_request_attempt_count) and
        // the time the upstream has (the per-try timeout, else the route timeout).
        job.headers['x-envoy-attempt-count'] = String(attempt + 1)
        const expectMs = retry.perTryTimeoutMs > 0 ? retry.perTryTimeoutMs : job.timeoutMs
        if (expectMs > 0) job.headers['x-envoy-expected-rq-timeout-ms'] = String(expectMs)
        try {
          const tls = cluster.spec.policy.tls
          res = await this.pools.get(cluster.spec.name, cluster.limits, tls).request({
            origin: `${tls?.mode === 'SIMPLE' || tls?.mode === 'MUTUAL' ? 'https' : 'http'}://${ctx.upstreamHost}`,
            path: job.path,
            method: job.method as Dispatcher.HttpMethod,
            headers: job.headers as Record<string, string>,
            body,
            signal: ac as unknown as AbortSignal
          })
        } catch (err) {
          if (perTry !== undefined) clearTimeout(perTry)
          release()
          if (clientGone) return
          // A streamed body over the limit: the client's fault, not the endpoint's.
          if (tooLarge) { settle?.(true); send.error(Errors.PayloadTooLarge); return }
          const failure = classify(err, perTryTimedOut || routeTimedOut)
          ctx.upstreamTransportFailureReason = failureReason(err, failure)
          settle?.(false)
          // Not HTTP (CL with TE, a bad status line) or a header undici refuses to write (CR/LF):
          // 502 UPE, never retried, the connection is not reused (undici destroys it). Outlier
          // detection counts it as a 502; the host is not marked unreachable.
          if (isProtocolError(err)) {
            cluster.record(ep, { kind: 'response', status: 502 })
            send.error(Errors.UpstreamProtocolError)
            return
          }
          this.recordFailure(cluster, ep, failure)
          const spec = failure.kind === 'timeout' ? Errors.UpstreamTimeout : failure.kind === 'connect' ? Errors.UpstreamConnectFailure : Errors.UpstreamReset
          if (!routeTimedOut && attempt < retry.attempts && replayable && isRetriable(retry, failure)) {
            lastFailure = spec
            await sleep(backoffMs(retry, attempt, this.random))
            if (clientGone) return
            continue
          }
          send.error(spec, attempt > 0 && attempt >= retry.attempts && isRetriable(retry, failure) ? 'URX' : undefined)
          return
        }
        if (perTry !== undefined) clearTimeout(perTry)
        ctx.upstreamServiceTime = Number((process.hrtime.bigint() - start) / 1000000n)
        const status = res.statusCode
        cluster.record(ep, { kind: 'response', status })
        settle?.(status < 500)
        const grpc = res.headers['grpc-status']
        const failure: TryFailure = { kind: 'status', status, ...(typeof grpc === 'string' ? { grpcStatus: Number(grpc) } : {}) }
        const retriable = (status >= 500 || grpc !== undefined) && isRetriable(retry, failure)
        if (retriable && !routeTimedOut && attempt < retry.attempts && replayable) {
          res.body.on('error', () => {})
          res.body.destroy()
          release()
          await sleep(backoffMs(retry, attempt, this.random))
          if (clientGone) return
          continue
        }
        res.body.once('close', release)
        res.body.once('end', release)
        res.body.once('error', release)
        // The body fails after the status went out (reset, short body, idle timeout): the client's
        // response is aborted, never completed (Fastify destroys it); the log says why.
        res.body.once('error', err => {
          if (clientGone) return
          ctx.responseFlags = isProtocolError(err) ? 'UPE' : routeTimedOut || errCode(err) === 'UND_ERR_BODY_TIMEOUT' ? 'UT' : 'UC'
          ctx.upstreamTransportFailureReason = errCode(err) ?? (err as Error).message
        })
        if (retriable && attempt > 0) ctx.responseFlags = 'URX'
        send.response(status, res.headers as HeaderMap, res.body)
        return
      }
    } finally {
      if (routeTimer !== undefined) clearTimeout(routeTimer)
      job.res.off('close', onClose)
    }
  }

  /**
   * Fire-and-forget copies to the mirror clusters (Host gets `-shadow`). Their answers, latency
   * and failures never reach the client. A streamed body is teed: the primary keeps its own
   * backpressure, and a mirror that falls more than MIRROR_LAG_BYTES behind is abandoned, so
   * the primary path never buffers for it. Returns the body the primary should send.
   */
  private mirror (job: ForwardJob, body: Buffer | Readable | null): Buffer | Readable | null {
    const chosen = (job.mirrors ?? []).filter(m => m.fraction >= 1 || this.random() < m.fraction)
    if (chosen.length === 0) return body
    const headers: HeaderMap = { ...job.headers, host: shadowAuthority(String(job.headers.host ?? '')) }
    let primary = body
    const shadows: Array<Buffer | PassThrough | null> = []
    if (body === null || Buffer.isBuffer(body)) {
      for (let i = 0; i < chosen.length; i++) shadows.push(body)
    } else {
      const src = body
      const main = new PassThrough()
      const copies = chosen.map(() => new PassThrough())
      const alive = new Set(copies)
      src.on('data', (c: Buffer) => {
        if (!main.write(c)) { src.pause(); main.once('drain', () => src.resume()) }
        for (const cp of alive) {
          if (cp.writableLength > MIRROR_LAG_BYTES) { alive.delete(cp); cp.destroy(); continue }
          cp.write(c)
        }
      })
      src.once('end', () => { main.end(); for (const cp of alive) cp.end() })
      src.once('error', err => { main.destroy(err); for (const cp of alive) cp.destroy() })
      main.once('close', () => { if (!src.readableEnded) src.destroy() })
      primary = main
      shadows.push(...copies)
    }
    chosen.forEach((m, i) => {
      const shadowBody = shadows[i]
      const cluster = this.runtime.cluster(clusterFor(m.target, job.port))
      const ep = cluster?.pick({ random: this.random, hashKey: undefined })
      if (cluster === undefined || ep === undefined) { if (shadowBody instanceof PassThrough) shadowBody.destroy(); return }
      const hostPort = ep.spec.address.includes(':') ? `[${ep.spec.address}]:${ep.spec.port}` : `${ep.spec.address}:${ep.spec.port}`
      if (shadowBody instanceof PassThrough) shadowBody.on('error', () => {})
      const tls = cluster.spec.policy.tls
      this.pools.get(cluster.spec.name, cluster.limits, tls).request({
        origin: `${tls?.mode === 'SIMPLE' || tls?.mode === 'MUTUAL' ? 'https' : 'http'}://${hostPort}`,
        path: job.path,
        method: job.method as Dispatcher.HttpMethod,
        headers: headers as Record<string, string>,
        body: shadowBody
      }).then(res => { res.body.on('error', () => {}); res.body.resume() }, () => { /* a mirror's failure never matters */ })
    })
    return primary
  }

  /**
   * A connect failure or reset before any response marks the host down at once (probes bring
   * it back) and feeds outlier detection as a local-origin failure.
   */
  private recordFailure (cluster: ClusterState, ep: EndpointState, failure: TryFailure): void {
    if (failure.kind === 'connect') ep.host.set(Flag.FailedConnect, true)
    if (failure.kind === 'reset') ep.host.set(Flag.FailedConnect, true)
    if (failure.kind !== 'status') cluster.record(ep, { kind: 'local', error: failure.kind })
  }
}

const CONNECT_CODES = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'CERT_HAS_EXPIRED', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT', 'EADDRNOTAVAIL'])

function errCode (err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } }
  return e?.code ?? e?.cause?.code
}

/** undici's parser errors (`HPE_*`), length mismatches and refused header values. */
function isProtocolError (err: unknown): boolean {
  const e = err as { name?: string; cause?: { name?: string } } | undefined
  if (e?.name === 'HTTPParserError' || e?.cause?.name === 'HTTPParserError') return true
  const code = errCode(err)
  return typeof code === 'string' && (code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_INFO')
}

/**
 * The abort signal of one try. undici takes any EventTarget-like object; an AbortController per
 * try (with its EventTarget machinery) showed in the CPU profile of the request path. Aborting
 * rejects the try with the same AbortError an AbortController gives.
 */
class TrySignal {
  aborted = false
  reason: unknown = undefined
  private listeners: Array<() => void> | undefined

  addEventListener (_type: string, fn: () => void): void {
    if (this.listeners === undefined) this.listeners = [fn]
    else this.listeners.push(fn)
  }

  removeEventListener (_type: string, fn: () => void): void {
    if (this.listeners === undefined) return
    const i = this.listeners.indexOf(fn)
    if (i >= 0) this.listeners.splice(i, 1)
  }

  abort (): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = new DOMException('This operation was aborted', 'AbortError')
    const fns = this.listeners
    this.listeners = undefined
    if (fns !== undefined) for (const fn of fns) fn()
  }
}

function classify (err: unknown, timedOut: boolean): TryFailure {
  const code = errCode(err)
  if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT') return { kind: 'timeout' }
  if (code !== undefined && CONNECT_CODES.has(code)) return { kind: 'connect' }
  return { kind: 'reset' }
}

/** `%UPSTREAM_TRANSPORT_FAILURE_REASON%`-like text. */
function failureReason (err: unknown, f: TryFailure): string {
  if (f.kind === 'timeout') return 'timeout'
  return errCode(err) ?? (err as Error)?.message ?? 'unknown'
}

function sleep (ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise(resolve => setTimeout(resolve, ms))
}

/** Read a body of known, bounded size; undefined if the client aborted. */
function readBody (req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise(resolve => {
    const chunks: Buffer[] = []
    let n = 0
    req.on('data', (c: Buffer) => { n += c.length; if (n <= limit) chunks.push(c) })
    req.once('end', () => resolve(Buffer.concat(chunks)))
    req.once('error', () => resolve(undefined))
    req.once('aborted', () => resolve(undefined))
  })
}

/**
 * Pass a body of unknown length through while counting it for the access log. With a limit,
 * the stream fails as soon as more than `limit` bytes went through (`onOverflow` is told first).
 */
export function countBody (src: Readable, ctx: AccessLogContext, dir: 'received' | 'sent' = 'received', limit = 0, onOverflow?: () => void): Transform {
  let n = 0
  const t = new Transform({
    transform (chunk: Buffer, _enc, cb) {
      n += chunk.length
      if (dir === 'received') ctx.bytesReceived += chunk.length
      else ctx.bytesSent += chunk.length
      if (limit > 0 && n > limit) {
        // The client's request stays open so it can still be answered 413 (then closed).
        overflowed = true
        src.unpipe(t)
        onOverflow?.()
        cb(Object.assign(new Error('request body over the limit'), { code: 'MG_BODY_TOO_LARGE' }))
        return
      }
      cb(null, chunk)
    }
  })
  let overflowed = false
  src.on('error', err => t.destroy(err))
  t.on('close', () => { if (!src.destroyed && !overflowed) src.destroy() })
  return src.pipe(t)
}

export function responseHeaders (route: CompiledRoute, dest: CompiledDestination, h: HeaderMap, serviceTime: number): HeaderMap {
  // Copied by adding, never by deleting (a deleted property makes the object a slow dictionary).
  const out: HeaderMap = {}
  for (const name in h) if (!HOP_BY_HOP_SET.has(name)) out[name] = h[name]
  out['x-envoy-upstream-service-time'] = String(serviceTime)
  applyHeaderOps(dest.headers?.response, out)
  applyHeaderOps(route.headers?.response, out)
  return out
}
