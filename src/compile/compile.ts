import type { ClientTLSSettings, Destination, HTTPMatchRequest, HTTPRoute, ResourceSet, StringMatch, VirtualService } from '../config/model.js'
import { resourceId } from '../config/model.js'
import { type Problem, Codes, formatPath } from '../config/problem.js'
import { intersectHosts, meshAliases, toFqdn } from '../config/hosts.js'
import { compileHeaders, foldSingleDestination } from '../routing/headers.js'
import { compileMatch } from '../routing/match.js'
import { compileRewrite } from '../routing/rewrite.js'
import { parseDurationMs } from '../config/duration.js'
import { retryPolicy } from '../resilience/retry.js'
import { compileCors, compileDirectResponse, compileFault, compileRedirect, mirrorTargets } from '../routing/actions.js'
import { buildClusters, buildRegistry, type Registry } from './services.js'
import { type CredentialStore, type ResolvedCredential, resolveCredential } from '../config/credentials.js'
import {
  type CompiledDestination, type CompiledRoute, type DestinationTarget, type HostIndex,
  type ListenerSpec, type Snapshot, type TlsServer, type VirtualHost, clusterName
} from './snapshot.js'
import { INDEX_MIN_ROUTES, buildRouteIndex } from '../routing/route-index.js'
import { destinationTarget, visibleTo } from './targets.js'
import { compileL4, l4ServerMode } from './l4.js'
import { applyIstioMutual } from './istio-mutual.js'
import { type GatewayWorkload, compileSecurity, sourceIdentities } from '../security/compile.js'

export interface CompileOptions {
  /** Generation number to stamp on the snapshot. */
  generation?: number
  /** Namespace the mesh listener's callers live in: short Host names resolve against it. */
  meshNamespace?: string
  now?: () => number
  /**
   * Where `credentialName` secrets are looked up (see src/config/credentials.ts). Without it,
   * credentials resolve to `credentials/NAME/tls.crt`, `tls.key` and `ca.crt` unchecked, and a
   * missing file only shows when the listener starts.
   */
  credentials?: CredentialStore
  /** The ingress gateway workload's namespace, labels and service account, for security policies. */
  gatewayWorkload?: GatewayWorkload
}

export interface CompileResult {
  snapshot: Snapshot
  problems: Problem[]
}

/** Protocols whose servers meshgate serves as plain HTTP/1.1 (and h2c) listeners. */
const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB'])
/** TLS modes meshgate terminates. PASSTHROUGH needs SNI routing of raw TLS; ISTIO_MUTUAL needs Istio's CA. */
const TERMINATED_MODES = new Set(['SIMPLE', 'MUTUAL', 'OPTIONAL_MUTUAL'])

/**
 * Compile a validated resource set into an immutable snapshot: listeners with their host
 * index and ordered routes, and clusters with their endpoints. Pure; never throws on a set
 * that passed validation.
 */
