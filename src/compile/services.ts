import type {
  DestinationRule, ResourceSet, ServiceEntry, ServicePort, TrafficPolicy, WorkloadEntrySpec, Resolution
} from '../config/model.js'
import { hostMatches, toFqdn } from '../config/hosts.js'
import { type ClusterSpec, type EndpointSpec, clusterName } from './snapshot.js'

/** A service registered by one or more ServiceEntries, under its FQDN. */
export interface Service {
  fqdn: string
  namespace: string
  ports: ServicePort[]
  resolution: Resolution
  /** Workloads: inline endpoints and selected WorkloadEntries. */
  workloads: WorkloadEntrySpec[]
}

/** The service registry: FQDN → service, plus wildcard hosts for reference checks. */
export interface Registry {
  services: Map<string, Service>
  wildcards: string[]
  rules: Map<string, DestinationRule>
}

/** Build the registry from ServiceEntries (hosts expanded against their namespace) and WorkloadEntries. */
export function buildRegistry (set: ResourceSet): Registry {
  const services = new Map<string, Service>()
  const wildcards: string[] = []
  for (const se of set.serviceEntries) {
    const workloads = workloadsOf(se, set)
    for (const h of se.spec.hosts) {
      const fqdn = toFqdn(h, se.metadata.namespace)
      if (fqdn.startsWith('*')) { wildcards.push(fqdn); continue }
      const existing = services.get(fqdn)
      if (existing === undefined) {
        services.set(fqdn, {
          fqdn,
          namespace: se.metadata.namespace,
          ports: [...(se.spec.ports ?? [])],
          resolution: se.spec.resolution ?? 'NONE',
          workloads: [...workloads]
        })
      } else {
        // Several ServiceEntries for one host: ports and workloads are merged.
        for (const p of se.spec.ports ?? []) {
          if (!existing.ports.some(q => q.number === p.number)) existing.ports.push(p)
        }
        existing.workloads.push(...workloads)
      }
    }
  }
  const rules = new Map<string, DestinationRule>()
  for (const dr of set.destinationRules) {
    const fqdn = toFqdn(dr.spec.host, dr.metadata.namespace)
    if (!rules.has(fqdn)) rules.set(fqdn, dr)
  }
  return { services, wildcards, rules }
}

function workloadsOf (se: ServiceEntry, set: ResourceSet): WorkloadEntrySpec[] {
  const out: WorkloadEntrySpec[] = [...(se.spec.endpoints ?? [])]
  const sel = se.spec.workloadSelector?.labels
  if (sel !== undefined) {
    for (const we of set.workloadEntries) {
      if (we.metadata.namespace !== se.metadata.namespace) continue
      if (labelsInclude(we.spec.labels ?? {}, sel)) out.push(we.spec)
    }
  }
  return out
}

/** Does `labels` include every key/value of `selector`? (A subset selects endpoints this way.) */
export function labelsInclude (labels: Readonly<Record<string, string>>, selector: Readonly<Record<string, string>>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false
  return true
}

/** Does any registered host (exact or wildcard) cover `fqdn`? */
export function isRegistered (reg: Registry, fqdn: string): boolean {
  return reg.services.has(fqdn) || reg.wildcards.some(w => hostMatches(w, fqdn))
}

const POLICY_FIELDS = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'] as const

/**
 * The effective policy of one cluster: a subset's fields override the DestinationRule's
 * field by field, and a matching `portLevelSettings` entry overrides both without inheritance
 * (destination_rule.proto).
 */
export function effectivePolicy (base: TrafficPolicy | undefined, subset: TrafficPolicy | undefined, port: number): TrafficPolicy {
  const out: TrafficPolicy = {}
  for (const f of POLICY_FIELDS) {
    const v = subset?.[f] ?? base?.[f]
    if (v !== undefined) (out as Record<string, unknown>)[f] = v
  }
  const pls = (subset?.portLevelSettings ?? base?.portLevelSettings)?.find(p => p.port?.number === port)
  if (pls !== undefined) {
    for (const f of POLICY_FIELDS) {
      const v = pls[f]
      if (v !== undefined) (out as Record<string, unknown>)[f] = v
    }
  }
  return out
}

function endpointsFor (svc: Service, port: ServicePort): EndpointSpec[] {
  const out: EndpointSpec[] = []
  for (const w of svc.workloads) {
    if (w.address === undefined) continue
    const p = w.ports?.[port.name] ?? port.targetPort ?? port.number
    out.push({ key: `${w.address}:${p}`, address: w.address, port: p, labels: w.labels ?? {}, weight: w.weight ?? 1 })
  }
  if (out.length === 0 && svc.workloads.length === 0 && svc.resolution !== 'STATIC') {
    // DNS (and NONE) services without endpoints are reached at their own name.
    const p = port.targetPort ?? port.number
    out.push({ key: `${svc.fqdn}:${p}`, address: svc.fqdn, port: p, labels: {}, weight: 1 })
  }
  return out
}

/** Every cluster: per service port, the whole service plus one per DestinationRule subset. */
export function buildClusters (reg: Registry): Map<string, ClusterSpec> {
  const clusters = new Map<string, ClusterSpec>()
  for (const svc of reg.services.values()) {
    const dr = reg.rules.get(svc.fqdn)
    const drName = dr === undefined ? undefined : `${dr.metadata.namespace}/${dr.metadata.name}`
    for (const port of svc.ports) {
      const all = endpointsFor(svc, port)
      const base: ClusterSpec = {
        name: clusterName(port.number, '', svc.fqdn),
        host: svc.fqdn,
        port: port.number,
        subset: '',
        resolution: svc.resolution,
        endpoints: all,
        policy: effectivePolicy(dr?.spec.trafficPolicy, undefined, port.number),
        ...(drName !== undefined ? { destinationRule: drName } : {})
      }
      clusters.set(base.name, base)
      for (const s of dr?.spec.subsets ?? []) {
        const sel = s.labels ?? {}
        const c: ClusterSpec = {
          ...base,
          name: clusterName(port.number, s.name, svc.fqdn),
          subset: s.name,
          endpoints: all.filter(e => labelsInclude(e.labels, sel)),
          policy: effectivePolicy(dr?.spec.trafficPolicy, s.trafficPolicy, port.number)
        }
        clusters.set(c.name, c)
      }
    }
  }
  return clusters
}
