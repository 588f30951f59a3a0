import type { ConnectionPoolSettings } from '../config/model.js'
import { parseDurationMs } from '../config/duration.js'

/**
 * Connection-pool limits of one cluster, Istio defaults filled in. Istio leaves every limit at
 * MaxUint32 unless set (cluster_traffic_policy.go), so an unset limit is Infinity here.
 */
export interface PoolLimits {
  /** `tcp.maxConnections`: connections to the cluster; requests beyond it wait (pending). */
  maxConnections: number
  /** `tcp.connectTimeout`, default 10 s. */
  connectTimeoutMs: number
  /** `http.http1MaxPendingRequests`: requests waiting for a connection; overflow is 503 UO. */
  maxPending: number
  /** `http.http2MaxRequests`: requests in flight to the cluster; overflow is 503 UO. */
  maxRequests: number
  /** `http.maxRequestsPerConnection`: 1 disables keep-alive; 0 means unlimited. */
  maxRequestsPerConnection: number
  /** `http.maxRetries`: retries in flight to the cluster (Envoy default 3… Istio sets MaxUint32). */
  maxRetries: number
  /** `http.idleTimeout` / `tcp.idleTimeout`: idle upstream connections closed after this. Default 1 h. */
  idleTimeoutMs: number
}

const UNLIMITED = Number.POSITIVE_INFINITY

export function poolLimits (cp: ConnectionPoolSettings | undefined): PoolLimits {
  const pos = (n: number | undefined): number => (n === undefined || n <= 0 ? UNLIMITED : n)
  return {
    maxConnections: pos(cp?.tcp?.maxConnections),
    connectTimeoutMs: parseDurationMs(cp?.tcp?.connectTimeout ?? '10s') ?? 10_000,
    maxPending: pos(cp?.http?.http1MaxPendingRequests),
    maxRequests: pos(cp?.http?.http2MaxRequests),
    maxRequestsPerConnection: cp?.http?.maxRequestsPerConnection ?? 0,
    maxRetries: pos(cp?.http?.maxRetries),
    idleTimeoutMs: parseDurationMs(cp?.http?.idleTimeout ?? cp?.tcp?.idleTimeout ?? '1h') ?? 3_600_000
  }
}

/**
 * Admission of one request to a cluster: Envoy's circuit-breaker thresholds, cluster-wide.
 * With HTTP/1.1 a request beyond `maxConnections` waits for a connection (pending); more
 * pending than `http1MaxPendingRequests`, or more in flight than `http2MaxRequests`,
 * overflows at once (503 UO) instead of queueing without bound.
 */
export function admit (limits: PoolLimits, activeInCluster: number): 'go' | 'overflow' {
  if (activeInCluster >= limits.maxRequests) return 'overflow'
  if (activeInCluster >= limits.maxConnections && activeInCluster - limits.maxConnections >= limits.maxPending) return 'overflow'
  return 'go'
}