export function compile (set: ResourceSet, opts: CompileOptions = {}): CompileResult {
  const problems: Problem[] = []
  const meshNamespace = opts.meshNamespace ?? 'default'
  // ServiceEntries and DestinationRules apply to the mesh's callers when exported to their namespace.
  const visible: ResourceSet = {
    ...set,
    serviceEntries: set.serviceEntries.filter(r => visibleTo(r.spec.exportTo, r.metadata.namespace, meshNamespace)),
    destinationRules: set.destinationRules.filter(r => visibleTo(r.spec.exportTo, r.metadata.namespace, meshNamespace))
  }
  const reg = buildRegistry(visible, problems)
  const clusters = buildClusters(reg, problems)
  const store = opts.credentials ?? UNCHECKED_CREDENTIALS
  resolveClusterCredentials(visible, clusters, store, problems)
  applyIstioMutual(set, clusters, opts.credentials, problems)
  const routesOf = new RouteCompiler(reg, set, problems)

  // ---- gateway listeners: servers grouped by port (several Gateways may share one port)
  interface PortGroup {
    protocol: string
    secure: boolean
    servers: Array<{ gateway: string; gwNamespace: string; hosts: string[] }>
    tls: TlsServer[]
    redirect: string[]
  }
  const ports = new Map<number, PortGroup>()
  for (const gw of set.gateways) {
    const gwName = `${gw.metadata.namespace}/${gw.metadata.name}`
    gw.spec.servers.forEach((s, i) => {
      if (l4ServerMode(s) !== undefined) return // TCP and TLS passthrough: compileL4
      const protocol = s.port.protocol.toUpperCase()
      const mode = s.tls?.mode ?? 'SIMPLE'
      const secure = protocol === 'HTTPS' || (protocol === 'TLS' && TERMINATED_MODES.has(mode) && s.tls !== undefined)
      if (!HTTP_PROTOCOLS.has(protocol) && !secure) {
        problems.push(problemAt(gw, ['spec', 'servers', i, 'port', 'protocol'], 'Warning', Codes.NotSupported,
          `protocol ${protocol}${s.tls?.mode !== undefined ? ` with tls.mode ${s.tls.mode}` : ''} is not served by meshgate (HTTP and terminated HTTPS only); server on port ${s.port.number} skipped`))
        return
      }
      if (secure && !TERMINATED_MODES.has(mode)) {
        problems.push(problemAt(gw, ['spec', 'servers', i, 'tls', 'mode'], 'Warning', Codes.NotSupported,
          `tls.mode ${mode} is not supported by meshgate (SIMPLE, MUTUAL and OPTIONAL_MUTUAL are); server on port ${s.port.number} skipped`))
        return
      }
      let g = ports.get(s.port.number)
      if (g === undefined) { g = { protocol, secure, servers: [], tls: [], redirect: [] }; ports.set(s.port.number, g) }
      if (g.secure !== secure) {
        problems.push(problemAt(gw, ['spec', 'servers', i, 'port'], 'Error', Codes.SchemaValidationError,
          `port ${s.port.number} mixes plain HTTP and HTTPS servers; Istio requires one protocol per port`))
        return
      }
      g.servers.push({ gateway: gwName, gwNamespace: gw.metadata.namespace, hosts: s.hosts })
      const hostsOnly = s.hosts.map(h => (h.includes('/') ? h.slice(h.indexOf('/') + 1) : h).toLowerCase())
      if (secure && s.tls !== undefined) {
        if (g.tls.length > 0 && g.tls[0].mode !== mode) {
          problems.push(problemAt(gw, ['spec', 'servers', i, 'tls', 'mode'], 'Error', Codes.SchemaValidationError,
            `servers on port ${s.port.number} use different TLS modes (${g.tls[0].mode}, ${mode}); meshgate needs one mode per port`))
          return
        }
        // credentialName (or the first of credentialNames): the secret's files in the credentials directory.
        const credName = s.tls.credentialName ?? s.tls.credentialNames?.[0]
        let cred: ResolvedCredential | undefined
        if (credName !== undefined) {
          const field = s.tls.credentialName !== undefined ? 'credentialName' : 'credentialNames'
          const r = resolveCredential(store, credName, { pair: true, ca: mode !== 'SIMPLE' })
          if (typeof r === 'string') {
            problems.push(problemAt(gw, ['spec', 'servers', i, 'tls', field], 'Error', Codes.ReferencedResourceNotFound, r))
            return
          }
          cred = r
          if ((s.tls.credentialNames?.length ?? 0) > 1) {
            problems.push(problemAt(gw, ['spec', 'servers', i, 'tls', 'credentialNames'], 'Warning', Codes.NotSupported,
              `only the first of credentialNames ("${credName}") is used; meshgate serves one certificate per server`))
          }
        }
        const caFile = cred !== undefined ? (mode === 'SIMPLE' ? undefined : cred.ca) : s.tls.caCertificates
        g.tls.push({
          hosts: hostsOnly,
          mode: mode as TlsServer['mode'],
          serverCertificate: cred?.cert ?? s.tls.serverCertificate ?? '',
          privateKey: cred?.key ?? s.tls.privateKey ?? '',
          ...(caFile !== undefined ? { caCertificates: caFile } : {}),
          ...(s.tls.minProtocolVersion !== undefined ? { minProtocolVersion: s.tls.minProtocolVersion } : {}),
          ...(s.tls.maxProtocolVersion !== undefined ? { maxProtocolVersion: s.tls.maxProtocolVersion } : {}),
          ...(s.tls.cipherSuites !== undefined ? { cipherSuites: s.tls.cipherSuites } : {})
        })
      }
      if (!secure && s.tls?.httpsRedirect === true) g.redirect.push(...hostsOnly)
    })
  }

  const gateways: ListenerSpec[] = []
  for (const [port, group] of [...ports.entries()].sort((a, b) => a[0] - b[0])) {
    const gatewayNames = [...new Set(group.servers.map(s => s.gateway))]
    const vhosts = new Map<string, CompiledRoute[]>()
    // Membership per list, so merging a VirtualService's routes is linear (10,000-route tables).
    const listed = new Map<CompiledRoute[], Set<CompiledRoute>>()
    for (const vs of set.virtualServices) {
      for (const server of group.servers) {
        if (!visibleTo(vs.spec.exportTo, vs.metadata.namespace, server.gwNamespace)) continue
        const routes = routesOf.forListener(vs, server.gateway, port)
        if (routes.length === 0) continue
        for (const raw of server.hosts) {
          const { ns, host } = splitServerHost(raw, server.gwNamespace)
          if (ns !== '*' && ns !== vs.metadata.namespace) continue
          for (const h of vs.spec.hosts ?? []) {
            const domain = intersectHosts(toFqdn(h, vs.metadata.namespace), host.toLowerCase())
            if (domain === undefined) continue
            const list = vhosts.get(domain) ?? []
            let seen = listed.get(list)
            if (seen === undefined) { seen = new Set(); listed.set(list, seen) }
            for (const r of routes) if (!seen.has(r)) { seen.add(r); list.push(r) }
            vhosts.set(domain, list)
          }
        }
      }
    }
    const hosts = [...vhosts.entries()].map(([domain, routes]): VirtualHost => ({
      name: `${domain}:${port}`,
      domains: [domain],
      routes: Object.freeze(catchAllsLast(routes, port))
    }))
    gateways.push(Object.freeze({
      name: `0.0.0.0_${port}`,
      kind: 'gateway' as const,
      port,
      protocol: group.secure ? 'HTTPS' : group.protocol,
      gatewayNames,
      hosts: buildHostIndex(hosts),
      ...(group.secure ? { tls: Object.freeze(group.tls) } : {}),
      ...(group.redirect.length > 0 ? { httpsRedirectHosts: Object.freeze(group.redirect) } : {})
    }))
  }

  // ---- mesh listener: one virtual host per service, replaced by the first VirtualService for it
  const meshHosts = new Map<string, VirtualHost>()
  const meshOwner = new Map<string, string>()
  for (const vs of set.virtualServices) {
    if (!visibleTo(vs.spec.exportTo, vs.metadata.namespace, meshNamespace)) continue
    const routes = routesOf.forListener(vs, 'mesh')
    if (routes.length === 0) continue
    for (const h of vs.spec.hosts ?? []) {
      const fqdn = toFqdn(h, vs.metadata.namespace)
      const owner = meshOwner.get(fqdn)
      if (owner !== undefined) {
        problems.push(problemAt(vs, ['spec', 'hosts'], 'Warning', Codes.Duplicate,
          `host "${fqdn}" is already routed for the mesh by VirtualService ${owner}; as in Istio sidecars, only the first VirtualService for a host applies`))
        continue
      }
      meshOwner.set(fqdn, `${vs.metadata.namespace}/${vs.metadata.name}`)
      meshHosts.set(fqdn, { name: fqdn, domains: meshAliases(fqdn, meshNamespace), routes: Object.freeze(catchAllsLast(routes)) })
    }
  }
  for (const svc of reg.services.values()) {
    if (meshHosts.has(svc.fqdn)) continue
    meshHosts.set(svc.fqdn, {
      name: svc.fqdn,
      domains: meshAliases(svc.fqdn, meshNamespace),
      routes: [routesOf.defaultRoute(svc.fqdn)]
    })
  }
  const mesh: ListenerSpec = Object.freeze({
    name: 'mesh',
    kind: 'mesh' as const,
    port: 0,
    protocol: 'HTTP',
    gatewayNames: [],
    hosts: buildHostIndex([...meshHosts.values()])
  })

  const l4 = compileL4(set, visible, reg, meshNamespace, problems)
  // Callers by address: read by the security stage and by the metrics (source_* labels).
  const callers = sourceIdentities(set)
  const security = compileSecurity(set, reg, clusters, opts.gatewayWorkload, callers)
  const snapshot: Snapshot = Object.freeze({
    generation: opts.generation ?? 1,
    createdAt: (opts.now ?? Date.now)(),
    gateways: Object.freeze(gateways),
    mesh,
    clusters,
    callers,
    ...(security !== undefined ? { security } : {}),
    l4,
    problems: Object.freeze([...problems])
  })
  return { snapshot, problems }
}

