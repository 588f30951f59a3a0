import type { Registry } from 'prom-client'

/**
 * Istio's per-request metrics (one counter, three histograms, 21 labels each) kept as plain
 * aggregates per label set, and handed to prom-client's registry only when it is scraped.
 *
 * Why: prom-client validates and hashes the whole label object on every `inc`/`observe`
 * (21 labels → a ~600-character key, four times per request), which the CPU profile showed as
 * the largest single cost on meshgate's request path. Here a request costs one short key, one
 * Map lookup and a few additions; the text the registry renders is the same as prom-client's
 * own Counter/Histogram (same names, label order with `le` first, cumulative buckets, `_sum`, `_count`).
 */
export interface RequestSeries {
  readonly labels: Readonly<Record<string, string>>
  count: number
  readonly duration: HistogramValues
  readonly requestBytes: HistogramValues
  readonly responseBytes: HistogramValues
}

interface HistogramValues { counts: Float64Array; sum: number }

/** What a duck-typed prom-client metric must offer to a Registry (get, reset, name). */
interface RegistryMetric {
  name: string
  help: string
  type: 'counter' | 'histogram'
  aggregator: 'sum'
  get: () => Promise<{ name: string; help: string; type: string; aggregator: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }> }>
  reset: () => void
}

export interface RequestMetricNames {
  requests: { name: string; help: string }
  duration: { name: string; help: string; buckets: readonly number[] }
  requestBytes: { name: string; help: string; buckets: readonly number[] }
  responseBytes: { name: string; help: string; buckets: readonly number[] }
}

/** The four Istio request metrics over shared label sets, registered in `registry`. */
export class RequestMetrics {
  private readonly series = new Map<string, RequestSeries>()
  /** The per-request lookup of series (a registry reset clears it with the series). */
  readonly index = new SeriesIndex<SeriesPair>()

