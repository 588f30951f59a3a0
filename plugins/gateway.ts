import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Snapshot } from '../src/compile/snapshot.js'
import type { LoadInput } from '../src/config/load.js'
import { Codes, type Problem } from '../src/config/problem.js'
import { RuntimeState } from '../src/runtime/state.js'
import { SnapshotStore } from '../src/runtime/store.js'
import { type AccessLogTarget, createAccessLogWriter } from './access-log.js'
import { ConfigError, ConfigManager, type Generation } from './config-manager.js'
import { watchPaths } from './config-watch.js'
import { HealthChecker } from './health.js'
import { Metrics } from './metrics.js'
import { ClusterPools } from './pools.js'
import { type OverloadOptions, type RequestLimits, type UnderscoreHeadersAction, createListener, resolveLimits } from './listener/index.js'
import type { EscapedSlashesAction, PathNormalization, PathPolicy } from '../src/routing/path.js'
import { credentialStore, sameTlsModes } from './tls.js'
import { DEFAULT_GATEWAY_WORKLOAD } from '../src/security/compile.js'
import { newSecurityStats } from './listener/security.js'
import { JwtVerifier } from './jwt.js'
import type { ConfigStore } from '../src/config/source.js'
import { registerSyncMetrics } from './config-source/metrics.js'
import { Tracing, type TracingOptions } from './tracing.js'
import { type BoundListener, TcpListeners, sameL4Ports } from './tcp/index.js'

export type { BoundListener }

export { ConfigError }

export interface GatewayOptions {
  /** Config files or directories (read from disk), already-read inputs, or a store to follow (etcd). */
  config: readonly string[] | { inputs: LoadInput[] } | { store: ConfigStore }
  /** Store mode: how long the start waits for the first sync before serving, not ready (ms). */
  initialSyncMs?: number
  strict?: boolean
  /**
   * Istio resources meshgate cannot enforce (an unknown kind of an Istio API group, CUSTOM
   * authorization, PeerAuthentication STRICT) are skipped with a warning instead of refused.
   */
  allowUnsupportedKinds?: boolean
  /** The ingress gateway workload's labels, as AuthorizationPolicy selectors see them. Default `app: istio-ingressgateway, istio: ingressgateway`. */
  workloadLabels?: Record<string, string>
  /** The ingress gateway workload's namespace. Default `istio-system`. */
  workloadNamespace?: string
  /** The ingress gateway workload's service account (its principal toward destinations). Default `istio-ingressgateway-service-account`. */
  workloadServiceAccount?: string
  /** Address every listener binds to. Default 0.0.0.0. */
  host?: string
  /** Mesh listener port. Default 15001; 0 picks a free port; null disables the mesh listener. */
  meshPort?: number | null
  /** Bind port per Gateway server port (e.g. `{ 8080: 0 }` in tests). Default: the server port. */
  portMap?: Record<number, number>
  meshNamespace?: string
  accessLog?: AccessLogTarget
  random?: () => number
  now?: () => number
  /** Watch the config paths and reload on change (debounced). */
  watch?: boolean
  watchDebounceMs?: number
  /** Called with warnings after a successful load. */
  onProblems?: (problems: Problem[]) => void
  /** Called when a reload (file watch) is rejected or applied. */
  onReload?: (event: { ok: true; generation: Generation } | { ok: false; problems: Problem[]; source: string }) => void
  /**
   * Directory of `credentialName` secrets (`DIR/NAME/tls.crt`, `tls.key`, `ca.crt`…). Default:
   * `credentials` in the first config directory (beside the first config file), else `./credentials`.
   */
  credentialsDir?: string
  /** Fastify server options for the proxy listeners, merged last (tests, special cases). */
  serverOptions?: Record<string, unknown>
  // Hardening (docs/operations.md#security-defaults). Unset fields take the defaults of the one
  // tuning table (bin/tuning.ts, from DEFAULT_LIMITS; docs/operations.md#tuning-flags).
  /** Istio `pathNormalization`: NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES. */
  pathNormalization?: PathNormalization
  /** `%2F`/`%5C` in paths: REJECT (400), KEEP_UNCHANGED, UNESCAPE_AND_FORWARD, UNESCAPE_AND_REDIRECT. */
  escapedSlashes?: EscapedSlashesAction
  /** Header names with `_`: REJECT (400), DROP, ALLOW. */
  headersWithUnderscores?: UnderscoreHeadersAction
  /** Request line + headers, bytes → 431. */
  maxHeaderBytes?: number
  /** Request header count → 431. */
  maxHeadersCount?: number
  /** Request body bytes → 413. */
  maxRequestBodyBytes?: number
  /** Time to receive request headers → 408. */
  headersTimeoutMs?: number
  /** Time to receive the whole request → 408. */
  requestTimeoutMs?: number
  /** Idle downstream keep-alive. */
  keepAliveTimeoutMs?: number
  /** Downstream connections per listener. */
  maxConnections?: number
  /** HTTP/2 streams per connection. */
  maxConcurrentStreams?: number
  /** Trusted proxies in front of the gateway (Istio numTrustedProxies): which X-Forwarded-For entry is the client. */
  numTrustedProxies?: number
  /** Load shedding (503 OM); `false` turns it off. */
  overload?: Partial<OverloadOptions> | false
  /** Upstream idle timeout: nothing received for this long before headers (504 UT) or between body bytes (aborted). */
  upstreamIdleTimeoutMs?: number
  /**
   * Graceful shutdown: after readiness turns false, keep serving for this long before closing the
   * listeners, so load balancers see the endpoint leave (Istio terminationDrainDuration).
   */
  shutdownDelayMs?: number
  /** Resolver for `resolution: DNS` endpoint names (default: the system resolver). */
  dnsLookup?: (name: string) => Promise<unknown>
  /** How often endpoint names are re-resolved (default 5 s). */
  dnsRefreshMs?: number
  /** Distributed tracing over OTLP/HTTP (docs/tracing.md); off when absent. */
  tracing?: TracingOptions
}

