import type { L4MatchAttributes, ResourceSet, RouteDestination, Server, ServiceEntry, VirtualService } from '../config/model.js'
import { resourceId } from '../config/model.js'
import { type Problem, Codes, formatPath } from '../config/problem.js'
import { hostMatches, intersectHosts, toFqdn } from '../config/hosts.js'
import { parseCidr } from '../security/cidr.js'
import { annotationValue, type Registry } from './services.js'
import type { CompiledDestination, L4Listener, L4Match, L4Route } from './snapshot.js'
import { destinationTarget, visibleTo } from './targets.js'

/**
 * TCP and TLS-passthrough listeners (docs/tcp.md), compiled once per snapshot:
 * - a Gateway server with protocol TCP (or MONGO) serves the `tcp:` routes of the
 *   VirtualServices bound to its Gateway; HTTPS or TLS with `tls.mode: PASSTHROUGH` serves their
 *   `tls:` routes, chosen by the ClientHello's SNI, without terminating TLS;
 * - a ServiceEntry TCP port gets a mesh TCP listener when the ServiceEntry maps it to a local
 *   port with the annotation below (a workload dials that port instead of the service's
 *   address, which iptables would redirect under Istio); the first mesh VirtualService for the
 *   host supplies its `tcp:` routes, and the service itself is the default route.
 */

/** `meshgate.io/mesh-tcp-ports: '{"6379": 16379}'`: service port → local mesh port. */
export const MESH_TCP_ANNOTATION = 'meshgate.io/mesh-tcp-ports'

/** ServiceEntry port protocols proxied as opaque TCP (Istio's TCP-based protocols); TLS is routed by SNI. */
const L4_SERVICE_PROTOCOLS = new Set(['TCP', 'TLS', 'MONGO', 'MYSQL', 'REDIS'])

/** How meshgate serves a Gateway server: `tcp`, `sni` (TLS passthrough), or undefined (HTTP listeners). */
export function l4ServerMode (s: Server): 'tcp' | 'sni' | undefined {
  const protocol = s.port.protocol.toUpperCase()
  if (protocol === 'TCP' || protocol === 'MONGO') return 'tcp'
  if ((protocol === 'HTTPS' || protocol === 'TLS') && s.tls?.mode === 'PASSTHROUGH') return 'sni'
  return undefined
}

type Located = VirtualService | ServiceEntry | ResourceSet['gateways'][number]

function problemAt (r: Located, path: Array<string | number>, severity: Problem['severity'], code: string, message: string): Problem {
  const { line, column } = r.locate(path)
  return { severity, code, message, file: r.source.file, line, column, resource: resourceId(r), path: formatPath(path) }
}

/**
 * Compile every TCP listener. `set` is the whole resource set (Gateways and VirtualServices);
 * `visible` has the ServiceEntries the mesh sees; `reg` resolves destinations to clusters.
 */
export function compileL4 (set: ResourceSet, visible: ResourceSet, reg: Registry, meshNamespace: string, problems: Problem[]): readonly L4Listener[] {
  const out: L4Listener[] = [...gatewayListeners(set, reg, problems)]
  const taken = new Set(out.map(l => l.port))
  for (const l of meshListeners(set, visible, reg, meshNamespace, problems)) {
    if (taken.has(l.port)) continue // reported by meshListeners against the gateways' ports
    taken.add(l.port)
    out.push(l)
  }
  return Object.freeze(out)
}

interface L4Server { gw: ResourceSet['gateways'][number]; gateway: string; index: number; server: Server }

function gatewayListeners (set: ResourceSet, reg: Registry, problems: Problem[]): L4Listener[] {
  const groups = new Map<number, { mode: 'tcp' | 'sni'; servers: L4Server[] }>()
  const httpPorts = new Set<number>()
  for (const gw of set.gateways) {
    const gateway = `${gw.metadata.namespace}/${gw.metadata.name}`
    gw.spec.servers.forEach((server, index) => {
      const mode = l4ServerMode(server)
      if (mode === undefined) { httpPorts.add(server.port.number); return }
      const g = groups.get(server.port.number)
      if (g === undefined) { groups.set(server.port.number, { mode, servers: [{ gw, gateway, index, server }] }); return }
      if (g.mode !== mode) {
        problems.push(problemAt(gw, ['spec', 'servers', index, 'port'], 'Error', Codes.SchemaValidationError,
          `port ${server.port.number} mixes TCP and TLS-passthrough servers; meshgate serves one kind per port`))
        return
      }
      g.servers.push({ gw, gateway, index, server })
    })
  }
  const out: L4Listener[] = []
  for (const [port, g] of [...groups.entries()].sort((a, b) => a[0] - b[0])) {
    if (httpPorts.has(port)) {
      const first = g.servers[0]
      problems.push(problemAt(first.gw, ['spec', 'servers', first.index, 'port'], 'Error', Codes.SchemaValidationError,
        `port ${port} has both HTTP and ${g.mode === 'tcp' ? 'TCP' : 'TLS-passthrough'} servers; Istio requires one protocol per port`))
      continue
    }
    const routes: L4Route[] = []
    for (const vs of set.virtualServices) {
      const bound = g.servers.filter(s => bindsTo(vs, s))
      if (bound.length === 0) continue
      routes.push(...vsRoutes(vs, g.mode, new Set(bound.map(s => s.gateway)), port, reg))
    }
    const serverHosts = [...new Set(g.servers.flatMap(s => s.server.hosts.map(hostPart)))]
    if (routes.length === 0) {
      const first = g.servers[0]
      problems.push(problemAt(first.gw, ['spec', 'servers', first.index, 'port', 'protocol'], 'Warning', Codes.NoEffect,
        `no ${g.mode === 'tcp' ? 'tcp' : 'tls'} route of a VirtualService bound to this Gateway applies to port ${port}; its connections are closed (flag NR)`))
    }
    out.push(Object.freeze({
      name: `0.0.0.0_${port}`,
      kind: 'gateway' as const,
      port,
      mode: g.mode,
      gatewayNames: [...new Set(g.servers.map(s => s.gateway))],
      serverHosts,
      destinationPort: port,
      routes: Object.freeze(routes)
    }))
  }
  return out
}