/** Without a credentials store: the TLS-secret layout under ./credentials, existence unchecked. */
const UNCHECKED_CREDENTIALS: CredentialStore = { dir: 'credentials', exists: () => true }

/**
 * DestinationRule `tls.credentialName` (SIMPLE or MUTUAL): the secret's files become the
 * cluster's `clientCertificate`, `privateKey` and `caCertificates`. Every place a TLS setting may
 * sit (top level, subsets, portLevelSettings) is resolved once and reported at its own path.
 */
function resolveClusterCredentials (set: ResourceSet, clusters: ReturnType<typeof buildClusters>, store: CredentialStore, problems: Problem[]): void {
  const resolved = new Map<string, ResolvedCredential>()
  for (const dr of set.destinationRules) {
    const policies: Array<{ path: Array<string | number>; policy: { tls?: ClientTLSSettings; portLevelSettings?: Array<{ tls?: ClientTLSSettings }> } | undefined }> = [
      { path: ['spec', 'trafficPolicy'], policy: dr.spec.trafficPolicy },
      ...(dr.spec.subsets ?? []).map((s, j) => ({ path: ['spec', 'subsets', j, 'trafficPolicy'], policy: s.trafficPolicy }))
    ]
    for (const { path, policy } of policies) {
      const spots: Array<{ path: Array<string | number>; tls: ClientTLSSettings | undefined }> = [
        { path: [...path, 'tls'], tls: policy?.tls },
        ...(policy?.portLevelSettings ?? []).map((p, k) => ({ path: [...path, 'portLevelSettings', k, 'tls'], tls: p.tls }))
      ]
      for (const { path: at, tls } of spots) {
        if (tls?.credentialName === undefined || (tls.mode !== 'SIMPLE' && tls.mode !== 'MUTUAL')) continue
        const key = `${tls.mode}|${tls.credentialName}`
        if (resolved.has(key)) continue
        // SIMPLE uses the secret's CA to verify the server; MUTUAL needs the client pair (CA optional).
        const r = resolveCredential(store, tls.credentialName, { pair: tls.mode === 'MUTUAL', ca: tls.mode === 'SIMPLE' })
        if (typeof r === 'string') { problems.push(problemAt(dr, [...at, 'credentialName'], 'Error', Codes.ReferencedResourceNotFound, r)); continue }
        resolved.set(key, r)
      }
    }
  }
  for (const [name, c] of clusters) {
    const tls = c.policy.tls
    if (tls?.credentialName === undefined) continue
    const r = resolved.get(`${tls.mode ?? ''}|${tls.credentialName}`)
    if (r === undefined) continue
    clusters.set(name, {
      ...c,
      policy: {
        ...c.policy,
        tls: {
          ...tls,
          ...(r.cert !== undefined ? { clientCertificate: r.cert } : {}),
          ...(r.key !== undefined ? { privateKey: r.key } : {}),
          ...(r.ca !== undefined ? { caCertificates: r.ca } : {})
        }
      }
    })
  }
}