  constructor (registry: Registry, private readonly names: RequestMetricNames) {
    const all = (): RequestSeries[] => [...this.series.values()]
    const reset = (): void => { this.series.clear(); this.index.clear() }
    const counter = counterMetric(names.requests, () => all().map(s => ({ labels: s.labels, value: s.count })), reset)
    const histogram = (n: { name: string; help: string; buckets: readonly number[] }, pick: (s: RequestSeries) => HistogramValues): RegistryMetric => ({
      name: n.name,
      help: n.help,
      type: 'histogram',
      aggregator: 'sum',
      get: async () => {
        const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = []
        for (const s of all()) {
          const h = pick(s)
          let acc = 0
          for (let i = 0; i < n.buckets.length; i++) {
            acc += h.counts[i]
            values.push({ labels: { le: n.buckets[i], ...s.labels }, value: acc, metricName: `${n.name}_bucket` })
          }
          values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${n.name}_bucket` })
          values.push({ labels: s.labels, value: h.sum, metricName: `${n.name}_sum` })
          values.push({ labels: s.labels, value: s.count, metricName: `${n.name}_count` })
        }
        return { name: n.name, help: n.help, type: 'histogram', aggregator: 'sum', values }
      },
      reset
    })
    // The registry only needs get/reset/name; the cast says so to its typings.
    const reg = registry as unknown as { registerMetric: (m: RegistryMetric) => void }
    reg.registerMetric(counter)
    reg.registerMetric(histogram(names.duration, s => s.duration))
    reg.registerMetric(histogram(names.requestBytes, s => s.requestBytes))
    reg.registerMetric(histogram(names.responseBytes, s => s.responseBytes))
  }

  /** The series for `key`, created with `labels()` the first time (so labels are built once per label set). */
  seriesFor (key: string, labels: () => Record<string, string>): RequestSeries {
    let s = this.series.get(key)
    if (s === undefined) {
      const hist = (b: readonly number[]): HistogramValues => ({ counts: new Float64Array(b.length), sum: 0 })
      s = { labels: Object.freeze(labels()), count: 0, duration: hist(this.names.duration.buckets), requestBytes: hist(this.names.requestBytes.buckets),
        responseBytes: hist(this.names.responseBytes.buckets) }
      this.series.set(key, s)
    }
    return s
  }

  /** Count one request in a series. */
  record (s: RequestSeries, durationMs: number, requestBytes: number, responseBytes: number): void {
    s.count++
    observe(s.duration, this.names.duration.buckets, durationMs)
    observe(s.requestBytes, this.names.requestBytes.buckets, requestBytes)
    observe(s.responseBytes, this.names.responseBytes.buckets, responseBytes)
  }

  /** Requests counted so far in the series whose labels pass `filter`. */
  totalOf (filter: (labels: Readonly<Record<string, string>>) => boolean): number {
    let n = 0
    for (const s of this.series.values()) if (filter(s.labels)) n += s.count
    return n
  }

  /** Requests counted so far over every series. */
  get total (): number {
    let n = 0
    for (const s of this.series.values()) n += s.count
    return n
  }
}

/** A counter for the registry whose values are read from aggregates at scrape time. */
function counterMetric (n: { name: string; help: string }, values: () => Array<{ labels: Record<string, string | number>; value: number }>, reset: () => void): RegistryMetric {
  return {
    name: n.name,
    help: n.help,
    type: 'counter',
    aggregator: 'sum',
    get: async () => ({ name: n.name, help: n.help, type: 'counter', aggregator: 'sum', values: values() }),
    reset
  }
}

/** Istio's four TCP counters for one label set (docs/metrics.md#tcp-connections). */
export interface ConnectionSeries {
  readonly labels: Readonly<Record<string, string>>
  opened: number
  closed: number
  sent: number
  received: number
}

export interface ConnectionMetricNames {
  opened: { name: string; help: string }
  closed: { name: string; help: string }
  sent: { name: string; help: string }
  received: { name: string; help: string }
}

/** The series one TCP combination feeds: the caller's proxy view, and the destination's once an upstream connected. */
export interface ConnectionPair {
  readonly source: ConnectionSeries
  destination: ConnectionSeries | undefined
}

/**
 * Istio's TCP metrics (connections opened and closed, bytes sent and received) kept as
 * aggregates per label set like the request metrics. `beforeRead` runs before the registry reads
 * them, so the bytes of connections still open are added up to the moment of the scrape.
 */
export class ConnectionMetrics {
  private readonly series = new Map<string, ConnectionSeries>()
  /** The per-connection lookup of series (a registry reset clears it with the series). */
  readonly index = new SeriesIndex<ConnectionPair>()

  constructor (registry: Registry, names: ConnectionMetricNames, beforeRead: () => void) {
    const reset = (): void => { this.series.clear(); this.index.clear() }
    const values = (pick: (s: ConnectionSeries) => number) => () => {
      beforeRead()
      return [...this.series.values()].map(s => ({ labels: s.labels, value: pick(s) }))
    }
    const reg = registry as unknown as { registerMetric: (m: RegistryMetric) => void }
    reg.registerMetric(counterMetric(names.sent, values(s => s.sent), reset))
    reg.registerMetric(counterMetric(names.received, values(s => s.received), reset))
    reg.registerMetric(counterMetric(names.opened, values(s => s.opened), reset))
    reg.registerMetric(counterMetric(names.closed, values(s => s.closed), reset))
  }

  /** The series for `key`, created with `labels()` the first time. */
  seriesFor (key: string, labels: () => Record<string, string>): ConnectionSeries {
    let s = this.series.get(key)
    if (s === undefined) {
      s = { labels: Object.freeze(labels()), opened: 0, closed: 0, sent: 0, received: 0 }
      this.series.set(key, s)
    }
    return s
  }
}

/** prom-client's bucketing: a value lands in the first bucket whose bound is ≥ it (else only in +Inf). */
function observe (h: HistogramValues, bounds: readonly number[], v: number): void {
  if (!Number.isFinite(v)) return
  h.sum += v
  for (let i = 0; i < bounds.length; i++) {
    if (v <= bounds[i]) { h.counts[i]++; return }
  }
}

/** A workload as Istio's `source_*`/`destination_*` labels name it. */
export interface WorkloadNames {
  readonly workload: string
  readonly namespace: string
  /** `spiffe://cluster.local/ns/<ns>/sa/<sa>`, or `unknown`. */
  readonly principal: string
  readonly app: string
  readonly version: string
  readonly canonicalService: string
  readonly canonicalRevision: string
}

/** An unidentified workload: every name `unknown`, as Istio reports a peer without metadata. */
export const UNKNOWN_WORKLOAD: WorkloadNames = Object.freeze({
  workload: 'unknown', namespace: 'unknown', principal: 'unknown', app: 'unknown', version: 'unknown', canonicalService: 'unknown', canonicalRevision: 'unknown'
})

/**
 * The names of a workload with these labels. The workload is `<app>-<version>` (the Bookinfo
 * deployments' naming), else `<app>`; the canonical service and revision follow Istio's
 * precedence (`service.istio.io/canonical-*`, then `app.kubernetes.io/*`, then `app`/`version`).
 */
export function workloadNames (labels: Readonly<Record<string, string>> | undefined, namespace: string, principal: string | undefined): WorkloadNames {
  if (labels === undefined) return namespace === 'unknown' && principal === undefined ? UNKNOWN_WORKLOAD : Object.freeze({ ...UNKNOWN_WORKLOAD, namespace, principal: spiffe(principal) })
  const app = labels.app
  const version = labels.version
  const workload = app === undefined ? 'unknown' : version === undefined ? app : `${app}-${version}`
  return Object.freeze({
    workload,
    namespace,
    principal: spiffe(principal),
    app: app ?? 'unknown',
    version: version ?? 'unknown',
    canonicalService: labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? app ?? workload,
    canonicalRevision: labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? version ?? 'latest'
  })
}

function spiffe (principal: string | undefined): string {
  return principal === undefined ? 'unknown' : `spiffe://${principal}`
}

/** The series one combination feeds: the caller's proxy view, and the destination's once an endpoint answered. */
export interface SeriesPair {
  readonly source: RequestSeries
  destination: RequestSeries | undefined
}

type ByFlags<P> = Map<string, P>
type ByStatus<P> = Map<number, ByFlags<P>>
// Weak from the endpoint on: a reload's new label objects must not keep the old ones alive.
type ByEndpoint<P> = WeakMap<object, ByStatus<P>>
type ByCluster<P> = Map<string, ByEndpoint<P>>

/** The endpoint key of a request that reached no endpoint. */
export const NO_ENDPOINT: Readonly<Record<string, string>> = Object.freeze({})

/**
 * Finds a request's series without building a string per request: nested maps keyed by values
 * that are the same object or string for every request of one combination — the source
 * workload's names object (one per caller identity and snapshot, or the gateway's), the cluster
 * name from the snapshot, the endpoint's labels object, the status and the response flags. The
 * label sets (and their long keys) are built only when a combination is first seen. `P` is what
 * one combination feeds: a request's series pair, or a TCP connection's.
 */
export class SeriesIndex<P> {
  private roots = new WeakMap<WorkloadNames, ByCluster<P>>()

  /** Forget every combination (the registry was reset). */
  clear (): void {
    this.roots = new WeakMap()
  }

  /** The combination's value when it was seen before (no allocation: the per-request path). */
  find (source: WorkloadNames, cluster: string, endpoint: object, status: number, flags: string): P | undefined {
    return this.roots.get(source)?.get(cluster)?.get(endpoint)?.get(status)?.get(flags)
  }

  get (source: WorkloadNames, cluster: string, endpoint: object, status: number, flags: string, make: () => P): P {
    let byCluster = this.roots.get(source)
    if (byCluster === undefined) { byCluster = new Map(); this.roots.set(source, byCluster) }
    let byEndpoint = byCluster.get(cluster)
    if (byEndpoint === undefined) { byEndpoint = new WeakMap(); byCluster.set(cluster, byEndpoint) }
    let byStatus = byEndpoint.get(endpoint)
    if (byStatus === undefined) { byStatus = new Map(); byEndpoint.set(endpoint, byStatus) }
    let byFlags = byStatus.get(status)
    if (byFlags === undefined) { byFlags = new Map(); byStatus.set(status, byFlags) }
    let pair = byFlags.get(flags)
    if (pair === undefined) { pair = make(); byFlags.set(flags, pair) }
    return pair
  }
}
