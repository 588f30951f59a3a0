import type { ClusterSpec, EndpointSpec } from '../compile/snapshot.js'
import { createBalancer, type LoadBalancer, type PickContext } from '../upstream/balancers.js'
import { EndpointState, Flag, type HostHealth } from '../upstream/endpoint.js'
import { OutlierDetector, type Outcome, outlierConfig } from '../upstream/outlier.js'
import { type PoolLimits, poolLimits } from '../resilience/pool.js'
import { EndpointBreaker } from '../resilience/breaker.js'

/**
 * The mutable state of one cluster: its endpoints (with shared host health), the maintained
 * healthy set the balancer reads, outlier detection, and request counters for pool limits.
 * Survives a reload when the cluster's name does (spec replaced, state kept).
 */
export class ClusterState {
  spec: ClusterSpec
  endpoints: EndpointState[] = []
  /** Healthy endpoints, rebuilt when a flag changes; the array identity changes with its content. */
  healthy: readonly EndpointState[] = []
  lb: LoadBalancer
  outlier: OutlierDetector | undefined
  limits: PoolLimits
  /** Requests in flight to the cluster (those beyond maxConnections are the pending ones). */
  active = 0
  /** Retries in flight, for `maxRetries`. */
  activeRetries = 0
  /** Counters for the admin API and metrics. */
  stats = { requests: 0, overflows: 0, noHealthy: 0, ejections: 0, retries: 0 }
  /** One opossum breaker per endpoint, created on first use. */
  readonly breakers = new Map<string, EndpointBreaker>()
  private policyKey = ''

  constructor (spec: ClusterSpec, private readonly hosts: (key: string) => HostHealth, private readonly now: () => number) {
    this.spec = spec
    this.lb = createBalancer(spec.policy.loadBalancer)
    this.limits = poolLimits(spec.policy.connectionPool)
    this.update(spec)
  }

  /** Apply a new spec (reload): endpoints with the same key keep their state. */
  update (spec: ClusterSpec): void {
    this.spec = spec
    const key = JSON.stringify([spec.policy, spec.breaker])
    if (key !== this.policyKey) {
      this.shutdownBreakers()
      this.policyKey = key
      this.lb = createBalancer(spec.policy.loadBalancer)
      const oc = outlierConfig(spec.policy.outlierDetection)
      this.outlier = oc === undefined ? undefined : new OutlierDetector(oc, this.now)
      // Without outlier detection nothing would ever sweep an ejection away: release them now.
      if (oc === undefined) for (const e of this.endpoints) clearOutlierState(e)
      this.limits = poolLimits(spec.policy.connectionPool)
    }
    const old = new Map(this.endpoints.map(e => [e.key, e]))
    const next: EndpointState[] = []
    for (const e of spec.endpoints) {
      const cur = old.get(e.key)
      if (cur !== undefined) { cur.spec = e; old.delete(e.key); next.push(cur) } else next.push(this.newEndpoint(e))
    }
    for (const gone of old.values()) {
      gone.host.watchers.delete(this)
      this.breakers.get(gone.key)?.shutdown()
      this.breakers.delete(gone.key)
    }
    this.endpoints = next
    this.refresh()
  }

  private newEndpoint (spec: EndpointSpec): EndpointState {
    const host = this.hosts(spec.key)
    host.watchers.add(this)
    return new EndpointState(spec, host)
  }

  /**
   * Rebuild the healthy set. With outlier detection and `minHealthPercent` > 0, Envoy's panic
   * mode applies: below that share of healthy hosts, every present host is used.
   */
  refresh (): void {
    const healthy = this.endpoints.filter(e => e.healthy)
    const min = this.outlier?.config.minHealthPercent ?? 0
    if (min > 0 && this.endpoints.length > 0) {
      const present = this.endpoints.filter(e => e.present)
      if (present.length > 0 && (healthy.length * 100) / present.length < min) {
        this.healthy = present
        this.lb.reset()
        return
      }
    }
    this.healthy = healthy
    this.lb.reset()
  }

  hasHealthy (): boolean {
    return this.healthy.length > 0
  }

  pick (ctx: PickContext): EndpointState | undefined {
    return this.lb.pick(this.healthy, ctx)
  }

  /** Record a request outcome for outlier detection; refreshes the healthy set on ejection. */
  record (ep: EndpointState, outcome: Outcome): void {
    if (outcome.kind === 'local' || outcome.status >= 500) ep.failures++
    if (this.outlier === undefined) return
    if (this.outlier.record(ep, outcome, this.endpoints)) {
      this.stats.ejections++
      this.refresh()
    }
  }

  /** The outlier interval sweep (run by a timer in the plugin layer). */
  sweep (): void {
    if (this.outlier?.sweep(this.endpoints) === true) this.refresh()
  }

  /** The endpoint's breaker (undefined when breakers are disabled for this cluster). */
  breaker (ep: EndpointState): EndpointBreaker | undefined {
    if (!this.spec.breaker.enabled) return undefined
    let b = this.breakers.get(ep.key)
    if (b === undefined) {
      b = new EndpointBreaker(this.spec.breaker, state => this.setBreakerOpen(ep, state === 'open'))
      this.breakers.set(ep.key, b)
    }
    return b
  }

  private shutdownBreakers (): void {
    for (const b of this.breakers.values()) b.shutdown()
    this.breakers.clear()
    for (const e of this.endpoints) e.flags &= ~Flag.BreakerOpen
  }

  /** Stop watching shared host health and shut the breakers down (cluster removed). */
  dispose (): void {
    this.shutdownBreakers()
    for (const e of this.endpoints) e.host.watchers.delete(this)
    this.endpoints = []
    this.healthy = []
  }

  setBreakerOpen (ep: EndpointState, open: boolean): void {
    const next = open ? ep.flags | Flag.BreakerOpen : ep.flags & ~Flag.BreakerOpen
    if (next === ep.flags) return
    ep.flags = next
    this.refresh()
  }
}

function clearOutlierState (e: EndpointState): void {
  e.flags &= ~Flag.Ejected
  e.ejectedUntil = 0
  e.ejections = 0
  e.consecutive5xx = 0
  e.consecutiveGateway = 0
  e.consecutiveLocal = 0
}
