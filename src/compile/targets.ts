import type { Destination } from '../config/model.js'
import { toFqdn } from '../config/hosts.js'
import type { Registry } from './services.js'
import { type DestinationTarget, clusterName } from './snapshot.js'

/**
 * Resolve a route destination to cluster names: fixed when its port is named or the service has
 * one port, else by the port the caller addressed (shared by HTTP and TCP/TLS routes).
 */
export function destinationTarget (reg: Registry, d: Destination, ns: string): DestinationTarget {
  const host = toFqdn(d.host, ns)
  const subset = d.subset ?? ''
  const svc = reg.services.get(host)
  if (d.port?.number !== undefined) return { host, subset, cluster: clusterName(d.port.number, subset, host) }
  if (svc === undefined || svc.ports.length === 0) return { host, subset }
  if (svc.ports.length === 1) return { host, subset, cluster: clusterName(svc.ports[0].number, subset, host) }
  return {
    host,
    subset,
    byPort: new Map(svc.ports.map(p => [p.number, clusterName(p.number, subset, host)])),
    fallbackPortCluster: clusterName(svc.ports[0].number, subset, host)
  }
}

/** `exportTo` visibility (Istio): unset or `*` = everywhere, `.` = own namespace, `~` = nowhere. */
export function visibleTo (exportTo: string[] | undefined, own: string, client: string): boolean {
  if (exportTo === undefined || exportTo.length === 0) return true
  return exportTo.some(e => e === '*' || e === client || (e === '.' && own === client))
}
