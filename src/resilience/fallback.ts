import type { CompiledDestination } from '../compile/snapshot.js'
import { clusterFor } from '../compile/compile.js'

/** What the fallback resolution decided for one weighted destination (docs/fallback.md#how-fallback-decides). */
export interface FallbackDecision {
  /** The cluster to forward to, or undefined when none is usable. */
  cluster?: string
  /** The destination's own cluster (logged as `upstream_cluster` when nothing serves). */
  primary: string
  /** Set when fallback was taken or attempted. */
  fallbackCluster?: string
  /** `fallback cluster is healthy` / `fallback cluster is unhealthy`, or undefined when not needed. */
  result?: 'fallback cluster is healthy' | 'fallback cluster is unhealthy'
  /** Why nothing is usable: the primary cluster does not exist (NC) or has no healthy endpoint (UH). */
  failure?: 'NC' | 'UH'
}

/** Does a cluster have a healthy endpoint now? (Read-only.) */
export interface HealthView {
  hasHealthy: (cluster: string) => boolean
}

/**
 * ASM fallback, decided by health before forwarding. A cluster exists when the request's own
 * snapshot (`clusters`) has it:
 * 1. the destination's cluster has a healthy endpoint → it serves;
 * 2. else its fallback target has one → the fallback serves;
 * 3. else 503 UH (`no healthy upstream`); a cluster that does not exist counts as having no
 *    healthy endpoint for the fallback, and is NC when there is no fallback to try.
 * Never cascades: the fallback target's own fallback is not consulted.
 */
export function resolveFallback (dest: CompiledDestination, port: number, clusters: ReadonlyMap<string, unknown>, health: HealthView): FallbackDecision {
  const primary = clusterFor(dest, port)
  if (clusters.has(primary) && health.hasHealthy(primary)) return { cluster: primary, primary }
  if (dest.fallback === undefined) {
    return { primary, failure: clusters.has(primary) ? 'UH' : 'NC' }
  }
  const fb = clusterFor(dest.fallback, port)
  if (clusters.has(fb) && health.hasHealthy(fb)) {
    return { cluster: fb, primary, fallbackCluster: fb, result: 'fallback cluster is healthy' }
  }
  return { primary, fallbackCluster: fb, result: 'fallback cluster is unhealthy', failure: 'UH' }
}
