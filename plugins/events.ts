import type { RuntimeState } from '../src/runtime/state.js'
import { Flag } from '../src/upstream/endpoint.js'
import type { AccessLogContext } from './access-log.js'
import type { ConfigManager } from './config-manager.js'
import type { Metrics } from './metrics.js'

// The live event source behind the admin API's `GET /events` (and the dashboard): once a
// second, while at least one subscriber listens, it turns what the gateway already keeps into
// events: request counts and latency per route and per cluster, fallbacks by path and result,
// endpoint health changes, configuration generations and refusals.
//
// Cost on the request path: nothing while nobody listens. While someone does, the metrics
// instance's `record` (called once per finished request) is wrapped so that it also hands the
// request to `tally`: one short key, one Map lookup and a few additions, as the Istio metrics
// themselves cost. The wrapper is an own property of the instance, removed with the last
// subscriber, so the Metrics class is untouched. Every other figure is read on the timer from
// the runtime and the config manager.

/** Upper bounds (ms) of the latency buckets the percentiles are read from. */
export const LATENCY_BOUNDS_MS = [1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000, 60000]

/** One second of traffic on a route or a cluster. */
export interface TrafficRow {
  requests: number
  /** Answers with a 5xx status (local or upstream). */
  errors: number
  /** Requests per second over the interval. */
  rps: number
  /** errors / requests; 0 without requests. */
  errorRate: number
  /** Upper bound (ms) of the latency bucket holding the median, null without requests. */
  p50: number | null
  p99: number | null
}

export interface RouteTraffic extends TrafficRow {
  /** The listener that served the requests: `mesh`, or the Gateway server port (as `/routes/explain?listener=` takes it). */
  listener: string
  /** The route's name (`-` for an unnamed route), as in the access log's `route_name`. */
  route: string
  /** The cluster that served them (`-` for a local reply). */
  cluster: string
}

export interface ClusterTraffic extends TrafficRow {
  cluster: string
}

/** Fallback decisions over the interval, per route, path and result. */
export interface FallbackCount {
  listener: string
  route: string
  primary: string
  /** The fallback target's cluster. */
  fallback: string
  /** The access log's `fallback_result`, e.g. "fallback cluster is healthy". */
  result: string
  /** The cluster that finally served, `-` when none did. */
  finalCluster: string
  count: number
}

export interface TrafficEvent {
  at: string
  intervalMs: number
  routes: RouteTraffic[]
  clusters: ClusterTraffic[]
  fallbacks: FallbackCount[]
}

/** An endpoint's health as the dashboard draws it. */
export interface EndpointHealth {
  cluster: string
  endpoint: string
  healthy: boolean
  /** Set health flags: FailedProbe, FailedConnect, Ejected, BreakerOpen, Drained, Unresolved. */
  flags: string[]
  /** closed, open or halfOpen. */
  breaker: string
  ejected: boolean
  drained: boolean
}

export interface HealthEvent {
  at: string
  changes: EndpointHealth[]
}

export interface ConfigEvent {
  at: string
  generation: number
  loadedAt: string
  source: string
}

export interface RejectionEvent {
  at: string
  source: string
  errors: number
}

export type GatewayEvent =
  | { type: 'traffic'; data: TrafficEvent }
  | { type: 'health'; data: HealthEvent }
  | { type: 'config'; data: ConfigEvent }
  | { type: 'rejection'; data: RejectionEvent }

const FLAG_NAMES: Array<[number, string]> = Object.entries(Flag).map(([k, v]) => [v, k])

interface Tally { listener: string; route: string; cluster: string; count: number; errors: number; buckets: Uint32Array }

function bucketOf (ms: number): number {
  for (let i = 0; i < LATENCY_BOUNDS_MS.length; i++) if (ms <= LATENCY_BOUNDS_MS[i]) return i
  return LATENCY_BOUNDS_MS.length
}

/** The upper bound of the bucket holding quantile `q` (the last bound for the overflow bucket). */
function quantile (buckets: Uint32Array, count: number, q: number): number | null {
  if (count === 0) return null
  const rank = Math.ceil(q * count)
  let acc = 0
  for (let i = 0; i < buckets.length; i++) {
    acc += buckets[i]
    if (acc >= rank) return LATENCY_BOUNDS_MS[Math.min(i, LATENCY_BOUNDS_MS.length - 1)]
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]
}

