import type { CompiledDestination, CompiledRoute, ListenerSpec, VirtualHost } from '../compile/snapshot.js'
import { lookupHost } from '../compile/compile.js'
import type { RequestFacts } from './facts.js'

export interface RouteMatchResult {
  vhost?: VirtualHost
  route?: CompiledRoute
}

/** Virtual host by Host (port ignored), then the first route whose match block applies. */
export function selectRoute (listener: ListenerSpec, facts: RequestFacts): RouteMatchResult {
  const vhost = lookupHost(listener.hosts, facts.host)
  if (vhost === undefined) return {}
  const routes = vhost.routes
  for (let i = 0; i < routes.length; i++) {
    if (routes[i].match.test(facts)) return { vhost, route: routes[i] }
  }
  return { vhost }
}

/**
 * Pick a weighted destination with a random number in [0, 1). Weights are relative
 * (istio-semantics.md §0.5); zero-weight destinations were dropped at compile time.
 */
export function pickDestination (route: CompiledRoute, random: () => number): CompiledDestination | undefined {
  const ds = route.destinations
  if (ds.length <= 1) return ds[0]
  let r = random() * route.totalWeight
  for (let i = 0; i < ds.length; i++) {
    r -= ds[i].weight
    if (r < 0) return ds[i]
  }
  return ds[ds.length - 1]
}