/** `ns/host` → host, lowercase. */
function hostPart (raw: string): string {
  const slash = raw.indexOf('/')
  return (slash < 0 ? raw : raw.slice(slash + 1)).toLowerCase()
}

/** Is the VirtualService bound to this server: its Gateway, exported there, a host in common? */
function bindsTo (vs: VirtualService, s: L4Server): boolean {
  const gws = normalizeGateways(vs.spec.gateways, vs.metadata.namespace)
  const blockGws = [...(vs.spec.tcp ?? []), ...(vs.spec.tls ?? [])].flatMap(r => (r.match ?? []).flatMap(m => [...normalizeGateways(m.gateways, vs.metadata.namespace, false)]))
  if (!gws.has(s.gateway) && !blockGws.includes(s.gateway)) return false
  if (!visibleTo(vs.spec.exportTo, vs.metadata.namespace, s.gw.metadata.namespace)) return false
  return s.server.hosts.some(raw => {
    const slash = raw.indexOf('/')
    const ns = slash < 0 ? '*' : raw.slice(0, slash) === '.' ? s.gw.metadata.namespace : raw.slice(0, slash)
    if (ns !== '*' && ns !== vs.metadata.namespace) return false
    return (vs.spec.hosts ?? []).some(h => intersectHosts(toFqdn(h, vs.metadata.namespace), hostPart(raw)) !== undefined || intersectHosts(h.toLowerCase(), hostPart(raw)) !== undefined)
  })
}

function normalizeGateways (gws: string[] | undefined, ns: string, meshByDefault = true): Set<string> {
  if (gws === undefined || gws.length === 0) return new Set(meshByDefault ? ['mesh'] : [])
  return new Set(gws.map(g => (g === 'mesh' ? 'mesh' : g.includes('/') ? g : `${ns}/${g}`)))
}

/**
 * The routes of one VirtualService's `tcp:` (or `tls:`) list that apply on a listener: match
 * blocks for another port, or for other gateways, are dropped; a route left with no block is
 * dropped whole (a route written without `match` applies everywhere it is bound).
 */
function vsRoutes (vs: VirtualService, mode: 'tcp' | 'sni', gateways: Set<string>, port: number, reg: Registry): L4Route[] {
  const ns = vs.metadata.namespace
  const vsGateways = normalizeGateways(vs.spec.gateways, ns)
  const kind = mode === 'tcp' ? 'tcp' : 'tls'
  const list = mode === 'tcp' ? (vs.spec.tcp ?? []) : (vs.spec.tls ?? [])
  const out: L4Route[] = []
  list.forEach((r, i) => {
    const blocks: Array<L4MatchAttributes & { sniHosts?: string[] } | undefined> = r.match !== undefined && r.match.length > 0 ? r.match : [undefined]
    const kept = blocks.filter(m => {
      const gws = m?.gateways !== undefined && m.gateways.length > 0 ? normalizeGateways(m.gateways, ns) : vsGateways
      if (![...gateways].some(g => gws.has(g))) return false
      return m?.port === undefined || m.port === port
    })
    if (kept.length === 0) return
    const destinations = l4Destinations(r.route ?? [], ns, reg)
    out.push(Object.freeze({
      virtualService: `${ns}/${vs.metadata.name}`,
      name: `${kind}[${i}]`,
      match: Object.freeze(kept.map(compileL4Match)),
      destinations,
      totalWeight: destinations.reduce((s, d) => s + d.weight, 0)
    }))
  })
  return out
}

/** Weighted destinations as for HTTP routes: a single one takes all, weight 0 drops one of several. */
export function l4Destinations (list: readonly RouteDestination[], ns: string, reg: Registry): readonly CompiledDestination[] {
  const out: CompiledDestination[] = []
  for (const d of list) {
    const weight = list.length === 1 ? 1 : (d.weight ?? 0)
    if (weight <= 0) continue
    const dest: CompiledDestination = { ...destinationTarget(reg, d.destination, ns), weight }
    if (d.fallback !== undefined) dest.fallback = destinationTarget(reg, d.fallback.target, ns)
    out.push(Object.freeze(dest))
  }
  return Object.freeze(out)
}