function row (count: number, errors: number, buckets: Uint32Array, intervalMs: number): TrafficRow {
  return {
    requests: count,
    errors,
    rps: Math.round(count * 1000 / intervalMs * 100) / 100,
    errorRate: count === 0 ? 0 : Math.round(errors / count * 10000) / 10000,
    p50: quantile(buckets, count, 0.5),
    p99: quantile(buckets, count, 0.99)
  }
}

/** Every endpoint of every cluster, keyed `cluster endpoint`. */
export function endpointHealth (runtime: RuntimeState, now = Date.now()): Map<string, EndpointHealth> {
  const out = new Map<string, EndpointHealth>()
  for (const c of runtime.allClusters()) {
    for (const e of c.endpoints) {
      const bits = e.flags | e.host.flags
      out.set(`${c.spec.name} ${e.key}`, {
        cluster: c.spec.name,
        endpoint: e.key,
        healthy: e.healthy,
        flags: FLAG_NAMES.filter(([bit]) => (bits & bit) !== 0).map(([, n]) => n),
        breaker: c.breakers.get(e.key)?.state ?? 'closed',
        ejected: (bits & Flag.Ejected) !== 0 || e.ejectedUntil > now,
        drained: (bits & Flag.Drained) !== 0
      })
    }
  }
  return out
}

export interface GatewayEventsOptions {
  runtime: () => RuntimeState
  metrics: Metrics
  config: ConfigManager
  /** Tick period; default 1000 ms. */
  intervalMs?: number
}

/**
 * The event source. `subscribe` starts the timer (and the tally on the request path) with the
 * first subscriber; the last `unsubscribe` stops both.
 */
export class GatewayEvents {
  private readonly listeners = new Set<(e: GatewayEvent) => void>()
  private readonly pairs = new Map<string, Tally>()
  private readonly fallbacks = new Map<string, FallbackCount>()
  private timer: NodeJS.Timeout | undefined
  private lastTick = 0
  private health = new Map<string, string>()
  private generation = -1
  private rejectionAt = 0
  readonly intervalMs: number

  constructor (private readonly opts: GatewayEventsOptions) {
    this.intervalMs = opts.intervalMs ?? 1000
  }

  get subscribers (): number {
    return this.listeners.size
  }

  subscribe (fn: (e: GatewayEvent) => void): () => void {
    this.listeners.add(fn)
    if (this.timer === undefined) this.start()
    return () => {
      this.listeners.delete(fn)
      if (this.listeners.size === 0) this.stop()
    }
  }

  /** One finished request (called by `Metrics.record` while the source runs). */
  readonly tally = (ctx: AccessLogContext, status: number, durationMs: number): void => {
    const key = `${ctx.listener}\u0000${ctx.routeName}\u0000${ctx.upstreamCluster}`
    let t = this.pairs.get(key)
    if (t === undefined) {
      t = { listener: ctx.listener, route: ctx.routeName, cluster: ctx.upstreamCluster, count: 0, errors: 0, buckets: new Uint32Array(LATENCY_BOUNDS_MS.length + 1) }
      this.pairs.set(key, t)
    }
    t.count++
    if (status >= 500) t.errors++
    t.buckets[bucketOf(durationMs)]++
    if (ctx.fallbackPath !== '-') {
      const fkey = `${key}\u0000${ctx.fallbackPath}\u0000${ctx.fallbackResult}\u0000${ctx.fallbackFinalCluster}`
      const f = this.fallbacks.get(fkey)
      if (f !== undefined) f.count++
      else {
        const i = ctx.fallbackPath.indexOf(':outbound|')
        this.fallbacks.set(fkey, {
          listener: ctx.listener,
          route: ctx.routeName,
          primary: i < 0 ? ctx.fallbackPath : ctx.fallbackPath.slice(0, i),
          fallback: i < 0 ? '-' : ctx.fallbackPath.slice(i + 1),
          result: ctx.fallbackResult,
          finalCluster: ctx.fallbackFinalCluster,
          count: 1
        })
      }
    }
  }

