import RE2 from 're2'
import type { ClientTLSSettings, Destination, DestinationRule, HTTPRoute, L4MatchAttributes, Resource, TCPRoute, TLSRoute, TrafficPolicy, ResourceSet, StringMatch, VirtualService } from './model.js'
import { parseCidr } from '../security/cidr.js'
import { resourceId } from './model.js'
import { type Problem, type Severity, Codes, formatPath } from './problem.js'
import { hostMatches, hostProblem, isIP, toFqdn } from './hosts.js'
import { parseDurationMs } from './duration.js'
import { GRPC_CODES } from '../routing/actions.js'
import { RETRY_ON_NAMES } from '../resilience/retry.js'
import { validateSecurity } from './validate-security.js'

/**
 * HTTPRoute fields meshgate does not implement yet. A route using one is rejected at load,
 * because ignoring it would change what the route does.
 */
export const UNSUPPORTED_HTTP_ROUTE_FIELDS = [] as const

/**
 * Longest regex accepted (characters), Istio's cap. RE2 matches in linear time; the cap keeps
 * compile time and program memory bounded too.
 */
/** Unix-socket endpoints (Istio allows them for sidecar-local workloads): meshgate dials TCP only. */
const UNIX_ENDPOINT = (a: string): string => `unix socket endpoints ("${a}") are not supported by meshgate, which connects to upstreams over TCP; use an IP address or a DNS name`

export const MAX_REGEX_LENGTH = 1024