/** One match block: subnets parsed, SNI names lowercased (validation refused malformed ones). */
export function compileL4Match (m: (L4MatchAttributes & { sniHosts?: string[] }) | undefined): L4Match {
  if (m === undefined) return Object.freeze({})
  const subnets = (m.destinationSubnets ?? []).map(parseCidr).filter(c => c !== undefined)
  return Object.freeze({
    ...(subnets.length > 0 ? { destinationSubnets: Object.freeze(subnets) } : {}),
    ...(m.sourceLabels !== undefined && Object.keys(m.sourceLabels).length > 0 ? { sourceLabels: m.sourceLabels } : {}),
    ...(m.sourceNamespace !== undefined ? { sourceNamespace: m.sourceNamespace } : {}),
    ...(m.sniHosts !== undefined ? { sniHosts: Object.freeze(m.sniHosts.map(h => h.toLowerCase())) } : {})
  })
}

/** Mesh TCP listeners from the ServiceEntries' port-mapping annotation. */
function meshListeners (set: ResourceSet, visible: ResourceSet, reg: Registry, meshNamespace: string, problems: Problem[]): L4Listener[] {
  const out: L4Listener[] = []
  const gatewayPorts = new Set(set.gateways.flatMap(g => g.spec.servers.map(s => s.port.number)))
  const used = new Map<number, string>()
  for (const se of visible.serviceEntries) {
    const mapping = annotationValue(se, MESH_TCP_ANNOTATION, problems, raw => portMapping(raw, se))
    if (mapping === undefined) continue
    const at = ['metadata', 'annotations', MESH_TCP_ANNOTATION]
    const hosts = se.spec.hosts.filter(h => !h.startsWith('*'))
    if (hosts.length !== 1) {
      problems.push(problemAt(se, at, 'Error', Codes.SchemaValidationError, `${MESH_TCP_ANNOTATION} needs a ServiceEntry with exactly one host that is not a wildcard (a local port stands for one service)`))
      continue
    }
    const fqdn = toFqdn(hosts[0], se.metadata.namespace)
    for (const [svcPort, meshPort] of mapping) {
      const p = (se.spec.ports ?? []).find(x => x.number === svcPort)!
      const taken = used.get(meshPort)
      if (taken !== undefined || gatewayPorts.has(meshPort)) {
        problems.push(problemAt(se, at, 'Error', Codes.SchemaValidationError, `mesh TCP port ${meshPort} is already used by ${taken ?? 'a Gateway server'}`))
        continue
      }
      used.set(meshPort, `${fqdn}:${svcPort}`)
      const mode = (p.protocol ?? '').toUpperCase() === 'TLS' ? 'sni' : 'tcp'
      const routes: L4Route[] = []
      const vs = set.virtualServices.find(v => visibleTo(v.spec.exportTo, v.metadata.namespace, meshNamespace) &&
        normalizeGateways(v.spec.gateways, v.metadata.namespace).has('mesh') &&
        (mode === 'tcp' ? (v.spec.tcp ?? []) : (v.spec.tls ?? [])).length > 0 &&
        (v.spec.hosts ?? []).some(h => hostMatches(toFqdn(h, v.metadata.namespace), fqdn)))
      if (vs !== undefined) routes.push(...vsRoutes(vs, mode, new Set(['mesh']), svcPort, reg))
      const destinations = l4Destinations([{ destination: { host: fqdn, port: { number: svcPort } } }], se.metadata.namespace, reg)
      routes.push(Object.freeze({ virtualService: '-', name: 'default', match: Object.freeze([]), destinations, totalWeight: 1 }))
      out.push(Object.freeze({
        name: `mesh_tcp_${fqdn}_${svcPort}`,
        kind: 'mesh' as const,
        port: meshPort,
        mode,
        gatewayNames: [],
        serverHosts: ['*'],
        service: { host: fqdn, port: svcPort },
        destinationPort: svcPort,
        routes: Object.freeze(routes)
      }))
    }
  }
  return out
}

/** The annotation's `{servicePort: meshPort}`: each service port a TCP-based port of this ServiceEntry. */
function portMapping (raw: unknown, se: ServiceEntry): Map<number, number> | string {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'expected a map of service port to local mesh port, e.g. {"6379": 16379}'
  const out = new Map<number, number>()
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    const svcPort = Number(k)
    const p = (se.spec.ports ?? []).find(x => x.number === svcPort)
    if (p === undefined) return `port ${k} is not one of the ServiceEntry's ports`
    if (!L4_SERVICE_PROTOCOLS.has((p.protocol ?? '').toUpperCase())) return `port ${k} has protocol ${p.protocol ?? '(none)'}; only ${[...L4_SERVICE_PROTOCOLS].join(', ')} ports get a mesh TCP listener (HTTP ports are served by the mesh listener)`
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) return `mesh port for ${k} must be a port number (1-65535)`
    out.set(svcPort, v)
  }
  return out
}