  private start (): void {
    this.lastTick = Date.now()
    // Changes are reported from now on: the current state is the baseline (GET /graph has it).
    this.health = new Map([...endpointHealth(this.opts.runtime())].map(([k, v]) => [k, JSON.stringify(v)]))
    this.generation = this.opts.config.current.generation
    this.rejectionAt = this.opts.config.lastRejection?.at ?? 0
    const m = this.opts.metrics
    const record = Object.getPrototypeOf(m).record as Metrics['record']
    const tally = this.tally
    m.record = function (ctx, status, durationMs) {
      record.call(this, ctx, status, durationMs)
      tally(ctx, status, durationMs)
    }
    this.timer = setInterval(() => this.tick(), this.intervalMs)
    this.timer.unref()
  }

  private stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    // Back to the class's own method.
    if (Object.hasOwn(this.opts.metrics, 'record')) delete (this.opts.metrics as Partial<Metrics>).record
    this.pairs.clear()
    this.fallbacks.clear()
  }

  /** Stops the timer and drops every subscriber. */
  close (): void {
    this.listeners.clear()
    this.stop()
  }

  /** Builds and sends the events of the interval that just ended. Public for tests. */
  tick (): void {
    const now = Date.now()
    const at = new Date(now).toISOString()
    const intervalMs = Math.max(1, now - this.lastTick)
    this.lastTick = now
    this.emit({ type: 'traffic', data: this.traffic(at, intervalMs) })
    const changes: EndpointHealth[] = []
    const next = new Map<string, string>()
    for (const [k, h] of endpointHealth(this.opts.runtime(), now)) {
      const s = JSON.stringify(h)
      next.set(k, s)
      if (this.health.get(k) !== s) changes.push(h)
    }
    this.health = next
    if (changes.length > 0) this.emit({ type: 'health', data: { at, changes } })
    const g = this.opts.config.current
    if (g.generation !== this.generation) {
      this.generation = g.generation
      this.emit({ type: 'config', data: { at, generation: g.generation, loadedAt: new Date(g.loadedAt).toISOString(), source: g.source } })
    }
    const rej = this.opts.config.lastRejection
    if (rej !== undefined && rej.at !== this.rejectionAt) {
      this.rejectionAt = rej.at
      this.emit({ type: 'rejection', data: { at: new Date(rej.at).toISOString(), source: rej.source, errors: rej.problems.filter(p => p.severity === 'Error').length } })
    }
  }

  private traffic (at: string, intervalMs: number): TrafficEvent {
    const routes: RouteTraffic[] = []
    const byCluster = new Map<string, { count: number; errors: number; buckets: Uint32Array }>()
    for (const t of this.pairs.values()) {
      routes.push({ listener: t.listener, route: t.route, cluster: t.cluster, ...row(t.count, t.errors, t.buckets, intervalMs) })
      if (t.cluster === '-') continue
      let c = byCluster.get(t.cluster)
      if (c === undefined) byCluster.set(t.cluster, c = { count: 0, errors: 0, buckets: new Uint32Array(LATENCY_BOUNDS_MS.length + 1) })
      c.count += t.count
      c.errors += t.errors
      for (let i = 0; i < c.buckets.length; i++) c.buckets[i] += t.buckets[i]
    }
    const clusters = [...byCluster].map(([cluster, c]) => ({ cluster, ...row(c.count, c.errors, c.buckets, intervalMs) }))
    const fallbacks = [...this.fallbacks.values()]
    this.pairs.clear()
    this.fallbacks.clear()
    return { at, intervalMs, routes, clusters, fallbacks }
  }

  private emit (e: GatewayEvent): void {
    for (const fn of this.listeners) fn(e)
  }
}

const sources = new WeakMap<Metrics, GatewayEvents>()

/** The one event source of a gateway (shared by every admin server on it). */
export function gatewayEvents (opts: GatewayEventsOptions): GatewayEvents {
  let s = sources.get(opts.metrics)
  if (s === undefined) sources.set(opts.metrics, s = new GatewayEvents(opts))
  return s
}
