import type { Snapshot } from '../compile/snapshot.js'
import { HostHealth } from '../upstream/endpoint.js'
import { ClusterState } from './cluster-state.js'

/**
 * How long a cluster that left the configuration stays reachable by name for requests that
 * started on an older snapshot (a retry, a request waiting out a fault delay).
 */
export const RETIRE_GRACE_MS = 30_000

/**
 * Runtime state for every cluster and host, kept outside the frozen snapshot. `reconcile` runs
 * on each snapshot swap: clusters whose name survives keep their state (health, ejections,
 * counters) with the new spec; removed clusters retire: requests that started on the old
 * snapshot still find them, and once nothing is in flight to them and the grace period has
 * passed (`collect`), they are disposed and reported so their pools, timers and breakers are
 * released after their requests drained (hardening H1).
 */
export class RuntimeState {
  private readonly clusters = new Map<string, ClusterState>()
  private readonly retiring = new Map<string, { state: ClusterState; since: number }>()
  private readonly hosts = new Map<string, HostHealth>()
  private readonly removedListeners: Array<(names: string[]) => void> = []
  readonly now: () => number

  constructor (snapshot: Snapshot, now: () => number = Date.now) {
    this.now = now
    this.reconcile(snapshot)
  }

  reconcile (snapshot: Snapshot): void {
    const now = this.now()
    for (const [name, state] of this.clusters) {
      if (!snapshot.clusters.has(name)) {
        this.clusters.delete(name)
        this.retiring.set(name, { state, since: now })
      }
    }
    for (const [name, spec] of snapshot.clusters) {
      let cur = this.clusters.get(name)
      if (cur === undefined) {
        // A cluster that comes back within its grace period keeps its state.
        cur = this.retiring.get(name)?.state
        this.retiring.delete(name)
        if (cur !== undefined) this.clusters.set(name, cur)
      }
      if (cur === undefined) this.clusters.set(name, new ClusterState(spec, k => this.host(k), this.now))
      else cur.update(spec)
    }
    this.collect()
  }

  /**
   * Dispose retired clusters with nothing in flight whose grace period is over (`force`: all
   * of them, at shutdown), report them to `onRemoved` listeners, and forget unwatched hosts.
   */
  collect (force = false): void {
    const now = this.now()
    const removed: string[] = []
    for (const [name, r] of this.retiring) {
      if (force || (r.state.active === 0 && now - r.since >= RETIRE_GRACE_MS)) {
        r.state.dispose()
        this.retiring.delete(name)
        removed.push(name)
      }
    }
    // Hosts no cluster watches any more are forgotten.
    for (const [key, h] of this.hosts) if (h.watchers.size === 0) this.hosts.delete(key)
    if (removed.length > 0) for (const fn of this.removedListeners) fn(removed)
  }

  /** Names of clusters that left the configuration but are not released yet. */
  retiringClusters (): string[] {
    return [...this.retiring.keys()]
  }

  /** Called with the names of clusters a reconcile removed. */
  onRemoved (fn: (names: string[]) => void): void {
    this.removedListeners.push(fn)
  }

  /** A configured cluster, or a retiring one (requests of an older snapshot still reach it). */
  cluster (name: string): ClusterState | undefined {
    return this.clusters.get(name) ?? this.retiring.get(name)?.state
  }

  allClusters (): IterableIterator<ClusterState> {
    return this.clusters.values()
  }

  /** Shared health of an `address:port`, created on first use. */
  host (key: string): HostHealth {
    let h = this.hosts.get(key)
    if (h === undefined) { h = new HostHealth(key); this.hosts.set(key, h) }
    return h
  }

  allHosts (): IterableIterator<HostHealth> {
    return this.hosts.values()
  }
}