/** `ns/host` of a Gateway server host; no namespace part means any namespace, `.` the Gateway's own. */
function splitServerHost (raw: string, gwNamespace: string): { ns: string; host: string } {
  const slash = raw.indexOf('/')
  if (slash < 0) return { ns: '*', host: raw }
  const ns = raw.slice(0, slash)
  return { ns: ns === '.' ? gwNamespace : ns, host: raw.slice(slash + 1) }
}

/** Istio `SortVHostRoutes`: catch-all routes move to the end, order otherwise kept. */
function catchAllsLast (routes: CompiledRoute[], port?: number): CompiledRoute[] {
  return [...routes.filter(r => !isCatchAll(r, port)), ...routes.filter(r => isCatchAll(r, port))]
}

/** Istio `IsCatchAllRoute` on a listener port: a `port` condition that holds there adds no matcher. */
function isCatchAll (r: CompiledRoute, port: number | undefined): boolean {
  return r.match.catchAll || (port !== undefined && r.match.portCatchAll === port)
}

function buildHostIndex (vhosts: VirtualHost[]): HostIndex {
  const exact = new Map<string, VirtualHost>()
  const wild: Array<readonly [string, VirtualHost]> = []
  let any: VirtualHost | undefined
  for (const vh of vhosts) {
    for (const d of vh.domains) {
      if (d === '*') any ??= vh
      else if (d.startsWith('*.')) { if (!wild.some(([s]) => s === d.slice(1))) wild.push([d.slice(1), vh]) } else if (!exact.has(d)) exact.set(d, vh)
    }
  }
  wild.sort((a, b) => b[0].length - a[0].length)
  indexVirtualHosts(vhosts)
  return Object.freeze({ exact, wildcards: Object.freeze(wild), any, all: Object.freeze(vhosts) })
}

