import type { Authz, PeerIdentity } from './authz.js'
import type { CompiledJwtRule } from './jwt-rules.js'

/**
 * The security resources compiled into the snapshot, per workload. Policies select workloads
 * as Istio does (docs/security.md#workloads):
 * - the ingress gateway workload is meshgate itself, with the labels and namespace it is
 *   started with (default `app: istio-ingressgateway, istio: ingressgateway` in `istio-system`);
 * - a mesh destination's workloads are its endpoints (WorkloadEntries and ServiceEntry
 *   endpoints), with their labels, in their ServiceEntry's namespace. A policy applies to a
 *   cluster when it selects any of the cluster's endpoints.
 * A policy in the root namespace without a selector applies to every workload; elsewhere, to
 * every workload of its namespace.
 */
/** A caller identified by its address: the identity policies read, and its workload labels (for metrics). */
export interface CallerIdentity extends PeerIdentity {
  /** The WorkloadEntry's or endpoint's labels; absent when the address is registered with different labels. */
  labels?: Readonly<Record<string, string>>
}

export interface SecurityPoint {
  authz?: Authz
  jwt?: readonly CompiledJwtRule[]
}

export interface SecuritySpec {
  /** The ingress gateway workload's policies (undefined: none apply). */
  gateway?: SecurityPoint
  /** Mesh destination workloads' policies by cluster name (absent: none apply). */
  clusters: ReadonlyMap<string, SecurityPoint>
  /** Callers identified by address: WorkloadEntry and ServiceEntry endpoint addresses. */
  sources: ReadonlyMap<string, PeerIdentity>
  /** The gateway's own identity, the source its forwarded requests carry to a destination. */
  gatewayIdentity: PeerIdentity
}
