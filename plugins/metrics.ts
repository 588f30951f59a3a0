import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { RuntimeState } from '../src/runtime/state.js'
import type { AccessLogContext } from './access-log.js'
import type { Snapshot } from '../src/compile/snapshot.js'
import type { CallerIdentity } from '../src/security/spec.js'
import { DEFAULT_GATEWAY_WORKLOAD, type GatewayWorkload, principalOf } from '../src/security/compile.js'
import { callerAt } from '../src/routing/l4.js'
import { type ConnectionPair, ConnectionMetrics, type ConnectionSeries, NO_ENDPOINT, RequestMetrics, type RequestSeries, type SeriesPair, UNKNOWN_WORKLOAD,
  type WorkloadNames, workloadNames } from './istio-metrics.js'
import { meshgateVersion } from './version.js'
import type { SecurityStats } from './listener/security.js'

/** Istio's default buckets (telemetry v2 stats filter). */
const DURATION_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000]
const BYTES_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000]

/** Istio's standard metric labels (istio.io "Istio Standard Metrics"), so existing dashboards work. */
export const ISTIO_LABELS = [
  'reporter', 'source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version',
  'source_cluster', 'destination_workload', 'destination_workload_namespace', 'destination_principal',
  'destination_app', 'destination_version', 'destination_service', 'destination_service_name',
  'destination_service_namespace', 'destination_cluster', 'request_protocol', 'response_code',
  'grpc_response_status', 'response_flags', 'connection_security_policy',
  'source_canonical_service', 'source_canonical_revision', 'destination_canonical_service', 'destination_canonical_revision'
] as const

type IstioLabel = (typeof ISTIO_LABELS)[number]
/** A series' labels: every Istio label for HTTP; TCP series have no `response_code` and `grpc_response_status`, as in Istio. */
type IstioLabels = Record<Exclude<IstioLabel, 'response_code' | 'grpc_response_status'>, string> & Partial<Record<'response_code' | 'grpc_response_status', string>>

/** One TCP connection's metrics, driven by the TCP proxy (plugins/tcp/proxy.ts). */
export interface TcpConnectionMetrics {
  /** The upstream connection is established: the connection counts as opened, for both reporters. */
  connected: () => void
  /** The connection closed; one that never reached an upstream counts as opened and closed now, with its flag. */
  closed: () => void
}

/** A connection counted as opened and not closed yet: its bytes are added to its series up to each scrape. */
interface OpenConnection {
  readonly ctx: AccessLogContext
  series: readonly ConnectionSeries[]
  /** Bytes already added to the series. */
  sent: number
  received: number
}

interface ClusterInfo { service: string; name: string; namespace: string; subset: string }

/**
 * Prometheus metrics: Istio's request metrics with Istio's label names, plus meshgate's own
 * (fallbacks per route and cluster, breaker state, endpoint health, ejections, config
 * generation and reload failures) and process metrics. Served by the admin server.
 */
export class Metrics {
  readonly registry = new Registry()
  /** The four Istio request metrics, aggregated per label set (plugins/istio-metrics.ts: prom-client per request was the top cost). */
  private readonly istio: RequestMetrics
  /** Istio's four TCP metrics, aggregated the same way. */
  private readonly tcp: ConnectionMetrics
  private readonly openConnections = new Set<OpenConnection>()
  private readonly fallbacks: Counter<string>
  private readonly clusterInfo = new Map<string, ClusterInfo>()

  /** The ingress gateway workload: the source of every request on a Gateway listener. */
  private readonly gatewaySource: WorkloadNames
  /** Mesh callers' names, one per caller identity of a snapshot (docs/metrics.md#who-called). */
  private readonly callerNames = new WeakMap<CallerIdentity, WorkloadNames>()
  private readonly snapshot: (() => Snapshot) | undefined