/** Look up a virtual host: exact, then longest wildcard suffix, then `*`. Ports are ignored. */
export function lookupHost (index: HostIndex, host: string): VirtualHost | undefined {
  const e = index.exact.get(host)
  if (e !== undefined) return e
  for (let i = 0; i < index.wildcards.length; i++) {
    const [suffix, vh] = index.wildcards[i]
    if (host.length > suffix.length && host.endsWith(suffix)) return vh
  }
  return index.any
}

function problemAt (
  r: VirtualService | ResourceSet['gateways'][number] | ResourceSet['serviceEntries'][number] | ResourceSet['destinationRules'][number],
  path: Array<string | number>,
  severity: Problem['severity'],
  code: string,
  message: string
): Problem {
  const { line, column } = r.locate(path)
  return { severity, code, message, file: r.source.file, line, column, resource: resourceId(r), path: formatPath(path) }
}

/**
 * Compiles each VirtualService's routes once, and hands out the subset that applies at a
 * listener (by the match blocks' effective `gateways`). Each match block is its own route, so a
 * rewrite is relative to the block that matched; routes after a catch-all are dropped.
 */
class RouteCompiler {
  private readonly cache = new Map<VirtualService, Array<{ route: CompiledRoute; gateways: Set<string> }>>()
  private readonly listenerCache = new Map<string, CompiledRoute[]>()

  constructor (private readonly reg: Registry, private readonly set: ResourceSet, private readonly problems: Problem[]) {}

  forListener (vs: VirtualService, gateway: string, port?: number): CompiledRoute[] {
    const key = `${vs.metadata.namespace}/${vs.metadata.name}\u0000${gateway}\u0000${port ?? ''}`
    let out = this.listenerCache.get(key)
    if (out !== undefined) return out
    out = []
    for (const { route, gateways } of this.all(vs)) {
      if (!gateways.has(gateway)) continue
      // route.go translateRoute: a block whose `port` is not the listener's is dropped.
      if (port !== undefined && route.matchSpec?.port !== undefined && route.matchSpec.port !== port) continue
      out.push(route)
      if (isCatchAll(route, port)) break
    }
    this.listenerCache.set(key, out)
    return out
  }

  defaultRoute (fqdn: string): CompiledRoute {
    const dest: CompiledDestination = { ...this.target({ host: fqdn }, 'default'), weight: 1 }
    return {
      name: 'default',
      virtualService: '-',
      httpIndex: 0,
      matchIndex: 0,
      match: compileMatch(undefined),
      destinations: [dest],
      totalWeight: 1
    }
  }

  private all (vs: VirtualService): Array<{ route: CompiledRoute; gateways: Set<string> }> {
    let out = this.cache.get(vs)
    if (out !== undefined) return out
    out = []
    const ns = vs.metadata.namespace
    const vsGateways = normalizeGateways(vs.spec.gateways, ns)
    ;(vs.spec.http ?? []).forEach((http, i) => {
      const blocks = http.match !== undefined && http.match.length > 0 ? http.match : [undefined]
      if (http.delegate !== undefined) {
        this.delegated(vs, http, i, blocks, vsGateways, out!)
        return
      }
      const shared = this.action(http, ns)
      blocks.forEach((m, j) => {
        const gateways = m?.gateways !== undefined && m.gateways.length > 0 ? normalizeGateways(m.gateways, ns) : vsGateways
        out!.push({ route: this.route(vs, http, i, j, m, shared), gateways })
      })
    })
    this.cache.set(vs, out)
    return out
  }

