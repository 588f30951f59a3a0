import type { Snapshot } from '../compile/snapshot.js'
import { HostHealth } from '../upstream/endpoint.js'
import { ClusterState } from './cluster-state.js'

/**
 * Runtime state for every cluster and host, kept outside the frozen snapshot. `reconcile` runs
 * on each snapshot swap: clusters whose name survives keep their state (health, ejections,
 * counters) with the new spec; removed clusters are disposed and reported so their pools,
 * timers and breakers can be released.
 */
export class RuntimeState {
  private readonly clusters = new Map<string, ClusterState>()
  private readonly hosts = new Map<string, HostHealth>()
  private readonly removedListeners: Array<(names: string[]) => void> = []
  readonly now: () => number

  constructor (snapshot: Snapshot, now: () => number = Date.now) {
    this.now = now
    this.reconcile(snapshot)
  }

  reconcile (snapshot: Snapshot): void {
    const removed: string[] = []
    for (const [name, state] of this.clusters) {
      if (!snapshot.clusters.has(name)) {
        state.dispose()
        this.clusters.delete(name)
        removed.push(name)
      }
    }
    for (const [name, spec] of snapshot.clusters) {
      const cur = this.clusters.get(name)
      if (cur === undefined) this.clusters.set(name, new ClusterState(spec, k => this.host(k), this.now))
      else cur.update(spec)
    }
    // Hosts no cluster watches any more are forgotten.
    for (const [key, h] of this.hosts) if (h.watchers.size === 0) this.hosts.delete(key)
    if (removed.length > 0) for (const fn of this.removedListeners) fn(removed)
  }

  /** Called with the names of clusters a reconcile removed. */
  onRemoved (fn: (names: string[]) => void): void {
    this.removedListeners.push(fn)
  }

  cluster (name: string): ClusterState | undefined {
    return this.clusters.get(name)
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
