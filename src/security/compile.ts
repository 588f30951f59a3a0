import type { AuthorizationPolicy, PolicyTargetReference, RequestAuthentication, ResourceSet, WorkloadSelector } from '../config/model.js'
import type { ClusterSpec } from '../compile/snapshot.js'
import type { Registry } from '../compile/services.js'
import { toFqdn } from '../config/hosts.js'
import { compileAuthz } from './authz.js'
import { compileJwtRule } from './jwt-rules.js'
import type { CallerIdentity, SecurityPoint, SecuritySpec } from './spec.js'

export interface GatewayWorkload {
  namespace: string
  labels: Readonly<Record<string, string>>
  serviceAccount: string
}

export const DEFAULT_GATEWAY_WORKLOAD: GatewayWorkload = Object.freeze({
  namespace: 'istio-system',
  labels: Object.freeze({ app: 'istio-ingressgateway', istio: 'ingressgateway' }),
  serviceAccount: 'istio-ingressgateway-service-account'
})

/** Istio's root namespace (meshConfig.rootNamespace): its selector-less policies are mesh-wide. */
export const ROOT_NAMESPACE = 'istio-system'
const TRUST_DOMAIN = 'cluster.local'

export function principalOf (namespace: string, serviceAccount: string): string {
  return `${TRUST_DOMAIN}/ns/${namespace}/sa/${serviceAccount}`
}

interface Target { namespace: string; labels: ReadonlyArray<Readonly<Record<string, string>>>; gateway: boolean; hosts: ReadonlySet<string>; gatewayNames: ReadonlySet<string> }

type Selectable = AuthorizationPolicy | RequestAuthentication

/** Does the policy apply to the workload? */
function selects (p: Selectable, w: Target): boolean {
  const ns = p.metadata.namespace
  const refs: PolicyTargetReference[] = [...(p.spec.targetRef !== undefined ? [p.spec.targetRef] : []), ...(p.spec.targetRefs ?? [])]
  if (refs.length > 0) return refs.some(r => refSelects(r, ns, w))
  const sel: WorkloadSelector | undefined = p.spec.selector
  if (ns !== ROOT_NAMESPACE && ns !== w.namespace) return false
  if (sel?.matchLabels === undefined || Object.keys(sel.matchLabels).length === 0) return true
  return w.labels.some(l => Object.entries(sel.matchLabels!).every(([k, v]) => l[k] === v))
}

function refSelects (r: PolicyTargetReference, policyNs: string, w: Target): boolean {
  const ns = r.namespace ?? policyNs
  if (r.kind === 'Gateway') return w.gateway && w.gatewayNames.has(`${ns}/${r.name}`)
  if (r.kind === 'Service') return !w.gateway && w.hosts.has(toFqdn(r.name, ns))
  if (r.kind === 'ServiceEntry') return !w.gateway && w.hosts.has(`se:${ns}/${r.name}`)
  return false
}

function point (set: ResourceSet, w: Target): SecurityPoint | undefined {
  const policies = set.authorizationPolicies.filter(p => selects(p, w))
  const reqs = set.requestAuthentications.filter(p => selects(p, w))
  if (policies.length === 0 && reqs.length === 0) return undefined
  const out: SecurityPoint = {}
  if (policies.length > 0) out.authz = compileAuthz(policies)
  const rules = reqs.flatMap(r => (r.spec.jwtRules ?? []).map((rule, i) => compileJwtRule(rule, `${r.metadata.namespace}/${r.metadata.name}[${i}]`)))
  if (rules.length > 0) out.jwt = rules
  return out
}

/**
 * Compile the security view, or undefined when the configuration has no AuthorizationPolicy and
 * no RequestAuthentication: the request path then skips security entirely.
 */
export function compileSecurity (set: ResourceSet, reg: Registry, clusters: ReadonlyMap<string, ClusterSpec>, gw: GatewayWorkload = DEFAULT_GATEWAY_WORKLOAD,
  callers: ReadonlyMap<string, CallerIdentity> = sourceIdentities(set)): SecuritySpec | undefined {
  if (set.authorizationPolicies.length === 0 && set.requestAuthentications.length === 0) return undefined
  const gatewayNames = new Set(set.gateways.map(g => `${g.metadata.namespace}/${g.metadata.name}`))
  const gateway = point(set, { namespace: gw.namespace, labels: [gw.labels], gateway: true, hosts: new Set(), gatewayNames })
  // ServiceEntry names by host, for `targetRef: {kind: ServiceEntry}`.
  const entriesByHost = new Map<string, string[]>()
  for (const se of set.serviceEntries) {
    for (const h of se.spec.hosts) {
      const fqdn = toFqdn(h, se.metadata.namespace)
      entriesByHost.set(fqdn, [...(entriesByHost.get(fqdn) ?? []), `se:${se.metadata.namespace}/${se.metadata.name}`])
    }
  }
  const byCluster = new Map<string, SecurityPoint>()
  for (const c of clusters.values()) {
    const svc = reg.services.get(c.host)
    if (svc === undefined) continue
    const hosts = new Set([c.host, ...(entriesByHost.get(c.host) ?? [])])
    const p = point(set, { namespace: svc.namespace, labels: c.endpoints.map(e => e.labels), gateway: false, hosts, gatewayNames })
    if (p !== undefined) byCluster.set(c.name, p)
  }
  return {
    ...(gateway !== undefined ? { gateway } : {}),
    clusters: byCluster,
    sources: callers,
    gatewayIdentity: { principal: principalOf(gw.namespace, gw.serviceAccount), namespace: gw.namespace, serviceAccount: gw.serviceAccount }
  }
}

/**
 * Caller identity by address: a WorkloadEntry (or ServiceEntry endpoint) address names its
 * namespace and, with `serviceAccount`, its principal. An address registered with two different
 * identities identifies nobody; one registered with one identity but different labels (several
 * workloads behind one address) keeps the identity without labels.
 */
export function sourceIdentities (set: ResourceSet): Map<string, CallerIdentity> {
  const seen = new Map<string, CallerIdentity | null>()
  const add = (address: string | undefined, namespace: string, sa: string | undefined, labels: Readonly<Record<string, string>>): void => {
    if (address === undefined || address === '' || !/^[0-9a-fA-F:.]+$/.test(address)) return
    const id: CallerIdentity = sa !== undefined ? { principal: principalOf(namespace, sa), namespace, serviceAccount: sa, labels } : { namespace, labels }
    const prev = seen.get(address)
    if (prev === undefined) seen.set(address, id)
    else if (prev !== null && (prev.principal !== id.principal || prev.namespace !== id.namespace)) seen.set(address, null)
    else if (prev?.labels !== undefined && !sameLabels(prev.labels, labels)) seen.set(address, { ...prev, labels: undefined })
  }
  for (const we of set.workloadEntries) add(we.spec.address, we.metadata.namespace, we.spec.serviceAccount, we.spec.labels ?? {})
  for (const se of set.serviceEntries) for (const e of se.spec.endpoints ?? []) add(e.address, se.metadata.namespace, e.serviceAccount, e.labels ?? {})
  const out = new Map<string, CallerIdentity>()
  for (const [a, id] of seen) if (id !== null) out.set(a, Object.freeze(id))
  return out
}

function sameLabels (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a)
  return ka.length === Object.keys(b).length && ka.every(k => a[k] === b[k])
}