  private route (vs: VirtualService, http: HTTPRoute, i: number, j: number, m: HTTPMatchRequest | undefined, shared: ReturnType<RouteCompiler['action']>, origin?: string): CompiledRoute {
    return Object.freeze({
      name: routeName(http.name, m?.name),
      virtualService: origin ?? `${vs.metadata.namespace}/${vs.metadata.name}`,
      httpIndex: i,
      matchIndex: j,
      match: compileMatch(m),
      ...(m !== undefined ? { matchSpec: m } : {}),
      ...shared
    })
  }

  /**
   * Istio delegation (one level): the delegate VirtualService's routes take the root route's
   * place, each delegate match block merged with each root block. A delegate block that does not
   * lie within the root's (a URI outside the root prefix, a conflicting header, a regex on a
   * property the other side matches) is dropped with a warning, as Istio drops it.
   */
  private delegated (root: VirtualService, http: HTTPRoute, i: number, rootBlocks: Array<HTTPMatchRequest | undefined>, vsGateways: Set<string>,
    out: Array<{ route: CompiledRoute; gateways: Set<string> }>): void {
    const d = http.delegate!
    const dns = d.namespace ?? root.metadata.namespace
    const target = this.set.virtualServices.find(v => v.metadata.name === d.name && v.metadata.namespace === dns)
    if (target === undefined) return // reported by validation
    ;(target.spec.http ?? []).forEach((dh, di) => {
      if (dh.delegate !== undefined) return // one level only (validation reports it)
      const shared = this.action(dh, dns)
      const dBlocks = dh.match !== undefined && dh.match.length > 0 ? dh.match : [undefined]
      rootBlocks.forEach((rm, j) => {
        dBlocks.forEach((dm, k) => {
          const merged = mergeMatch(rm, dm)
          if (typeof merged === 'string') {
            this.problems.push(problemAt(target, ['spec', 'http', di, 'match', k], 'Warning', Codes.NoEffect,
              `dropped: does not lie within root VirtualService ${root.metadata.namespace}/${root.metadata.name} spec.http[${i}].match[${j}] (${merged})`))
            return
          }
          const gateways = rm?.gateways !== undefined && rm.gateways.length > 0 ? normalizeGateways(rm.gateways, root.metadata.namespace) : vsGateways
          out.push({ route: this.route(root, dh, i, j * dBlocks.length + k, merged, shared, `${dns}/${target.metadata.name} (delegate of ${root.metadata.namespace}/${root.metadata.name})`), gateways })
        })
      })
    })
  }

  private action (http: HTTPRoute, ns: string): Pick<CompiledRoute, 'rewrite' | 'headers' | 'destinations' | 'totalWeight' | 'retry' | 'timeoutMs' | 'redirect' | 'directResponse' | 'fault' | 'cors' | 'mirrors'> {
    const list = http.route ?? []
    // A single destination's header operations join the route's list after its own (route.go
    // processDestination), so the destination's `set` wins; weighted ones stay per destination.
    const headers = list.length === 1
      ? foldSingleDestination(compileHeaders(http.headers), compileHeaders(list[0].headers))
      : compileHeaders(http.headers)
    const rewrite = compileRewrite(http.rewrite, headers?.hostRewrite)
    const destinations: CompiledDestination[] = []
    for (const d of list) {
      // With several destinations a weight of 0 (or none) gets no traffic; a single one takes all.
      const weight = list.length === 1 ? 1 : (d.weight ?? 0)
      if (weight <= 0) continue
      const dh = list.length === 1 ? undefined : compileHeaders(d.headers)
      const dest: CompiledDestination = { ...this.target(d.destination, ns), weight }
      if (dh !== undefined) dest.headers = dh
      if (d.fallback !== undefined) dest.fallback = this.target(d.fallback.target, ns)
      destinations.push(Object.freeze(dest))
    }
    const totalWeight = destinations.reduce((s, d) => s + d.weight, 0)
    const timeoutMs = http.timeout !== undefined ? parseDurationMs(http.timeout) : undefined
    const redirect = compileRedirect(http.redirect)
    const directResponse = compileDirectResponse(http.directResponse)
    const fault = compileFault(http.fault)
    const cors = compileCors(http.corsPolicy)
    const mirrors = mirrorTargets(http).map(m => ({ target: this.target(m.destination, ns), fraction: m.fraction }))
    return {
      ...(redirect !== undefined ? { redirect } : {}),
      ...(directResponse !== undefined ? { directResponse } : {}),
      ...(fault !== undefined ? { fault } : {}),
      ...(cors !== undefined ? { cors } : {}),
      ...(mirrors.length > 0 ? { mirrors } : {}),
      retry: retryPolicy(http.retries),
      ...(timeoutMs !== undefined && timeoutMs > 0 ? { timeoutMs } : {}),
      ...(rewrite !== undefined ? { rewrite } : {}),
      ...(headers !== undefined ? { headers } : {}),
      destinations: Object.freeze(destinations),
      totalWeight
    }
  }