/** The listener limits named in GatewayOptions, unset ones left to the defaults. */
function limitsOf (o: GatewayOptions): Partial<RequestLimits> {
  const out: Partial<RequestLimits> = {}
  if (o.pathNormalization !== undefined) out.pathNormalization = o.pathNormalization
  if (o.escapedSlashes !== undefined) out.escapedSlashes = o.escapedSlashes
  if (o.headersWithUnderscores !== undefined) out.headersWithUnderscores = o.headersWithUnderscores
  if (o.maxHeaderBytes !== undefined) out.maxHeaderBytes = o.maxHeaderBytes
  if (o.maxHeadersCount !== undefined) out.maxHeadersCount = o.maxHeadersCount
  if (o.maxRequestBodyBytes !== undefined) out.maxRequestBodyBytes = o.maxRequestBodyBytes
  if (o.headersTimeoutMs !== undefined) out.headersTimeoutMs = o.headersTimeoutMs
  if (o.requestTimeoutMs !== undefined) out.requestTimeoutMs = o.requestTimeoutMs
  if (o.keepAliveTimeoutMs !== undefined) out.keepAliveTimeoutMs = o.keepAliveTimeoutMs
  if (o.maxConnections !== undefined) out.maxConnections = o.maxConnections
  if (o.maxConcurrentStreams !== undefined) out.maxConcurrentStreams = o.maxConcurrentStreams
  if (o.numTrustedProxies !== undefined) out.numTrustedProxies = o.numTrustedProxies
  if (o.overload !== undefined) out.overload = o.overload as OverloadOptions | false
  return out
}


export interface RunningGateway {
  /** The listeners' path normalization (explain decides with it too). */
  pathPolicy: PathPolicy
  listeners: BoundListener[]
  store: SnapshotStore
  runtime: RuntimeState
  config: ConfigManager
  metrics: Metrics
  /** Problems (warnings) of the loaded configuration. */
  problems: Problem[]
  health: HealthChecker
  pools: ClusterPools
  /** False once shutdown has begun, and (store mode) until the first sync (readiness). */
  readonly ready: boolean
  /** Why `ready` is false, when it is. */
  readonly notReadyReason: string | undefined
  /** Requests in flight on the proxy listeners. */
  readonly inFlight: number
  /**
   * Re-read the configuration (or load the given inputs) and swap it in atomically. On any
   * error the running snapshot stays and ConfigError is thrown with every problem.
   */
  reload: (config?: { inputs: LoadInput[] }) => Promise<{ snapshot: Snapshot; problems: Problem[] }>
  /**
   * Graceful stop: readiness turns false, listeners stop accepting, requests in flight finish
   * (keep-alive connections close after their current request), then pools and timers close.
   * After `deadlineMs` remaining connections are destroyed.
   */
  close: (deadlineMs?: number) => Promise<void>
}

