import type { CompiledRoute, DestinationTarget, ListenerSpec } from '../../src/compile/snapshot.js'
import { type DecisionContext, decide, resolveDestination, routeOf } from '../../src/routing/decide.js'
import type { RunningGateway } from '../../plugins/gateway.js'
import { redact } from './redact.js'

// The compiled routing table as the admin API shows it (`GET /routes`), and what a request
// would get from it (`GET /routes/explain`).

/** The request `GET /routes/explain` is asked about. */
export interface ExplainRequest {
  method?: string
  authority: string
  path?: string
  /** `name:value`, repeatable. */
  header?: string | string[]
}

/** A destination or fallback target: host, subset (null for none) and the cluster it resolves to (one per port for a multi-port service). */
export function describeTarget (t: DestinationTarget): Record<string, unknown> {
  return { host: t.host, subset: t.subset === '' ? null : t.subset, cluster: t.cluster ?? (t.byPort !== undefined ? Object.fromEntries(t.byPort) : null) }
}

/** One compiled route, its match with secret header values redacted. */
export function describeRoute (r: CompiledRoute, order: number): Record<string, unknown> {
  return {
    order,
    name: r.name,
    virtualService: r.virtualService,
    httpIndex: r.httpIndex,
    matchIndex: r.matchIndex,
    match: redact(r.matchSpec ?? null),
    catchAll: r.match.catchAll,
    rewrite: r.rewrite === undefined ? null : { uri: r.rewrite.uri ?? null, authority: r.rewrite.authority ?? null, uriRegexRewrite: r.rewrite.regex !== undefined },
    timeoutMs: r.timeoutMs ?? null,
    retries: r.retry === undefined ? null : { attempts: r.retry.attempts, retryOn: [...r.retry.on], perTryTimeoutMs: r.retry.perTryTimeoutMs },
    destinations: r.destinations.map(d => ({ ...describeTarget(d), weight: d.weight, fallback: d.fallback === undefined ? null : describeTarget(d.fallback) }))
  }
}

/** A listener's virtual hosts and their routes, in match order. */
export function describeListener (l: ListenerSpec): Record<string, unknown> {
  return {
    name: l.name,
    kind: l.kind,
    port: l.port,
    gateways: l.gatewayNames,
    virtualHosts: l.hosts.all.map(vh => ({ name: vh.name, domains: vh.domains, routes: vh.routes.map((r, i) => describeRoute(r, i)) }))
  }
}

/**
 * What a real request would get, decided by the same pure function the listeners call, on the
 * running snapshot, with the listener's path normalization and the health of this moment.
 * Faults that fire on only part of the requests are described, not drawn; every weighted
 * destination is listed with its own fallback resolution. Nothing is changed.
 */
export function explain (gw: RunningGateway, l: ListenerSpec, q: ExplainRequest): Record<string, unknown> {
  const headers: Record<string, string> = {}
  for (const h of [q.header ?? []].flat()) {
    const i = h.indexOf(':')
    if (i > 0) headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim()
  }
  headers.host = q.authority
  const snap = gw.store.current
  const ctx: DecisionContext = {
    listener: l,
    clusters: snap.clusters,
    health: { hasHealthy: n => gw.runtime.cluster(n)?.hasHealthy() === true },
    pathPolicy: gw.pathPolicy,
    // Just below 1: a fault configured for every request fires, a partial one does not.
    random: () => 1 - Number.EPSILON
  }
  const scheme = l.tls !== undefined && l.tls.length > 0 ? 'https' : 'http'
  const plan = decide({
    method: (q.method ?? 'GET').toUpperCase(),
    scheme,
    authority: q.authority,
    target: q.path ?? '/',
    headers,
    listenerPort: l.kind === 'mesh' ? undefined : l.port,
    localPort: undefined
  }, ctx)
  const base = { listener: l.name }
  switch (plan.kind) {
    case 'reject':
      return { ...base, result: 'bad request', status: plan.error!.status, flag: plan.error!.flag }
    case 'redirect':
      return { ...base, result: 'redirect', status: plan.status, location: plan.location }
    default:
      break
  }
  const route = routeOf(plan)
  const vhost = plan.vhost
  if (vhost === undefined) return { ...base, virtualHost: null, result: 'no virtual host', status: 404, flag: 'NR' }
  if (route === undefined) return { ...base, virtualHost: vhost.name, route: null, result: 'no route matched', status: 404, flag: 'NR' }
  const described = {
    ...base,
    virtualHost: vhost.name,
    route: describeRoute(route, vhost.routes.indexOf(route)),
    fault: route.fault === undefined ? null : route.fault
  }
  if (plan.kind === 'local') {
    return { ...described, result: 'local reply', status: plan.status, flag: plan.flags === '' ? '-' : plan.flags, headers: plan.headers }
  }
  if (plan.kind === 'error') {
    return { ...described, result: plan.error.flag === 'NC' ? 'no cluster' : 'error', status: plan.error.status, flag: plan.error.flag }
  }
  return {
    ...described,
    result: 'forward',
    rewrite: { path: plan.path, authority: plan.authority },
    timeoutMs: plan.timeoutMs,
    retries: { attempts: plan.retry.attempts, retryOn: [...plan.retry.on], perTryTimeoutMs: plan.retry.perTryTimeoutMs },
    mirrors: (plan.mirrors ?? []).map(m => ({ ...describeTarget(m.target), fraction: m.fraction })),
    destinations: route.destinations.map(dest => {
      const decision = resolveDestination(dest, plan.port, ctx)
      const primary = gw.runtime.cluster(decision.primary)
      const fallbackPath = decision.fallbackCluster === undefined ? null : `${decision.primary}:${decision.fallbackCluster}`
      return {
        ...describeTarget(dest),
        weight: dest.weight,
        share: route.totalWeight > 0 ? dest.weight / route.totalWeight : 0,
        cluster: decision.primary,
        healthyEndpoints: snap.clusters.has(decision.primary) ? primary?.healthy.length ?? 0 : 0,
        endpoints: snap.clusters.has(decision.primary) ? primary?.endpoints.length ?? 0 : 0,
        decision: decision.cluster === undefined
          ? { serves: null, status: 503, flag: decision.failure, fallbackPath, fallbackResult: decision.result ?? null }
          : { serves: decision.cluster, fallbackPath, fallbackResult: decision.result ?? null }
      }
    })
  }
}