  /** Resolve a Destination to cluster names (fixed, or by the port the caller addressed). */
  private target (d: Destination, ns: string): DestinationTarget {
    return destinationTarget(this.reg, d, ns)
  }
}

function normalizeGateways (gws: string[] | undefined, ns: string): Set<string> {
  if (gws === undefined || gws.length === 0) return new Set(['mesh'])
  return new Set(gws.map(g => (g === 'mesh' ? 'mesh' : g.includes('/') ? g : `${ns}/${g}`)))
}

/**
 * Istio's route name (route.go translateRoute): `http[].name`, plus `"." + match.name` when the
 * block is named, so a named block in an unnamed route is `.match`. Empty logs as '-'.
 */
function routeName (route: string | undefined, match: string | undefined): string {
  const name = match !== undefined && match !== '' ? `${route ?? ''}.${match}` : (route ?? '')
  return name === '' ? '-' : name
}

/** The cluster a destination resolves to for the port the caller addressed. */
export function clusterFor (t: DestinationTarget, port: number): string {
  return t.cluster ?? t.byPort?.get(port) ?? t.fallbackPortCluster ?? clusterName(port, t.subset, t.host)
}

export { visibleTo }

/** Is `inner` within `outer` for a URI? (Istio delegate rules.) Undefined inner takes the outer. */
function uriWithin (outer: StringMatch, inner: StringMatch): boolean {
  if (outer.regex !== undefined || inner.regex !== undefined) return false
  if (outer.exact !== undefined) return inner.exact === outer.exact
  const p = outer.prefix ?? ''
  return (inner.exact ?? inner.prefix ?? '').startsWith(p)
}

function sameMatch (a: StringMatch, b: StringMatch): boolean {
  return a.exact === b.exact && a.prefix === b.prefix && a.regex === b.regex
}

/** Merge a root match block with a delegate's; a string explains a conflict. */
export function mergeMatch (root: HTTPMatchRequest | undefined, del: HTTPMatchRequest | undefined): HTTPMatchRequest | undefined | string {
  if (root === undefined) return del
  if (del === undefined) return root
  const out: HTTPMatchRequest = { ...root }
  for (const f of ['uri', 'scheme', 'method', 'authority'] as const) {
    const r = root[f]
    const d = del[f]
    if (d === undefined) continue
    if (r === undefined) { out[f] = d; continue }
    if (f === 'uri') { if (!uriWithin(r, d)) return `uri ${JSON.stringify(d)} is not within ${JSON.stringify(r)}`; out.uri = d; continue }
    if (!sameMatch(r, d)) return `${f} conflicts`
  }
  for (const f of ['headers', 'withoutHeaders', 'queryParams'] as const) {
    const r = root[f] ?? {}
    const d = del[f] ?? {}
    for (const k of Object.keys(d)) if (r[k] !== undefined && !sameMatch(r[k], d[k])) return `${f}.${k} conflicts`
    if (root[f] !== undefined || del[f] !== undefined) out[f] = { ...r, ...d }
  }
  if (del.port !== undefined) {
    if (root.port !== undefined && root.port !== del.port) return 'port conflicts'
    out.port = del.port
  }
  if (del.ignoreUriCase !== undefined) out.ignoreUriCase = del.ignoreUriCase
  if (del.name !== undefined) out.name = del.name
  return out
}

/**
 * Attach route indexes to virtual hosts of a snapshot being built (compile time, never on the
 * request path). Hosts with few routes keep the linear scan, which is faster for them.
 */
export function indexVirtualHosts (vhosts: Iterable<VirtualHost>): void {
  for (const vh of vhosts) {
    if (vh.routeIndex === undefined && vh.routes.length >= INDEX_MIN_ROUTES) vh.routeIndex = buildRouteIndex(vh.routes)
  }
}