  constructor (opts: {
    runtime: () => RuntimeState; generation: () => number; reloadFailures: () => number; security?: SecurityStats
    /** The running snapshot: its `callers` identify mesh callers by address. */
    snapshot?: () => Snapshot
    /** The ingress gateway's workload (`--workload-labels`, `--workload-namespace`). */
    gatewayWorkload?: GatewayWorkload
  }) {
    const r = this.registry
    this.istio = new RequestMetrics(r, {
      requests: { name: 'istio_requests_total', help: 'Requests processed by meshgate (Istio standard metric).' },
      duration: { name: 'istio_request_duration_milliseconds', help: 'Request duration in milliseconds.', buckets: DURATION_BUCKETS },
      requestBytes: { name: 'istio_request_bytes', help: 'Request body sizes.', buckets: BYTES_BUCKETS },
      responseBytes: { name: 'istio_response_bytes', help: 'Response body sizes.', buckets: BYTES_BUCKETS }
    })
    this.tcp = new ConnectionMetrics(r, {
      opened: { name: 'istio_tcp_connections_opened_total', help: 'TCP connections opened (Istio standard metric).' },
      closed: { name: 'istio_tcp_connections_closed_total', help: 'TCP connections closed (Istio standard metric).' },
      sent: { name: 'istio_tcp_sent_bytes_total', help: 'Bytes sent to the client on TCP connections (Istio standard metric).' },
      received: { name: 'istio_tcp_received_bytes_total', help: 'Bytes received from the client on TCP connections (Istio standard metric).' }
    }, () => { for (const c of this.openConnections) addBytes(c) })
    this.fallbacks = new Counter({ name: 'meshgate_fallback_total', help: 'ASM fallback decisions by route, primary and fallback cluster; result is taken or failed.', labelNames: ['route', 'primary_cluster', 'fallback_cluster', 'result'], registers: [r] })
    const gw = opts.gatewayWorkload ?? DEFAULT_GATEWAY_WORKLOAD
    this.gatewaySource = workloadNames(gw.labels, gw.namespace, principalOf(gw.namespace, gw.serviceAccount))
    this.snapshot = opts.snapshot
    new Gauge({
      name: 'meshgate_build_info', help: 'Always 1; the labels carry the meshgate version and the Node.js version it runs on.', labelNames: ['version', 'node'], registers: [r]
    }).set({ version: meshgateVersion(), node: process.version }, 1)
    // Envoy's RBAC and jwt_authn filter stats (`http.<prefix>.rbac.allowed` …), read at scrape time.
    const sec = opts.security
    if (sec !== undefined) {
      const counter = (name: string, help: string, read: () => number): void => {
        new Counter({ name, help, registers: [r], collect () { this.reset(); this.inc(read()) } })
      }
      counter('envoy_http_rbac_allowed', 'Requests an AuthorizationPolicy evaluation allowed (Envoy rbac.allowed).', () => sec.rbacAllowed)
      counter('envoy_http_rbac_denied', 'Requests an AuthorizationPolicy denied with 403 (Envoy rbac.denied).', () => sec.rbacDenied)
      counter('envoy_http_rbac_shadow_denied', 'Requests istio.io/dry-run policies would have denied (Envoy rbac.shadow_denied).', () => sec.rbacShadowDenied)
      counter('envoy_http_jwt_authn_allowed', 'Requests whose JWT was verified (Envoy jwt_authn.allowed).', () => sec.jwtAllowed)
      counter('envoy_http_jwt_authn_denied', 'Requests refused with 401 for an invalid JWT (Envoy jwt_authn.denied).', () => sec.jwtDenied)
    }
    new Gauge({
      name: 'meshgate_config_generation', help: 'Generation number of the running configuration.', registers: [r],
      collect () { this.set(opts.generation()) }
    })
    // A counter (it only grows), read from the config manager at scrape time: every rejected
    // change — admin PUT, reload or rollback, file watch — counts once.
    new Counter({
      name: 'meshgate_config_reload_failures_total', help: 'Configuration changes rejected since start (admin API, reload, file watch).', registers: [r],
      collect () { this.reset(); this.inc(opts.reloadFailures()) }
    })
    new Gauge({
      name: 'meshgate_endpoint_healthy', help: '1 when the endpoint is healthy for routing in the cluster.', labelNames: ['cluster', 'endpoint'], registers: [r],
      collect () {
        this.reset()
        for (const c of opts.runtime().allClusters()) for (const e of c.endpoints) this.set({ cluster: c.spec.name, endpoint: e.key }, e.healthy ? 1 : 0)
      }
    })
    new Gauge({
      name: 'meshgate_endpoint_ejections', help: 'Times the endpoint was ejected by outlier detection (decays while healthy).', labelNames: ['cluster', 'endpoint'], registers: [r],
      collect () {
        this.reset()
        for (const c of opts.runtime().allClusters()) for (const e of c.endpoints) this.set({ cluster: c.spec.name, endpoint: e.key }, e.ejections)
      }
    })
    new Gauge({
      name: 'meshgate_outlier_ejections_total', help: 'Outlier ejections per cluster since it was created.', labelNames: ['cluster'], registers: [r],
      collect () {
        this.reset()
        for (const c of opts.runtime().allClusters()) this.set({ cluster: c.spec.name }, c.stats.ejections)
      }
    })
    new Gauge({
      name: 'meshgate_breaker_state', help: 'Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.', labelNames: ['cluster', 'endpoint'], registers: [r],
      collect () {
        this.reset()
        for (const c of opts.runtime().allClusters()) {
          for (const [key, b] of c.breakers) this.set({ cluster: c.spec.name, endpoint: key }, b.state === 'open' ? 2 : b.state === 'halfOpen' ? 1 : 0)
        }
      }
    })
    new Gauge({
      name: 'meshgate_upstream_requests_active', help: 'Requests in flight per cluster.', labelNames: ['cluster'], registers: [r],
      collect () {
        this.reset()
        for (const c of opts.runtime().allClusters()) this.set({ cluster: c.spec.name }, c.active)
      }
    })
    collectDefaultMetrics({ register: r, prefix: 'meshgate_' })
  }

