import type {
  DestinationRule, ResourceSet, ServiceEntry, ServicePort, TrafficPolicy, WorkloadEntrySpec, Resolution
} from '../config/model.js'
import { hostMatches, toFqdn } from '../config/hosts.js'
import { parse as parseYaml } from 'yaml'
import { type ClusterSpec, type EndpointSpec, clusterName } from './snapshot.js'
import { type Problem, Codes } from '../config/problem.js'
import { resourceId } from '../config/model.js'
import { BREAKER_ANNOTATION, type BreakerConfig, breakerConfig } from '../resilience/breaker.js'
import { DEFAULT_PROBE, PROBE_ANNOTATION, type ProbeConfig, probeConfig } from '../upstream/probe.js'
import { upstreamProtocol } from './upstream-protocol.js'

/** A service registered by one or more ServiceEntries, under its FQDN. */
export interface Service {
  fqdn: string
  namespace: string
  ports: ServicePort[]
  resolution: Resolution
  /** Workloads: inline endpoints and selected WorkloadEntries. */
  workloads: WorkloadEntrySpec[]
  probe: ProbeConfig
}

/** The service registry: FQDN → service, plus wildcard hosts for reference checks. */
export interface Registry {
  services: Map<string, Service>
  wildcards: string[]
  rules: Map<string, DestinationRule>
}

/**
 * Decode a meshgate annotation (JSON or YAML) and convert it; a malformed value is an Error
 * problem naming the annotation, and the default applies.
 */
export function annotationValue<T> (
  r: ResourceSet['serviceEntries'][number] | DestinationRule,
  key: string,
  problems: Problem[],
  convert: (raw: unknown) => T | string
): T | undefined {
  const text = r.metadata.annotations?.[key]
  if (text === undefined) return undefined
  let raw: unknown
  try {
    raw = parseYaml(text, { maxAliasCount: 10 })
  } catch (err) {
    raw = undefined
    pushAnnotationProblem(r, key, problems, `not valid JSON or YAML: ${(err as Error).message.split('\n')[0]}`)
    return undefined
  }
  const out = convert(raw)
  if (typeof out === 'string') { pushAnnotationProblem(r, key, problems, out); return undefined }
  return out
}

function pushAnnotationProblem (r: { kind: string; metadata: { namespace: string; name: string }; source: { file: string };
  locate: (p: ReadonlyArray<string | number>) => { line: number; column: number } }, key: string, problems: Problem[], message: string): void {
  const { line, column } = r.locate(['metadata', 'annotations', key])
  problems.push({ severity: 'Error', code: Codes.SchemaValidationError, message: `annotation ${key}: ${message}`, file: r.source.file, line, column, resource: resourceId(r), path: `metadata.annotations.${key}` })
}

/** Build the registry from ServiceEntries (hosts expanded against their namespace) and WorkloadEntries. */
export function buildRegistry (set: ResourceSet, problems: Problem[] = []): Registry {
  const services = new Map<string, Service>()
  const wildcards: string[] = []
  for (const se of set.serviceEntries) {
    const workloads = workloadsOf(se, set)
    const probe = annotationValue(se, PROBE_ANNOTATION, problems, raw => {
      const r = probeConfig(raw)
      return 'error' in r ? r.error : r.config
    }) ?? DEFAULT_PROBE
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
          workloads: [...workloads],
          probe
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

/**
 * The DestinationRule that applies to a service: the one for its exact host, else the one whose
 * wildcard host (`*.example.com`, `*.local`, `*`) is the most specific that covers it, as Istio
 * picks it (Istio's mesh-wide examples use `host: "*.local"`).
 */
export function ruleFor (rules: ReadonlyMap<string, DestinationRule>, fqdn: string): DestinationRule | undefined {
  const exact = rules.get(fqdn)
  if (exact !== undefined) return exact
  let best: string | undefined
  for (const h of rules.keys()) {
    if (h.startsWith('*') && hostMatches(h, fqdn) && (best === undefined || h.length > best.length)) best = h
  }
  return best === undefined ? undefined : rules.get(best)
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

/** Set the cluster's upstream protocol when it is HTTP/2 (absent means HTTP/1.1). */
function withProtocol (c: ClusterSpec, port: ServicePort): void {
  const p = upstreamProtocol(port, c.policy)
  if (p !== 'http1') c.upstreamProtocol = p
  else delete c.upstreamProtocol
}

/** Every cluster: per service port, the whole service plus one per DestinationRule subset. */
export function buildClusters (reg: Registry, problems: Problem[] = []): Map<string, ClusterSpec> {
  const clusters = new Map<string, ClusterSpec>()
  const breakerAnnotations = new Map<DestinationRule, Record<string, unknown> | undefined>()
  for (const dr of reg.rules.values()) {
    breakerAnnotations.set(dr, annotationValue(dr, BREAKER_ANNOTATION, problems, raw =>
      raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? raw as Record<string, unknown> : 'must be an object'))
  }
  for (const svc of reg.services.values()) {
    const dr = ruleFor(reg.rules, svc.fqdn)
    const drName = dr === undefined ? undefined : `${dr.metadata.namespace}/${dr.metadata.name}`
    const annotation = dr === undefined ? undefined : breakerAnnotations.get(dr)
    const breakerFor = (p: ReturnType<typeof effectivePolicy>): BreakerConfig => breakerConfig(annotation, p.outlierDetection)
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
        ...(drName !== undefined ? { destinationRule: drName } : {}),
        breaker: breakerConfig(annotation, undefined),
        probe: svc.probe
      }
      base.breaker = breakerFor(base.policy)
      withProtocol(base, port)
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
        c.breaker = breakerFor(c.policy)
        withProtocol(c, port)
        clusters.set(c.name, c)
      }
    }
  }
  return clusters
}
