import type { EndpointSpec } from '../compile/snapshot.js'

/**
 * Health flags, as Envoy keeps them per host (envoy/upstream/upstream.h): each writer sets and
 * clears only its own flag; load balancers only read the maintained healthy set.
 */
export const Flag = {
  /** Active probe failing (the analogue of Kubernetes readiness). */
  FailedProbe: 1,
  /** A connect failure or reset before any response: down at once until a probe passes. */
  FailedConnect: 2,
  /** Ejected by outlier detection. */
  Ejected: 4,
  /** Circuit breaker open. */
  BreakerOpen: 8,
  /** Drained by an operator. */
  Drained: 16,
  /** DNS name no longer resolves. */
  Unresolved: 32
} as const

/** Flags that take a host out of its service entirely (like a pod missing from EDS). */
export const ABSENT_FLAGS = Flag.FailedProbe | Flag.FailedConnect | Flag.Drained | Flag.Unresolved

/**
 * Health shared by every cluster an address:port belongs to (the base cluster and each subset):
 * probe, connection, DNS and drain state describe the workload, not the cluster.
 */
export class HostHealth {
  flags = 0
  /** Clusters to refresh when the flags change. */
  readonly watchers = new Set<{ refresh: () => void }>()
  /** Probe bookkeeping (consecutive results). */
  probeSuccesses = 0
  probeFailures = 0
  lastProbeAt = 0
  lastProbeError = ''

  constructor (readonly key: string) {}

  set (flag: number, on: boolean): void {
    const next = on ? this.flags | flag : this.flags & ~flag
    if (next === this.flags) return
    this.flags = next
    for (const w of this.watchers) w.refresh()
  }
}

/** One endpoint inside one cluster: the shared host health plus per-cluster outlier and load state. */
export class EndpointState {
  /** Cluster-local flags (Ejected, BreakerOpen). */
  flags = 0
  /** Requests in flight (LEAST_REQUEST, pool limits). */
  active = 0
  // Outlier detection (per cluster, as Envoy's DetectorHostMonitor).
  consecutive5xx = 0
  consecutiveGateway = 0
  consecutiveLocal = 0
  /** Times ejected; multiplies the base ejection time, decays while healthy. */
  ejections = 0
  /** Epoch ms when the current ejection ends (0 when not ejected). */
  ejectedUntil = 0
  /** Totals for the admin API and metrics. */
  requests = 0
  failures = 0

  constructor (public spec: EndpointSpec, readonly host: HostHealth) {}

  get key (): string {
    return this.spec.key
  }

  /** Usable for routing: no shared or cluster-local flag set. */
  get healthy (): boolean {
    return this.flags === 0 && this.host.flags === 0
  }

  /** Present in the service (not failing probes, not drained): counts for panic thresholds. */
  get present (): boolean {
    return (this.host.flags & ABSENT_FLAGS) === 0
  }
}
