import { randomBytes } from 'node:crypto'
import { parseDurationMs } from '../../src/config/duration.js'
import { admit } from '../../src/resilience/pool.js'
import { type RequestFacts, headerValue, queryParams } from '../../src/routing/facts.js'
import type { ClusterState } from '../../src/runtime/cluster-state.js'
import type { EndpointState } from '../../src/upstream/endpoint.js'

/**
 * Which endpoint of a cluster a try goes to: the cluster's balancer over its healthy set,
 * skipping hosts already tried (Istio's previous-hosts predicate) and endpoints whose breaker
 * refuses; then connection-pool admission (503 UO on overflow).
 */

/** The shared empty exclusion set of a first try (never added to). */
const NO_HOSTS: Set<EndpointState> = new Set()

export type Choice =
  | { kind: 'endpoint'; ep: EndpointState; settle: ((ok: boolean) => void) | undefined }
  | { kind: 'overflow' }
  | { kind: 'none' }

const OVERFLOW: Choice = { kind: 'overflow' }
const NONE: Choice = { kind: 'none' }

/**
 * Pick an endpoint for one try. A half-open breaker admits one trial: an endpoint whose
 * breaker refuses is skipped for another healthy one before the try is refused with UO.
 */
export function chooseEndpoint (cluster: ClusterState, random: () => number, hashKey: string | undefined, tried: Set<EndpointState> | undefined, isRetry: boolean): Choice {
  let skipped: Set<EndpointState> = tried !== undefined && tried.size > 0 ? new Set(tried) : NO_HOSTS
  let refused = false
  let ep: EndpointState | undefined
  let settle: ((ok: boolean) => void) | undefined
  for (let k = 0; k < cluster.healthy.length; k++) {
    const cand = cluster.pick({ random, hashKey, exclude: skipped })
    if (cand === undefined || (refused && skipped.has(cand))) break
    const b = cluster.breaker(cand)
    settle = b?.begin()
    if (b === undefined || settle !== undefined) { ep = cand; break }
    refused = true
    if (skipped === NO_HOSTS) skipped = new Set()
    skipped.add(cand)
  }
  if (ep === undefined) {
    if (refused) { cluster.stats.overflows++; return OVERFLOW }
    cluster.stats.noHealthy++
    return NONE
  }
  if (admit(cluster.limits, cluster.active) === 'overflow' || (isRetry && cluster.activeRetries >= cluster.limits.maxRetries)) {
    settle?.(true)
    cluster.stats.overflows++
    return OVERFLOW
  }
  return { kind: 'endpoint', ep, settle }
}

/** `address:port` with IPv6 addresses bracketed. */
export function hostPort (ep: EndpointState): string {
  return ep.spec.address.includes(':') ? `[${ep.spec.address}]:${ep.spec.port}` : ep.spec.key
}

/** The origin a try dials: https when the DestinationRule originates TLS. */
export function originOf (cluster: ClusterState, host: string): string {
  const tls = cluster.spec.policy.tls
  return `${tls?.mode === 'SIMPLE' || tls?.mode === 'MUTUAL' ? 'https' : 'http'}://${host}`
}

/** The consistent-hash key of a request, and a cookie to set when Envoy would generate one. */
export function consistentHashKey (cluster: ClusterState, facts: RequestFacts, remoteAddress: string): { key?: string; setCookie?: string } {
  const ch = cluster.spec.policy.loadBalancer?.consistentHash
  if (ch === undefined) return {}
  if (ch.httpHeaderName !== undefined) return { key: headerValue(facts, ch.httpHeaderName.toLowerCase()) }
  if (ch.useSourceIp === true) return { key: remoteAddress }
  if (ch.httpQueryParameterName !== undefined) return { key: queryParams(facts).get(ch.httpQueryParameterName) }
  if (ch.httpCookie !== undefined) {
    const name = ch.httpCookie.name
    const cookie = headerValue(facts, 'cookie')
    if (cookie !== undefined) {
      for (const part of cookie.split(/;\s*/)) {
        const eq = part.indexOf('=')
        if (eq > 0 && part.slice(0, eq) === name) return { key: part.slice(eq + 1) }
      }
    }
    // Envoy generates the cookie when it is missing and a ttl is set.
    if (ch.httpCookie.ttl !== undefined) {
      const value = randomBytes(8).toString('hex')
      const ttlS = Math.round((parseDurationMs(ch.httpCookie.ttl) ?? 0) / 1000)
      const attrs = [`${name}=${value}`, ...(ttlS > 0 ? [`Max-Age=${ttlS}`] : []), ...(ch.httpCookie.path !== undefined ? [`Path=${ch.httpCookie.path}`] : []), 'HttpOnly']
      return { key: value, setCookie: attrs.join('; ') }
    }
  }
  return {}
}