  private info (cluster: string): ClusterInfo {
    let i = this.clusterInfo.get(cluster)
    if (i === undefined) {
      // outbound|9080|v3|reviews.default.svc.cluster.local
      const parts = cluster.split('|')
      const service = parts[3] ?? 'unknown'
      const labels = service.split('.')
      i = { service, name: labels[0] ?? 'unknown', namespace: service.endsWith('.svc.cluster.local') ? labels[1] : 'unknown', subset: parts[2] ?? '' }
      if (this.clusterInfo.size > 10_000) this.clusterInfo.clear()
      this.clusterInfo.set(cluster, i)
    }
    return i
  }

  /**
   * Record one finished request: a `reporter="source"` series (the caller's proxy), and a
   * `reporter="destination"` one (the destination's sidecar) when an endpoint answered. The
   * series are found through nested maps (plugins/istio-metrics.ts SeriesIndex): no string is
   * built per request.
   */
  record (ctx: AccessLogContext, status: number, durationMs: number): void {
    const source = this.sourceOf(ctx.listener === 'mesh', ctx.downstreamAddress)
    const endpoint = ctx.upstreamLabels ?? NO_ENDPOINT
    const pair = this.istio.index.find(source, ctx.upstreamCluster, endpoint, status, ctx.responseFlags) ??
      this.istio.index.get(source, ctx.upstreamCluster, endpoint, status, ctx.responseFlags, () => this.pair(source, ctx, status))
    this.istio.record(pair.source, durationMs, ctx.bytesReceived, ctx.bytesSent)
    if (ctx.upstreamServiceTime >= 0 && endpoint !== NO_ENDPOINT) {
      pair.destination ??= this.series('destination', source, ctx, status)
      this.istio.record(pair.destination, durationMs, ctx.bytesReceived, ctx.bytesSent)
    }
    if (ctx.fallbackPath !== '-') {
      const [primary, fallback] = splitFallbackPath(ctx.fallbackPath)
      this.fallbacks.inc({ route: ctx.routeName, primary_cluster: primary, fallback_cluster: fallback, result: ctx.fallbackFinalCluster === '-' ? 'failed' : 'taken' })
    }
  }

  /** Requests recorded since start (the `reporter="source"` series: each request once). */
  get requestsTotal (): number {
    return this.istio.totalOf(l => l.reporter === 'source')
  }

  /**
   * The source workload of a request or connection: the ingress gateway on a Gateway listener;
   * on a mesh listener (HTTP or TCP), the caller registered at the peer's address.
   */
  private sourceOf (mesh: boolean, address: string): WorkloadNames {
    if (!mesh) return this.gatewaySource
    const callers = this.snapshot?.().callers
    const id = callers === undefined ? undefined : callerAt(callers, address)
    if (id === undefined) return UNKNOWN_WORKLOAD
    let names = this.callerNames.get(id)
    if (names === undefined) {
      names = workloadNames(id.labels, id.namespace ?? 'unknown', id.principal)
      this.callerNames.set(id, names)
    }
    return names
  }

  /**
   * The metrics of one TCP connection on a Gateway or mesh TCP listener, with Istio's timing:
   * a connection counts as opened when its upstream connection is established (when Istio's
   * sidecar learns its peer) with the labels of that moment, or, if it never reaches an upstream
   * (`UF`, `UH`, `UO`, `NR`, `NC`), when it closes, with its flag; it counts as closed when it
   * closes. Bytes are added as they flow: at every scrape and at close. `reporter="destination"`
   * counts only connections that reached an upstream.
   */
  tcpConnection (ctx: AccessLogContext, kind: 'gateway' | 'mesh'): TcpConnectionMetrics {
    let conn: OpenConnection | undefined
    const open = (reached: boolean): OpenConnection => {
      const source = this.sourceOf(kind === 'mesh', ctx.downstreamAddress)
      const endpoint = ctx.upstreamLabels ?? NO_ENDPOINT
      const pair = this.tcp.index.get(source, ctx.upstreamCluster, endpoint, 0, ctx.responseFlags, () => this.connectionPair(source, ctx))
      const series = reached && endpoint !== NO_ENDPOINT
        ? [pair.source, pair.destination ??= this.connectionSeries('destination', source, ctx)]
        : [pair.source]
      for (const s of series) s.opened++
      return { ctx, series, sent: 0, received: 0 }
    }
    return {
      connected: () => {
        if (conn !== undefined) return
        conn = open(true)
        this.openConnections.add(conn)
      },
      closed: () => {
        conn ??= open(false)
        this.openConnections.delete(conn)
        addBytes(conn)
        for (const s of conn.series) s.closed++
      }
    }
  }

