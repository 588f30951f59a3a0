import type { ClusterSpec, EndpointSpec, Snapshot } from '../compile/snapshot.js'

/** Mutable per-cluster state, kept outside the frozen snapshot and keyed by cluster name. */
export class ClusterState {
  /** Round-robin cursor. */
  cursor = 0
  constructor (public spec: ClusterSpec) {}
}

/**
 * Runtime state for all clusters. `reconcile` runs on every snapshot swap: clusters whose name
 * survives keep their state (with the new spec), removed clusters are dropped.
 */
export class RuntimeState {
  private readonly clusters = new Map<string, ClusterState>()

  constructor (snapshot: Snapshot) {
    this.reconcile(snapshot)
  }

  reconcile (snapshot: Snapshot): void {
    for (const name of [...this.clusters.keys()]) {
      if (!snapshot.clusters.has(name)) this.clusters.delete(name)
    }
    for (const [name, spec] of snapshot.clusters) {
      const cur = this.clusters.get(name)
      if (cur === undefined) this.clusters.set(name, new ClusterState(spec))
      else cur.spec = spec
    }
  }

  cluster (name: string): ClusterState | undefined {
    return this.clusters.get(name)
  }

  /** Pick an endpoint of a cluster (round robin for now); undefined when it has none. */
  pick (state: ClusterState): EndpointSpec | undefined {
    const eps = state.spec.endpoints
    if (eps.length === 0) return undefined
    const e = eps[state.cursor % eps.length]
    state.cursor = (state.cursor + 1) % eps.length
    return e
  }
}