const REDIRECT_CODES = new Set([301, 302, 303, 307, 308])
const GATEWAY_PROTOCOLS = new Set(['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'MONGO', 'TCP', 'TLS'])
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/
/** Characters a header value may not hold (RFC 9110 field-value: VCHAR, obs-text, SP and HTAB only). */
const BAD_HEADER_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/

type Path = Array<string | number>

export class Collector {
  constructor (readonly problems: Problem[], readonly strict: boolean) {}

  at (r: Resource, path: Path, severity: Severity, code: string, message: string): void {
    const { line, column } = r.locate(path)
    const sev = severity === 'Warning' && this.strict ? 'Error' : severity
    this.problems.push({ severity: sev, code, message, file: r.source.file, line, column, resource: resourceId(r), path: formatPath(path) })
  }

  error (r: Resource, path: Path, message: string, code: string = Codes.SchemaValidationError): void {
    this.at(r, path, 'Error', code, message)
  }
}

/**
 * Semantic and cross-reference validation of a schema-valid set (all problems at once).
 * References Istio accepts but that cannot work are warnings (errors when `strict`).
 */
export function validateSet (set: ResourceSet, strict = false): Problem[] {
  const c = new Collector([], strict)
  const gateways = new Set(set.gateways.map(g => `${g.metadata.namespace}/${g.metadata.name}`))
  const services = set.serviceEntries.flatMap(se => se.spec.hosts.map(h => toFqdn(h, se.metadata.namespace)))
  const subsetKeys = new Set(set.destinationRules.flatMap(dr => (dr.spec.subsets ?? []).map(s => `${toFqdn(dr.spec.host, dr.metadata.namespace)}+${s.name}`)))
  const ruleHosts = [...new Set(set.destinationRules.map(dr => toFqdn(dr.spec.host, dr.metadata.namespace)))]
  // The DestinationRule of a service is the one for its exact host, else the one whose wildcard
  // host covers it most specifically (`*.local` in Istio's mesh-wide examples), as in compile.
  const subsets = (fqdn: string, subset: string): boolean => {
    const host = ruleHosts.includes(fqdn) ? fqdn : ruleHosts.filter(h => h.startsWith('*') && hostMatches(h, fqdn)).sort((a, b) => b.length - a.length)[0]
    return host !== undefined && subsetKeys.has(`${host}+${subset}`)
  }
  const registered = (fqdn: string): boolean => services.some(s => s === fqdn || (s.startsWith('*') && hostMatches(s, fqdn)))

  const delegates = new Set(set.virtualServices.flatMap(vs => (vs.spec.http ?? []).filter(h => h.delegate !== undefined).map(h => `${h.delegate!.namespace ?? vs.metadata.namespace}/${h.delegate!.name ?? ''}`)))
  for (const vs of set.virtualServices) validateVirtualService(c, vs, gateways, registered, subsets, delegates.has(`${vs.metadata.namespace}/${vs.metadata.name}`))
  for (const vs of set.virtualServices) {
    ;(vs.spec.http ?? []).forEach((h, i) => {
      if (h.delegate === undefined) return
      const ns = h.delegate.namespace ?? vs.metadata.namespace
      const target = set.virtualServices.find(v => v.metadata.name === h.delegate!.name && v.metadata.namespace === ns)
      if (target === undefined) c.error(vs, ['spec', 'http', i, 'delegate'], `Referenced delegate VirtualService not found: "${ns}/${h.delegate.name ?? ''}"`, Codes.ReferencedResourceNotFound)
      else if ((target.spec.http ?? []).some(x => x.delegate !== undefined)) c.error(vs, ['spec', 'http', i, 'delegate'], `delegate ${ns}/${h.delegate.name ?? ''} delegates again; Istio allows one level of delegation`)
      if (h.delegate.name === undefined) c.error(vs, ['spec', 'http', i, 'delegate', 'name'], 'delegate.name is required')
    })
  }
  for (const dr of set.destinationRules) {
    hostField(c, dr, ['spec', 'host'], dr.spec.host, { allowWildcard: true })
    const seen = new Set<string>()
    ;(dr.spec.subsets ?? []).forEach((s, i) => {
      if (!DNS1123_LABEL.test(s.name)) c.error(dr, ['spec', 'subsets', i, 'name'], `subset name "${s.name}" must be a DNS-1123 label`)
      if (seen.has(s.name)) c.error(dr, ['spec', 'subsets', i, 'name'], `duplicate subset name "${s.name}"`)
      seen.add(s.name)
    })
    durations(c, dr, ['spec'], dr.spec as unknown as Record<string, unknown>)
    clientTls(c, dr)
    if (dr.spec.workloadSelector !== undefined) c.at(dr, ['spec', 'workloadSelector'], 'Warning', Codes.NoEffect, 'workloadSelector selects sidecars; meshgate applies the DestinationRule to every request and ignores it')
  }
  for (const gw of set.gateways) {
    if (gw.spec.servers.length === 0) c.error(gw, ['spec', 'servers'], 'a Gateway needs at least one server')
    gw.spec.servers.forEach((s, i) => {
      if (!GATEWAY_PROTOCOLS.has(s.port.protocol.toUpperCase())) c.error(gw, ['spec', 'servers', i, 'port', 'protocol'], `protocol "${s.port.protocol}" is not one of ${[...GATEWAY_PROTOCOLS].join(', ')}`)
      if (s.hosts.length === 0) c.error(gw, ['spec', 'servers', i, 'hosts'], 'a server needs at least one host')
      const proto = s.port.protocol.toUpperCase()
      const tls = s.tls
      if (proto === 'HTTPS' && tls === undefined) c.error(gw, ['spec', 'servers', i], 'an HTTPS server needs tls settings')
      // AUTO_PASSTHROUGH routes by an SNI that encodes istiod's cluster names (multi-network
      // east-west gateways); without istiod no such names exist, so nothing would be reachable.
      if (tls?.mode === 'AUTO_PASSTHROUGH') c.error(gw, ['spec', 'servers', i, 'tls', 'mode'], 'tls.mode AUTO_PASSTHROUGH is not supported by meshgate: it routes by SNI names istiod gives its clusters (outbound_.PORT_.SUBSET_.HOST), which do not exist without istiod; use PASSTHROUGH with tls routes matching sniHosts', Codes.NotSupported)
      if (tls?.mode === 'PASSTHROUGH' && proto !== 'HTTPS' && proto !== 'TLS') c.error(gw, ['spec', 'servers', i, 'tls', 'mode'], `tls.mode PASSTHROUGH needs port protocol HTTPS or TLS, not ${proto}`)
      if (tls !== undefined && (proto === 'HTTPS' || proto === 'TLS') && ['SIMPLE', 'MUTUAL', 'OPTIONAL_MUTUAL', undefined].includes(tls.mode)) {
        // credentialName names a secret, read from the credentials directory when compiled
        // (src/config/credentials.ts); Istio allows it or the file fields, not both.
        const cred = tls.credentialName !== undefined ? 'credentialName' : tls.credentialNames !== undefined ? 'credentialNames' : undefined
        if (cred !== undefined) {
          const files = (['serverCertificate', 'privateKey', 'caCertificates'] as const).filter(f => tls[f] !== undefined)
          if (files.length > 0) c.error(gw, ['spec', 'servers', i, 'tls', files[0]], `set either ${cred} or ${files.join(', ')}, not both (Istio: only one of server certificates and CA certificate or credentialName can be specified)`)
        } else {
          if (tls.serverCertificate === undefined) c.error(gw, ['spec', 'servers', i, 'tls'], 'serverCertificate (a PEM file path) is required (or credentialName)')
          if (tls.privateKey === undefined) c.error(gw, ['spec', 'servers', i, 'tls'], 'privateKey (a PEM file path) is required (or credentialName)')
          if (tls.mode === 'MUTUAL' && tls.caCertificates === undefined) c.error(gw, ['spec', 'servers', i, 'tls'], 'MUTUAL needs caCertificates to verify client certificates')
        }
      }
      s.hosts.forEach((h, j) => {
        const slash = h.indexOf('/')
        const ns = slash >= 0 ? h.slice(0, slash) : '*'
        const host = slash >= 0 ? h.slice(slash + 1) : h
        if (ns !== '*' && ns !== '.' && !DNS1123_LABEL.test(ns)) c.error(gw, ['spec', 'servers', i, 'hosts', j], `namespace "${ns}" in "${h}" must be *, . or a namespace name`)
        hostField(c, gw, ['spec', 'servers', i, 'hosts', j], host, { allowWildcard: true })
      })
    })
  }
  for (const se of set.serviceEntries) {
    if (se.spec.hosts.length === 0) c.error(se, ['spec', 'hosts'], 'a ServiceEntry needs at least one host')
    se.spec.hosts.forEach((h, i) => {
      if (h === '*') c.error(se, ['spec', 'hosts', i], 'host "*" is not allowed in a ServiceEntry')
      else hostField(c, se, ['spec', 'hosts', i], h, { allowWildcard: true })
    })
    const names = new Set<string>()
    ;(se.spec.ports ?? []).forEach((p, i) => {
      if (names.has(p.name)) c.error(se, ['spec', 'ports', i, 'name'], `duplicate port name "${p.name}"`)
      names.add(p.name)
    })
    ;(se.spec.endpoints ?? []).forEach((e, i) => {
      if (e.address === undefined || e.address === '') c.error(se, ['spec', 'endpoints', i], 'endpoint address is required')
      else if (e.address.startsWith('unix://')) c.error(se, ['spec', 'endpoints', i, 'address'], UNIX_ENDPOINT(e.address), Codes.NotSupported)
      else if ((se.spec.resolution ?? 'NONE') === 'STATIC' && !isIP(e.address)) {
        c.error(se, ['spec', 'endpoints', i, 'address'], `endpoint address "${e.address}" must be an IP address with resolution STATIC (use resolution: DNS for names)`)
      }
      for (const k of Object.keys(e.ports ?? {})) {
        if (!names.has(k)) c.at(se, ['spec', 'endpoints', i, 'ports', k], 'Warning', Codes.ReferencedResourceNotFound, `port name "${k}" is not declared in spec.ports`)
      }
    })
  }
  for (const we of set.workloadEntries) {
    if (we.spec.address === undefined || we.spec.address === '') c.error(we, ['spec'], 'address is required')
    else if (we.spec.address.startsWith('unix://')) c.error(we, ['spec', 'address'], UNIX_ENDPOINT(we.spec.address), Codes.NotSupported)
  }
  noEffectFields(c, set)
  validateSecurity(c, set)
  return c.problems
}

/**
 * Istio fields meshgate accepts but does not act on, each with what meshgate does instead. Every
 * use is a warning, so nothing in a configuration is ignored silently. `*` is any list element.
 */
const NO_EFFECT: Record<string, Array<[string, string]>> = {
  DestinationRule: [
    ...['spec.trafficPolicy', 'spec.trafficPolicy.portLevelSettings.*', 'spec.subsets.*.trafficPolicy', 'spec.subsets.*.trafficPolicy.portLevelSettings.*'].flatMap((at): Array<[string, string]> => [
      [`${at}.loadBalancer.localityLbSetting`, 'endpoints carry no locality priority in meshgate; locality distribution and failover are ignored (ASM fallback moves traffic between subsets instead)'],
      [`${at}.loadBalancer.warmup`, 'slow-start warm-up is not implemented: a new endpoint gets its full share at once'],
      [`${at}.loadBalancer.warmupDurationSecs`, 'slow-start warm-up is not implemented: a new endpoint gets its full share at once'],
      [`${at}.connectionPool.tcp.tcpKeepalive`, 'upstream TCP keep-alive probes are not configured; ignored'],
      [`${at}.connectionPool.tcp.maxConnectionDuration`, 'upstream connections are not closed by age; ignored (maxRequestsPerConnection and idleTimeout apply)'],
      [`${at}.connectionPool.http.useClientProtocol`, 'the upstream protocol follows the port protocol and h2UpgradePolicy, not the client\'s; ignored'],
      [`${at}.tls.subjectAltNames`, 'the upstream certificate is verified against the sni (or host) name, not these SANs'],
      [`${at}.tls.caCrl`, 'certificate revocation lists are not checked; ignored']
    ]),
    ...['spec.trafficPolicy', 'spec.subsets.*.trafficPolicy'].flatMap((at): Array<[string, string]> => [
      [`${at}.tunnel`, 'tunnelling (CONNECT / POST) to an upstream proxy is not implemented; requests go to the endpoints directly'],
      [`${at}.proxyProtocol`, 'the PROXY protocol header is not sent to upstreams; ignored'],
      [`${at}.retryBudget`, 'retries are limited by attempts and connectionPool.http.maxRetries only; ignored']
    ])
  ],
  VirtualService: [
    ['spec.http.*.retries.retryRemoteLocalities', 'endpoints carry no locality in meshgate; ignored'],
    ['spec.http.*.match.*.statPrefix', 'per-route Envoy stats do not exist in meshgate (metrics carry the route name); ignored'],
    ['spec.http.*.fault.abort.http2Error', 'HTTP/2 error aborts are not implemented; without httpStatus or grpcStatus no abort is injected'],
    ['spec.http.*.fault.delay.exponentialDelay', 'applied as a fixed delay of that duration']
  ],
  Gateway: [
    ['spec.servers.*.bind', 'listeners bind to the --host address; ignored'],
    ['spec.servers.*.defaultEndpoint', 'applies to sidecar ingress only; ignored'],
    ['spec.servers.*.port.targetPort', 'the bind port comes from --port-map; ignored'],
    ['spec.servers.*.tls.subjectAltNames', 'client certificates are verified against the CA only; the SAN list is ignored'],
    ['spec.servers.*.tls.verifyCertificateSpki', 'client certificates are verified against the CA only; pins are ignored'],
    ['spec.servers.*.tls.verifyCertificateHash', 'client certificates are verified against the CA only; pins are ignored'],
    ['spec.servers.*.tls.caCrl', 'certificate revocation lists are not checked; ignored']
  ],
  ServiceEntry: [
    ['spec.addresses', 'meshgate routes by Host name, not by virtual IP; ignored'],
    ['spec.subjectAltNames', 'upstream certificates are verified against the sni (or host) name; ignored'],
    ['spec.endpoints.*.network', 'single network: every endpoint is reached directly; ignored'],
    ['spec.endpoints.*.locality', 'endpoints carry no locality priority in meshgate; ignored'],
    ['spec.endpoints.*.serviceAccount', 'no workload identities without Istio\'s CA; ignored']
  ],
  WorkloadEntry: [
    ['spec.network', 'single network: every endpoint is reached directly; ignored'],
    ['spec.locality', 'endpoints carry no locality priority in meshgate; ignored'],
    ['spec.serviceAccount', 'no workload identities without Istio\'s CA; ignored']
  ]
}

function noEffectFields (c: Collector, set: ResourceSet): void {
  const all: Resource[] = [...set.destinationRules, ...set.virtualServices, ...set.gateways, ...set.serviceEntries, ...set.workloadEntries]
  for (const r of all) {
    for (const [pattern, message] of NO_EFFECT[r.kind] ?? []) {
      const field = pattern.slice(pattern.lastIndexOf('.') + 1)
      visit(r as unknown as Record<string, unknown>, pattern.split('.'), [], path => c.at(r, path, 'Warning', Codes.NoEffect, `${field}: ${message}`))
    }
  }
}

/** Call `found` with the path of every value at `pattern` (`*` = each list element). */
function visit (node: unknown, pattern: string[], path: Path, found: (path: Path) => void): void {
  if (node === undefined || node === null) return
  if (pattern.length === 0) { found(path); return }
  const [head, ...rest] = pattern
  if (head === '*') {
    if (Array.isArray(node)) node.forEach((v, i) => visit(v, rest, [...path, i], found))
    return
  }
  if (typeof node === 'object' && !Array.isArray(node)) visit((node as Record<string, unknown>)[head], rest, [...path, head], found)
}

/**
 * DestinationRule `tls` wherever it sits. A credentialName is resolved from the credentials
 * directory when compiled (SIMPLE, MUTUAL); so is ISTIO_MUTUAL's workload certificate
 * (src/compile/istio-mutual.ts, which also warns when that traffic goes out in plaintext).
 */
function clientTls (c: Collector, dr: DestinationRule): void {
  const spots: Array<{ path: Path; tls: ClientTLSSettings | undefined }> = []
  const policy = (path: Path, p: TrafficPolicy | undefined): void => {
    spots.push({ path: [...path, 'tls'], tls: p?.tls })
    ;(p?.portLevelSettings ?? []).forEach((pl, k) => spots.push({ path: [...path, 'portLevelSettings', k, 'tls'], tls: pl.tls }))
  }
  policy(['spec', 'trafficPolicy'], dr.spec.trafficPolicy)
  ;(dr.spec.subsets ?? []).forEach((s, j) => policy(['spec', 'subsets', j, 'trafficPolicy'], s.trafficPolicy))
  for (const { path, tls } of spots) {
    if (tls === undefined) continue
    if (tls.credentialName !== undefined && tls.mode !== 'SIMPLE' && tls.mode !== 'MUTUAL') {
      c.at(dr, [...path, 'credentialName'], 'Warning', Codes.NoEffect, `credentialName is only used with tls.mode SIMPLE or MUTUAL; with ${tls.mode ?? 'no mode'} meshgate ignores it`)
    }
    if (tls.credentialName !== undefined && (tls.mode === 'SIMPLE' || tls.mode === 'MUTUAL')) {
      const files = (['clientCertificate', 'privateKey', 'caCertificates'] as const).filter(f => tls[f] !== undefined)
      if (files.length > 0) c.error(dr, [...path, files[0]], `set either credentialName or ${files.join(', ')}, not both (Istio: only one of client certificates and CA certificate or credentialName can be specified)`)
    }
  }
}

function hostField (c: Collector, r: Resource, path: Path, host: string, opts: { allowWildcard: boolean }): void {
  const p = hostProblem(host.toLowerCase(), { allowWildcard: opts.allowWildcard, allowIP: true })
  if (p !== undefined) c.error(r, path, p)
}

function validateVirtualService (c: Collector, vs: VirtualService, gateways: Set<string>, registered: (h: string) => boolean, subsets: (fqdn: string,
  subset: string) => boolean, isDelegate: boolean): void {
  const ns = vs.metadata.namespace
  const hosts = vs.spec.hosts ?? []
  if (isDelegate && hosts.length > 0) c.error(vs, ['spec', 'hosts'], 'a delegate VirtualService must have no hosts (Istio delegation)')
  if (!isDelegate && hosts.length === 0) c.error(vs, ['spec', 'hosts'], 'a VirtualService needs at least one host (only delegates have none)')
  // Istio: "http, tcp or tls must be provided in virtual service".
  if ((vs.spec.http ?? []).length === 0 && (vs.spec.tcp ?? []).length === 0 && (vs.spec.tls ?? []).length === 0) {
    c.error(vs, ['spec', vs.spec.http !== undefined ? 'http' : 'hosts'], 'a VirtualService needs at least one http, tcp or tls route (the http list is empty)')
  }
  routeOrder(c, vs)
  hosts.forEach((h, i) => hostField(c, vs, ['spec', 'hosts', i], h, { allowWildcard: true }))
  // Istio's validateVirtualService: `*` cannot be a mesh host (it would capture every call), and
  // two hosts that overlap, literally or by wildcard (`*.foo.com` and `*.com`), are duplicates.
  const meshBound = (vs.spec.gateways ?? []).length === 0 || (vs.spec.gateways ?? []).includes('mesh')
  const wellFormed = hosts.map(h => hostProblem(h.toLowerCase(), { allowWildcard: true, allowIP: true }) === undefined)
  hosts.forEach((h, i) => {
    if (h === '*' && meshBound) c.error(vs, ['spec', 'hosts', i], 'wildcard host "*" is not allowed for a VirtualService bound to the mesh (no gateways, or mesh listed)')
    for (let j = 0; j < i; j++) {
      const a = hosts[j].toLowerCase()
      const b = h.toLowerCase()
      if (wellFormed[i] && wellFormed[j] && (hostMatches(a, b) || hostMatches(b, a))) c.error(vs, ['spec', 'hosts', i], `duplicate hosts in the VirtualService: "${hosts[j]}" and "${h}" overlap`)
    }
  })
  const checkGateways = (list: string[] | undefined, path: Path): void => {
    (list ?? []).forEach((g, i) => {
      if (g === 'mesh') return
      const full = g.includes('/') ? g : `${ns}/${g}`
      if (!gateways.has(full)) c.error(vs, [...path, i], `Referenced gateway not found: "${g}"`, Codes.ReferencedResourceNotFound)
    })
  }
  checkGateways(vs.spec.gateways, ['spec', 'gateways'])
  l4Routes(c, vs, checkGateways, registered, subsets)
  ;(vs.spec.http ?? []).forEach((route, i) => {
    const base: Path = ['spec', 'http', i]
    for (const f of UNSUPPORTED_HTTP_ROUTE_FIELDS) {
      if ((route as Record<string, unknown>)[f] !== undefined) {
        c.error(vs, [...base, f], `"${f}" is not supported yet by meshgate (it would be ignored, so the route is rejected)`, Codes.NotSupported)
      }
    }
    const actions = ['route', 'redirect', 'directResponse', 'delegate'].filter(a => (route as Record<string, unknown>)[a] !== undefined)
    if (actions.length === 0) c.error(vs, base, 'an HTTP route needs one of route, redirect, directResponse or delegate')
    if (actions.length > 1) c.error(vs, base, `an HTTP route has exactly one of route, redirect, directResponse, delegate; found ${actions.join(', ')}`)
    if (route.rewrite !== undefined && route.redirect !== undefined) c.error(vs, [...base, 'rewrite'], 'rewrite cannot be combined with redirect')
    // The other combinations Istio's validateHTTPRouteConflict rejects.
    if (route.rewrite !== undefined && route.directResponse !== undefined) c.error(vs, [...base, 'rewrite'], 'rewrite cannot be combined with directResponse')
    if (route.fault !== undefined && (route.redirect !== undefined || route.directResponse !== undefined)) c.error(vs, [...base, 'fault'], `fault cannot be combined with ${route.redirect !== undefined ? 'redirect' : 'directResponse'}`)
    if (route.mirror !== undefined && route.mirrors !== undefined) c.error(vs, [...base, 'mirrors'], 'mirror and mirrors cannot both be set')
    if (route.fault !== undefined && route.fault.abort === undefined && route.fault.delay === undefined) c.error(vs, [...base, 'fault'], 'a fault needs an abort, a delay or both')
    const rd = route.redirect
    if (rd !== undefined && rd.uri === undefined && rd.authority === undefined && rd.scheme === undefined && rd.port === undefined && rd.derivePort === undefined) c.error(vs, [...base, 'redirect'], 'a redirect needs uri, authority, scheme or port')
    if (rd?.scheme !== undefined && rd.scheme !== 'http' && rd.scheme !== 'https') c.error(vs, [...base, 'redirect', 'scheme'], `redirect scheme "${rd.scheme}" must be http or https`)
    if (route.redirect?.redirectCode !== undefined && !REDIRECT_CODES.has(route.redirect.redirectCode)) {
      c.error(vs, [...base, 'redirect', 'redirectCode'], `redirectCode ${route.redirect.redirectCode} is invalid: use 301, 302, 303, 307 or 308`)
    }
    if (route.retries?.attempts !== undefined && route.retries.attempts < 0) c.error(vs, [...base, 'retries', 'attempts'], 'attempts must be >= 0')
    // Istio's validateHTTPRetry: a retryOn typo would silently change which failures are retried.
    for (const item of (route.retries?.retryOn ?? '').split(',').map(x => x.trim()).filter(x => x !== '')) {
      if (!RETRY_ON_NAMES.has(item) && !/^[1-5]\d\d$/.test(item)) c.error(vs, [...base, 'retries', 'retryOn'], `"${item}" is not a valid retryOn policy (Envoy names such as 5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, or status codes)`)
    }
    if (route.retries !== undefined && (route.retries.attempts ?? 0) === 0 && (route.retries.perTryTimeout !== undefined || (route.retries.retryOn ?? '') !== '')) {
      c.error(vs, [...base, 'retries'], 'retryOn or perTryTimeout is set but attempts is 0 (retries disabled); set attempts')
    }
    validateWeights(c, vs, route, base)
    ;(route.match ?? []).forEach((m, j) => {
      const mp: Path = [...base, 'match', j]
      for (const f of ['uri', 'scheme', 'method', 'authority'] as const) stringMatch(c, vs, [...mp, f], m[f], false)
      for (const f of ['headers', 'withoutHeaders'] as const) {
        for (const [name, sm] of Object.entries(m[f] ?? {})) {
          if (name !== name.toLowerCase()) c.error(vs, [...mp, f, name], `header name "${name}" must be lowercase`)
          else if (!HEADER_NAME.test(name)) c.error(vs, [...mp, f, name], `"${name}" is not a valid header name`)
          stringMatch(c, vs, [...mp, f, name], sm, true)
        }
      }
      // `{}` on a query parameter is a presence match, as on a header (Istio translateQueryParamMatch).
      for (const [name, sm] of Object.entries(m.queryParams ?? {})) stringMatch(c, vs, [...mp, 'queryParams', name], sm, true)
      checkGateways(m.gateways, [...mp, 'gateways'])
      if (m.sourceLabels !== undefined) c.at(vs, [...mp, 'sourceLabels'], 'Warning', Codes.NoEffect, 'sourceLabels selects calling workloads by their pod labels, which meshgate cannot see; the condition is ignored')
      if (m.sourceNamespace !== undefined) c.at(vs, [...mp, 'sourceNamespace'], 'Warning', Codes.NoEffect, 'sourceNamespace selects calling workloads by namespace, which meshgate cannot see; the condition is ignored')
    })
    if (route.rewrite?.uriRegexRewrite !== undefined) regex(c, vs, [...base, 'rewrite', 'uriRegexRewrite', 'match'], route.rewrite.uriRegexRewrite.match)
    if (route.rewrite?.uri !== undefined && route.rewrite.uriRegexRewrite !== undefined) c.error(vs, [...base, 'rewrite'], 'rewrite.uri and rewrite.uriRegexRewrite cannot both be set')
    for (const f of ['timeout'] as const) if (route[f] !== undefined) duration(c, vs, [...base, f], route[f]!)
    if (route.retries?.perTryTimeout !== undefined) duration(c, vs, [...base, 'retries', 'perTryTimeout'], route.retries.perTryTimeout)
    if (route.retries?.backoff !== undefined) duration(c, vs, [...base, 'retries', 'backoff'], route.retries.backoff)
    if (route.fault?.delay?.fixedDelay !== undefined) duration(c, vs, [...base, 'fault', 'delay', 'fixedDelay'], route.fault.delay.fixedDelay)
    if (route.fault?.delay !== undefined && route.fault.delay.fixedDelay === undefined && route.fault.delay.exponentialDelay === undefined) c.error(vs, [...base, 'fault', 'delay'], 'a delay needs fixedDelay')
    if (route.fault?.abort !== undefined) {
      const a = route.fault.abort
      if (a.httpStatus === undefined && a.grpcStatus === undefined && a.http2Error === undefined) c.error(vs, [...base, 'fault', 'abort'], 'an abort needs httpStatus or grpcStatus')
      if (a.httpStatus !== undefined && (a.httpStatus < 200 || a.httpStatus > 599)) c.error(vs, [...base, 'fault', 'abort', 'httpStatus'], `httpStatus ${a.httpStatus} must be between 200 and 599`)
      if (a.grpcStatus !== undefined && !(a.grpcStatus in GRPC_CODES)) c.error(vs, [...base, 'fault', 'abort', 'grpcStatus'], `grpcStatus "${a.grpcStatus}" is not a gRPC status name (e.g. UNAVAILABLE)`)
    }
    for (const [k, p] of [['delay', route.fault?.delay?.percentage], ['abort', route.fault?.abort?.percentage]] as const) {
      if (p?.value !== undefined && (p.value < 0 || p.value > 100)) c.error(vs, [...base, 'fault', k, 'percentage', 'value'], 'percentage must be between 0 and 100')
    }
    // istio validation.go validateHTTPRoute: mirror percentages are 0..100 (mirror_percent ≤ 100).
    const mirrorPcts: Array<[Path, number | undefined]> = [
      [['mirrorPercentage', 'value'], route.mirrorPercentage?.value], [['mirrorPercent'], route.mirrorPercent],
      ...(route.mirrors ?? []).map((m, j): [Path, number | undefined] => [['mirrors', j, 'percentage', 'value'], m.percentage?.value])
    ]
    for (const [at, v] of mirrorPcts) if (v !== undefined && (v < 0 || v > 100)) c.error(vs, [...base, ...at], 'mirror percentage must be between 0 and 100')
    if (route.directResponse !== undefined && (route.directResponse.status < 200 || route.directResponse.status > 599)) c.error(vs, [...base, 'directResponse', 'status'], `status ${route.directResponse.status} must be between 200 and 599`)
    if (route.corsPolicy?.maxAge !== undefined) duration(c, vs, [...base, 'corsPolicy', 'maxAge'], route.corsPolicy.maxAge)
    ;(route.corsPolicy?.allowOrigins ?? []).forEach((m, j) => stringMatch(c, vs, [...base, 'corsPolicy', 'allowOrigins', j], m, false))
    if (route.redirect?.port !== undefined && route.redirect.derivePort !== undefined) c.error(vs, [...base, 'redirect'], 'set one of port and derivePort')
    if (route.mirror !== undefined) reference(c, vs, [...base, 'mirror'], route.mirror, registered, subsets)
    ;(route.mirrors ?? []).forEach((m, j) => reference(c, vs, [...base, 'mirrors', j, 'destination'], m.destination, registered, subsets))
    headerValues(c, vs, [...base, 'headers'], route.headers)
    // Values meshgate copies into response or upstream headers (Location, Host, CORS headers).
    for (const [k, v] of [['uri', route.redirect?.uri], ['authority', route.redirect?.authority], ['scheme', route.redirect?.scheme]] as const) {
      if (v !== undefined) headerValue(c, vs, [...base, 'redirect', k], v)
    }
    if (route.rewrite?.authority !== undefined) headerValue(c, vs, [...base, 'rewrite', 'authority'], route.rewrite.authority)
    if (route.rewrite?.uri !== undefined) headerValue(c, vs, [...base, 'rewrite', 'uri'], route.rewrite.uri)
    for (const f of ['allowOrigin', 'allowMethods', 'allowHeaders', 'exposeHeaders'] as const) {
      ;(route.corsPolicy?.[f] ?? []).forEach((v, j) => headerValue(c, vs, [...base, 'corsPolicy', f, j], v))
    }
    ;(route.route ?? []).forEach((d, j) => {
      const dp: Path = [...base, 'route', j]
      reference(c, vs, [...dp, 'destination'], d.destination, registered, subsets)
      if (d.fallback !== undefined) reference(c, vs, [...dp, 'fallback', 'target'], d.fallback.target, registered, subsets)
      headerValues(c, vs, [...dp, 'headers'], d.headers)
    })
  })
}

/**
 * `tcp` and `tls` routes (docs/tcp.md): destinations and their ASM fallback like HTTP ones,
 * Istio's rules on weights, match subnets and SNI hosts.
 */
function l4Routes (c: Collector, vs: VirtualService, checkGateways: (list: string[] | undefined, path: Path) => void,
  registered: (h: string) => boolean, subsets: (fqdn: string, subset: string) => boolean): void {
  const hosts = (vs.spec.hosts ?? []).map(h => h.toLowerCase())
  const lists: Array<['tcp' | 'tls', Array<TCPRoute | TLSRoute>]> = [['tcp', vs.spec.tcp ?? []], ['tls', vs.spec.tls ?? []]]
  for (const [kind, routes] of lists) {
    routes.forEach((route, i) => {
      const base: Path = ['spec', kind, i]
      if ((route.route ?? []).length === 0) c.error(vs, [...base, 'route'], `a ${kind} route needs at least one destination in route`)
      validateWeights(c, vs, route, base)
      ;(route.route ?? []).forEach((d, j) => {
        reference(c, vs, [...base, 'route', j, 'destination'], d.destination, registered, subsets)
        if (d.fallback !== undefined) reference(c, vs, [...base, 'route', j, 'fallback', 'target'], d.fallback.target, registered, subsets)
      })
      if (kind === 'tls' && (route.match ?? []).length === 0) c.error(vs, [...base, 'match'], 'a tls route needs at least one match with sniHosts')
      ;(route.match ?? []).forEach((m: L4MatchAttributes & { sniHosts?: string[] }, j) => {
        const mp: Path = [...base, 'match', j]
        ;(m.destinationSubnets ?? []).forEach((s, k) => {
          if (parseCidr(s) === undefined) c.error(vs, [...mp, 'destinationSubnets', k], `"${s}" is not an IP address or CIDR block`)
        })
        checkGateways(m.gateways, [...mp, 'gateways'])
        if (kind !== 'tls') return
        if ((m.sniHosts ?? []).length === 0) c.error(vs, [...mp, 'sniHosts'], 'a tls match needs at least one sniHosts entry')
        ;(m.sniHosts ?? []).forEach((h, k) => {
          const p = hostProblem(h.toLowerCase(), { allowWildcard: true, allowIP: false })
          if (p !== undefined) { c.error(vs, [...mp, 'sniHosts', k], p); return }
          // Istio's validateSniHost: an SNI host lies within one of the VirtualService's hosts.
          const fq = h.toLowerCase()
          if (hosts.length > 0 && !hosts.some(vh => hostMatches(vh, fq) || hostMatches(toFqdn(vh, vs.metadata.namespace), fq))) {
            c.error(vs, [...mp, 'sniHosts', k], `the SNI host "${h}" is not a compatible subset of any of the VirtualService hosts (${hosts.join(', ')})`)
          }
        })
      })
    })
  }
}

/** Istio's weight rules: each >= 0; with several destinations the total must be > 0. */
function validateWeights (c: Collector, vs: VirtualService, route: { route?: Array<{ weight?: number }> }, base: Path): void {
  const ds = route.route ?? []
  let total = 0
  ds.forEach((d, j) => {
    const w = d.weight ?? 0
    if (w < 0) c.error(vs, [...base, 'route', j, 'weight'], `weight ${w} must be >= 0`)
    total += Math.max(0, w)
  })
  if (ds.length > 1 && total === 0) c.error(vs, [...base, 'route'], 'total destination weight = 0: with several destinations, give at least one a positive weight')
}

function reference (c: Collector, vs: VirtualService, path: Path, d: Destination, registered: (h: string) => boolean, subsets: (fqdn: string, subset: string) => boolean): void {
  const p = hostProblem(d.host.toLowerCase(), { allowWildcard: false, allowIP: true })
  if (p !== undefined) { c.error(vs, [...path, 'host'], p); return }
  const fqdn = toFqdn(d.host, vs.metadata.namespace)
  if (!registered(fqdn)) {
    c.at(vs, [...path, 'host'], 'Warning', Codes.ReferencedResourceNotFound, `Referenced host not found: "${d.host}" (no ServiceEntry registers ${fqdn}; requests answer 503 NC)`)
  } else if (d.subset !== undefined && !subsets(fqdn, d.subset)) {
    c.at(vs, [...path, 'subset'], 'Warning', Codes.ReferencedResourceNotFound, `Referenced host+subset in destinationrule not found: "${d.host}+${d.subset}" (requests answer 503 NC)`)
  }
}

function stringMatch (c: Collector, vs: VirtualService, path: Path, m: StringMatch | undefined, presenceOk: boolean): void {
  if (m === undefined) return
  const set = (['exact', 'prefix', 'regex'] as const).filter(k => m[k] !== undefined)
  if (set.length === 0 && !presenceOk) c.error(vs, path, 'a StringMatch needs one of exact, prefix or regex')
  if (set.length > 1) c.error(vs, path, `a StringMatch has exactly one of exact, prefix, regex; found ${set.join(', ')}`)
  if (m.regex !== undefined && m.regex !== '*') regex(c, vs, [...path, 'regex'], m.regex)
}

function regex (c: Collector, r: Resource, path: Path, src: string): void {
  // Istio: "regex string match should not be empty" (an empty RE2 would match only '').
  if (src === '') { c.error(r, path, 'regex must not be empty'); return }
  if (src.length > MAX_REGEX_LENGTH) { c.error(r, path, `regex is ${src.length} characters long; the limit is ${MAX_REGEX_LENGTH}`); return }
  try {
    void new RE2(src)
  } catch (err) {
    c.error(r, path, `regex "${src}" is not valid RE2: ${(err as Error).message}`)
  }
}

function duration (c: Collector, r: Resource, path: Path, v: string): void {
  if (parseDurationMs(v) === undefined) c.error(r, path, `"${v}" is not a duration (e.g. 500ms, 7s, 1.5s, 3m, 1h)`)
}

const DURATION_KEYS = new Set(['interval', 'baseEjectionTime', 'connectTimeout', 'idleTimeout', 'maxConnectionDuration', 'ttl', 'time', 'warmupDurationSecs', 'duration'])

/** Every duration-valued field in a DestinationRule, wherever it nests. */
function durations (c: Collector, r: Resource, path: Path, node: unknown): void {
  if (Array.isArray(node)) { node.forEach((v, i) => durations(c, r, [...path, i], v)); return }
  if (node === null || typeof node !== 'object') return
  for (const [k, v] of Object.entries(node)) {
    if (DURATION_KEYS.has(k) && typeof v === 'string') duration(c, r, [...path, k], v)
    else durations(c, r, [...path, k], v)
  }
}

/**
 * Header names and values meshgate sets: a name is an RFC 9110 token, a value holds no CR, LF,
 * NUL or other control character (one would split a header: the undici CRLF-injection CVEs).
 */
function headerValues (c: Collector, vs: VirtualService, path: Path, h: HTTPRoute['headers']): void {
  for (const dir of ['request', 'response'] as const) {
    for (const op of ['set', 'add'] as const) {
      for (const [k, v] of Object.entries(h?.[dir]?.[op] ?? {})) {
        if (!HEADER_NAME.test(k.toLowerCase()) && !k.startsWith(':')) c.error(vs, [...path, dir, op, k], `"${k}" is not a valid header name`)
        headerValue(c, vs, [...path, dir, op, k], v)
      }
    }
    ;(h?.[dir]?.remove ?? []).forEach((k, i) => {
      if (!HEADER_NAME.test(k.toLowerCase())) c.error(vs, [...path, dir, 'remove', i], `"${k}" is not a valid header name`)
    })
  }
}

function headerValue (c: Collector, r: Resource, path: Path, v: string): void {
  if (/[\r\n\0]/.test(v)) c.error(r, path, 'header value must not contain CR, LF or NUL')
  else if (BAD_HEADER_VALUE.test(v)) c.error(r, path, 'header value must not contain control characters')
}

/** A match that every request satisfies: no match list, or a match entry with no condition. */
function catchAll (route: HTTPRoute): boolean {
  const ms = route.match ?? []
  if (ms.length === 0) return true
  return ms.some(m => Object.entries(m).every(([k, v]) => {
    if (k === 'name' || k === 'ignoreUriCase' || k === 'statPrefix' || v === undefined) return true
    if (k !== 'uri') return false
    const u = v as StringMatch
    return u.prefix === '/' || u.regex === '.*'
  }))
}

const routeLabel = (route: HTTPRoute, i: number): string => `spec.http[${i}]${route.name !== undefined ? ` ("${route.name}")` : ''}`

/** Duplicate route names, and routes an earlier catch-all shadows: warnings naming both routes. */
function routeOrder (c: Collector, vs: VirtualService): void {
  const http = vs.spec.http ?? []
  const names = new Map<string, number>()
  let shadow: number | undefined
  http.forEach((route, i) => {
    if (route.name !== undefined) {
      const first = names.get(route.name)
      if (first !== undefined) c.at(vs, ['spec', 'http', i, 'name'], 'Warning', Codes.Duplicate, `route name "${route.name}" is also used by spec.http[${first}]; metrics and logs cannot tell the two routes apart`)
      else names.set(route.name, i)
    }
    if (shadow !== undefined) {
      c.at(vs, ['spec', 'http', i], 'Warning', Codes.Shadowed, `${routeLabel(route, i)} is never used: ${routeLabel(http[shadow], shadow)} before it matches every request`)
    } else if (catchAll(route)) shadow = i
  })
}