  private connectionPair (source: WorkloadNames, ctx: AccessLogContext): ConnectionPair {
    return { source: this.connectionSeries('source', source, ctx), destination: undefined }
  }

  private connectionSeries (reporter: 'source' | 'destination', source: WorkloadNames, ctx: AccessLogContext): ConnectionSeries {
    const labels = this.labels(reporter, source, ctx, 'tcp', 0)
    return this.tcp.seriesFor(Object.values(labels).join('\u0000'), () => labels)
  }

  private pair (source: WorkloadNames, ctx: AccessLogContext, status: number): SeriesPair {
    return { source: this.series('source', source, ctx, status), destination: undefined }
  }

  private series (reporter: 'source' | 'destination', source: WorkloadNames, ctx: AccessLogContext, status: number): RequestSeries {
    const labels = this.labels(reporter, source, ctx, 'http', status)
    return this.istio.seriesFor(Object.values(labels).join('\u0000'), () => labels)
  }

  /**
   * Istio's labels for one reporter. The destination's sidecar sees the same source, the
   * endpoint's answer with no flag of the caller's side (only a client's disconnect, DC), and a
   * plaintext connection (`none`; the caller's side reports `unknown`, as Istio does). The same
   * labels serve HTTP requests and TCP connections (`request_protocol="tcp"`, and no
   * `response_code` or `grpc_response_status`, which Istio's TCP metrics do not carry).
   */
  private labels (reporter: 'source' | 'destination', src: WorkloadNames, ctx: AccessLogContext, protocol: 'http' | 'tcp', status: number): IstioLabels {
    const c = ctx.upstreamCluster === '-' ? undefined : this.info(ctx.upstreamCluster)
    const namespace = c?.namespace ?? 'unknown'
    const dst = ctx.upstreamLabels === undefined ? UNKNOWN_WORKLOAD : workloadNames(ctx.upstreamLabels, namespace, undefined)
    const destination = reporter === 'destination'
    return {
      reporter,
      source_workload: src.workload,
      source_workload_namespace: src.namespace,
      source_principal: src.principal,
      source_app: src.app,
      source_version: src.version,
      source_cluster: 'unknown',
      destination_workload: dst.workload,
      destination_workload_namespace: namespace,
      destination_principal: 'unknown',
      destination_app: dst.app,
      destination_version: dst.version,
      destination_service: c?.service ?? 'unknown',
      destination_service_name: c?.name ?? 'unknown',
      destination_service_namespace: namespace,
      destination_cluster: 'unknown',
      request_protocol: protocol,
      ...(protocol === 'http' ? { response_code: String(status), grpc_response_status: '' } : {}),
      response_flags: destination ? (ctx.responseFlags === 'DC' ? 'DC' : '-') : ctx.responseFlags,
      connection_security_policy: destination ? 'none' : 'unknown',
      source_canonical_service: src.canonicalService,
      source_canonical_revision: src.canonicalRevision,
      destination_canonical_service: dst.canonicalService,
      destination_canonical_revision: dst.canonicalRevision
    }
  }

  async text (): Promise<string> {
    return await this.registry.metrics()
  }

  get contentType (): string {
    return this.registry.contentType
  }
}

/** Add what a connection moved since the last time to its series. */
function addBytes (c: OpenConnection): void {
  const sent = c.ctx.bytesSent - c.sent
  const received = c.ctx.bytesReceived - c.received
  if (sent === 0 && received === 0) return
  c.sent += sent
  c.received += received
  for (const s of c.series) { s.sent += sent; s.received += received }
}

/** `outbound|…|a.svc.cluster.local:outbound|…|b…` → [primary, fallback]; cluster names contain no ':'. */
function splitFallbackPath (p: string): [string, string] {
  const i = p.indexOf(':outbound|')
  return i < 0 ? [p, '-'] : [p.slice(0, i), p.slice(i + 1)]
}
