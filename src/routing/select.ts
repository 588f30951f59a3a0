import type { CompiledDestination, CompiledRoute, ListenerSpec, VirtualHost } from '../compile/snapshot.js'
import { lookupHost } from '../compile/compile.js'
import type { RequestFacts } from './facts.js'
import { candidates } from './route-index.js'

export interface RouteMatchResult {
  vhost?: VirtualHost
  route?: CompiledRoute
}

/**
 * Virtual host by Host (port ignored), then the first route whose match block applies. With a
 * route index the scan covers only the candidates that can match (same order, same answer).
 */
export function selectRoute (listener: ListenerSpec, facts: RequestFacts): RouteMatchResult {
  const vhost = lookupHost(listener.hosts, facts.host)
  if (vhost === undefined) return {}
  const route = firstMatch(vhost, facts)
  return route === undefined ? { vhost } : { vhost, route }
}

/** Istio's first-match-wins over a virtual host's routes (indexed when the host has an index). */
export function firstMatch (vhost: VirtualHost, facts: RequestFacts): CompiledRoute | undefined {
  const routes = vhost.routeIndex === undefined ? vhost.routes : candidates(vhost.routeIndex, facts.pathOnly)
  for (let i = 0; i < routes.length; i++) {
    if (routes[i].match.test(facts)) return routes[i]
  }
  return undefined
}

/** The reference answer: a plain linear first-match scan, ignoring any index (tests, bench). */
export function firstMatchLinear (routes: readonly CompiledRoute[], facts: RequestFacts): CompiledRoute | undefined {
  for (let i = 0; i < routes.length; i++) {
    if (routes[i].match.test(facts)) return routes[i]
  }
  return undefined
}

/**
 * Pick a weighted destination with a random number in [0, 1). Weights are relative
 * (docs/architecture.md#weights); zero-weight destinations were dropped at compile time.
 */
export function pickDestination (route: Pick<CompiledRoute, 'destinations' | 'totalWeight'>, random: () => number): CompiledDestination | undefined {
  const ds = route.destinations
  if (ds.length <= 1) return ds[0]
  let r = random() * route.totalWeight
  for (let i = 0; i < ds.length; i++) {
    r -= ds[i].weight
    if (r < 0) return ds[i]
  }
  return ds[ds.length - 1]
}