/** Same Gateway ports as the running snapshot: listeners are fixed until restart. */
function samePorts (next: Snapshot, current: Snapshot | undefined): Problem[] {
  if (current === undefined) return []
  const ports = (s: Snapshot): string => s.gateways.map(g => g.port).join(',')
  if (ports(next) === ports(current)) return []
  return [{ severity: 'Error', code: Codes.FixedUntilRestart, message: `the set of Gateway server ports changed (${ports(current) || 'none'} → ${ports(next) || 'none'}); listeners are fixed until restart`, file: '-', line: 1, column: 1 }]
}

/**
 * Start meshgate: load the configuration, then one Fastify listener per Gateway server port
 * and the mesh listener. All listeners share one snapshot store, one runtime state, the
 * per-cluster undici pools, the health checker and the metrics.
 */
export async function startGateway (opts: GatewayOptions): Promise<RunningGateway> {
  // The store exists only after the first load; the manager installs later snapshots into it.
  const pools = new ClusterPools(opts.upstreamIdleTimeoutMs)
  const gatewayWorkload = {
    namespace: opts.workloadNamespace ?? DEFAULT_GATEWAY_WORKLOAD.namespace,
    labels: opts.workloadLabels ?? DEFAULT_GATEWAY_WORKLOAD.labels,
    serviceAccount: opts.workloadServiceAccount ?? DEFAULT_GATEWAY_WORKLOAD.serviceAccount
  }
  const manager = new ConfigManager({
    config: opts.config,
    strict: opts.strict,
    allowUnsupportedKinds: opts.allowUnsupportedKinds,
    meshNamespace: opts.meshNamespace,
    gatewayWorkload,
    now: opts.now,
    check: (next, current) => [...samePorts(next, current), ...sameTlsModes(next, current), ...sameL4Ports(next, current)],
    credentials: credentialStore('store' in opts.config ? { inputs: [] } : opts.config, opts.credentialsDir),
    ...(opts.initialSyncMs !== undefined ? { initialSyncMs: opts.initialSyncMs } : {}),
    install: snap => { holder.store?.swap(snap); holder.onInstall?.(snap) }
  })
  const holder: { store?: SnapshotStore; onInstall?: (snap: Snapshot) => void } = {}
  const first = await manager.start()
  opts.onProblems?.(first.problems)
  const snapshot = first.snapshot
  const store = new SnapshotStore(snapshot)
  holder.store = store
  const rt = new RuntimeState(snapshot, opts.now)
  const hc = new HealthChecker(rt, { lookup: opts.dnsLookup, dnsRefreshMs: opts.dnsRefreshMs })
  rt.onRemoved(names => pools.release(names))
  // Clusters a reload removed are released once their requests drained and the grace period passed.
  const retireTimer = setInterval(() => rt.collect(), 5000)
  retireTimer.unref()
  store.onSwap(next => { rt.reconcile(next); hc.sync() })
  hc.sync()
  const securityStats = newSecurityStats()
  const verifier = new JwtVerifier()
  const metrics = new Metrics({ runtime: () => rt, generation: () => manager.current.generation, reloadFailures: () => manager.reloadFailures, security: securityStats,
    snapshot: () => store.current, gatewayWorkload })
  registerSyncMetrics(metrics.registry, () => manager.syncStatus())
  const accessLog = createAccessLogWriter(opts.accessLog ?? 'stdout')
  const host = opts.host ?? '0.0.0.0'
  const counters = { inFlight: 0 }
  // Set when shutdown begins: every response from then on carries Connection: close.
  const drain = { on: false }
  const apps: Array<{ app: FastifyInstance; name: string; kind: 'gateway' | 'mesh'; configPort: number; bindPort: number }> = []
  const tracing = opts.tracing !== undefined ? new Tracing(opts.tracing) : undefined
  const common = { store, pools, runtime: rt, accessLog, metrics, counters, drain, random: opts.random, now: opts.now, limits: limitsOf(opts), serverOptions: opts.serverOptions,
    verifier, securityStats, tracing }
  for (const l of snapshot.gateways) {
    apps.push({ app: await createListener({ ...common, kind: 'gateway', configPort: l.port }), name: l.name, kind: 'gateway', configPort: l.port, bindPort: opts.portMap?.[l.port] ?? l.port })
  }
  if (opts.meshPort !== null) {
    apps.push({ app: await createListener({ ...common, kind: 'mesh', configPort: 0 }), name: 'mesh', kind: 'mesh', configPort: 0, bindPort: opts.meshPort ?? 15001 })
  }
  const listeners: BoundListener[] = []
  // TCP and TLS-passthrough ports, and mesh TCP ports: raw sockets (plugins/tcp).
  const tcp = new TcpListeners({ store, runtime: rt, accessLog, metrics, host, portMap: opts.portMap, random: opts.random, now: opts.now })
  const bind = async (a: typeof apps[number], snap: Snapshot): Promise<void> => {
    await a.app.listen({ host, port: a.bindPort })
    const addr = a.app.server.address() as AddressInfo
    const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host
    const secure = a.kind === 'gateway' && snap.gateways.find(g => g.port === a.configPort)?.tls !== undefined
    listeners.push({ name: a.name, kind: a.kind, configPort: a.configPort, host, port: addr.port, url: `${secure ? 'https' : 'http'}://${shown.includes(':') ? `[${shown}]` : shown}:${addr.port}` })
  }
  // A store-mode replica that started before its first sync has no Gateway listener yet: they
  // are opened with the first real configuration (and fixed from then on, as always).
  if (!manager.synced) {
    holder.onInstall = snap => {
      holder.onInstall = undefined
      void (async () => {
        for (const l of snap.gateways) {
          const a = { app: await createListener({ ...common, kind: 'gateway', configPort: l.port }), name: l.name, kind: 'gateway' as const, configPort: l.port, bindPort: opts.portMap?.[l.port] ?? l.port }
          apps.push(a)
          await bind(a, snap)
        }
        listeners.push(...await tcp.listen(snap))
      })().catch(err => opts.onReload?.({ ok: false, problems: [{ severity: 'Error', code: Codes.Io, message: `a Gateway listener could not be opened: ${(err as Error).message}`, file: '-', line: 1, column: 1 }], source: 'etcd' }))
    }
  }
  try {
    for (const a of apps) await bind(a, snapshot)
    listeners.push(...await tcp.listen(snapshot))
  } catch (err) {
    await Promise.allSettled([...apps.map(a => a.app.close()), tcp.close(0)])
    hc.close()
    clearInterval(retireTimer)
    verifier.close()
        await pools.close()
    await tracing?.shutdown()
    throw err
  }

  // Optional file watching (the one watcher: debounced, read until settled, all-or-nothing).
  const stopWatching = opts.watch === true && manager.paths !== undefined
    ? watchPaths(manager.paths, opts.watchDebounceMs ?? 300, () => {
      manager.reload('watch').then(
        gen => opts.onReload?.({ ok: true, generation: gen }),
        err => opts.onReload?.({ ok: false, problems: err instanceof ConfigError ? err.problems : [], source: 'watch' })
      )
    })
    : () => {}

  let ready = true
  let closing: Promise<void> | undefined
  const limits = resolveLimits(limitsOf(opts))
  return {
    pathPolicy: { normalization: limits.pathNormalization, escapedSlashes: limits.escapedSlashes },
    listeners,
    store,
    runtime: rt,
    config: manager,
    metrics,
    problems: first.problems,
    health: hc,
    pools,
    get ready () { return ready && manager.synced },
    get notReadyReason () { return !ready ? 'shutting down' : manager.notSyncedReason },
    get inFlight () { return counters.inFlight },
    reload: async config => {
      const gen = config === undefined ? await manager.reload('files') : await manager.applyInputsAll(config.inputs)
      return { snapshot: gen.snapshot, problems: gen.problems }
    },
    close: (deadlineMs = 10_000) => {
      closing ??= (async () => {
        ready = false
        drain.on = true
        stopWatching()
        // The hard deadline: whatever still runs (HTTP/1 sockets, HTTP/2 sessions, upstream
        // requests) is destroyed, so close() always returns.
        const timer = setTimeout(() => {
          for (const a of apps) (a.app.server as { closeAllConnections?: () => void }).closeAllConnections?.()
          tcp.destroyAll()
          pools.destroy()
        }, deadlineMs)
        timer.unref()
        // preStop window: readiness is already false; keep serving while load balancers notice.
        const delay = Math.min(opts.shutdownDelayMs ?? 0, deadlineMs)
        if (delay > 0) await new Promise(resolve => setTimeout(resolve, delay))
        // Fastify's close stops accepting, lets requests in flight finish and closes idle
        // keep-alive connections (forceCloseConnections: 'idle').
        // HTTP/2 servers close before their sessions end (those get GOAWAY and finish their streams),
        // so the pools' close, which waits for requests in flight, is also under the deadline.
        await Promise.allSettled([...apps.map(a => a.app.close()), tcp.close(deadlineMs)])
        hc.close()
        clearInterval(retireTimer)
        rt.collect(true)
        verifier.close()
        await pools.close()
        clearTimeout(timer)
        accessLog.flush()
        await accessLog.close()
        // The spans still batched are exported before the process goes.
        await tracing?.shutdown().catch(() => {})
        await manager.close()
      })()
      return closing
    }
  }
}
