import type { CompiledDestination, L4Listener, L4Match, L4Route } from '../compile/snapshot.js'
import { inCidr, parseIp } from '../security/cidr.js'
import type { CallerIdentity } from '../security/spec.js'
import { pickDestination } from './select.js'

/**
 * The routing decision of a TCP connection (docs/tcp.md): the first route of the listener whose
 * match applies, then a weighted destination, per connection as Envoy's TCP proxy picks one.
 */

/** What is known about a new connection when it is routed. */
export interface L4Connection {
  /** The address the client connected to (`destinationSubnets`). */
  localAddress: string
  /** The client's address: the caller's identity when it is registered (`sourceLabels`, `sourceNamespace`). */
  remoteAddress: string
  /** The ClientHello's server name (TLS passthrough); undefined when none was sent. */
  sni?: string
}

/** The caller registered at an address (WorkloadEntry or ServiceEntry endpoint), IPv4-mapped IPv6 folded. */
export function callerAt (callers: ReadonlyMap<string, CallerIdentity>, address: string): CallerIdentity | undefined {
  if (callers.size === 0) return undefined
  return callers.get(address) ?? (address.startsWith('::ffff:') ? callers.get(address.slice(7)) : undefined)
}

/** Does an SNI name match an `sniHosts` entry (exact, `*.suffix`, or `*`)? Case-insensitive. */
export function sniMatches (pattern: string, sni: string): boolean {
  if (pattern === '*') return true
  if (pattern.startsWith('*.')) return sni.length > pattern.length - 1 && sni.endsWith(pattern.slice(1))
  return pattern === sni
}

/** One match block against a connection (conditions ANDed). */
export function l4MatchApplies (m: L4Match, conn: L4Connection, caller: CallerIdentity | undefined): boolean {
  if (m.destinationSubnets !== undefined) {
    const ip = parseIp(conn.localAddress)
    if (ip === undefined || !m.destinationSubnets.some(c => inCidr(ip, c))) return false
  }
  if (m.sourceLabels !== undefined) {
    const labels = caller?.labels
    if (labels === undefined) return false
    for (const [k, v] of Object.entries(m.sourceLabels)) if (labels[k] !== v) return false
  }
  if (m.sourceNamespace !== undefined && caller?.namespace !== m.sourceNamespace) return false
  if (m.sniHosts !== undefined) {
    const sni = conn.sni
    if (sni === undefined || !m.sniHosts.some(p => sniMatches(p, sni))) return false
  }
  return true
}

/**
 * The first route whose match blocks (ORed) apply; a route without blocks applies to every
 * connection. On an SNI listener the name must also be one of the port's server hosts, as
 * Envoy's filter chains are built only for those.
 */
export function selectL4Route (listener: L4Listener, conn: L4Connection, callers: ReadonlyMap<string, CallerIdentity>): L4Route | undefined {
  if (listener.mode === 'sni') {
    const sni = conn.sni
    if (sni === undefined || !listener.serverHosts.some(h => sniMatches(h, sni))) return undefined
  }
  const caller = callerAt(callers, conn.remoteAddress)
  for (const r of listener.routes) {
    if (r.match.length === 0 || r.match.some(m => l4MatchApplies(m, conn, caller))) return r
  }
  return undefined
}

/** A weighted destination of a route, with a random number in [0, 1). */
export function pickL4Destination (route: L4Route, random: () => number): CompiledDestination | undefined {
  return pickDestination(route, random)
}
