// YAML builders for inline test configurations: the Istio resources most tests need, written
// once. Each returns one document; join documents with `---` lines.

const list = (items: string[]): string => `[${items.map(i => JSON.stringify(i)).join(', ')}]`

/**
 * A Gateway (`gw` unless named, in the default namespace unless given, with an optional
 * workload `selector`) with one server: HTTP on 8080 for every host by default, HTTPS
 * on 8443 with a SIMPLE TLS certificate when `tls` is given, or another `protocol` (`GRPC`,
 * `HTTP2`) on 8080; the port is named after its protocol.
 */
export function gateway (opts: {
  name?: string; namespace?: string; selector?: Record<string, string>; port?: number; hosts?: string[]; tls?: { cert: string; key: string }; protocol?: string
} = {}): string {
  const port = opts.port ?? (opts.tls !== undefined ? 8443 : 8080)
  const protocol = opts.protocol ?? (opts.tls !== undefined ? 'HTTPS' : 'HTTP')
  const tls = opts.tls !== undefined ? `    tls: { mode: SIMPLE, serverCertificate: ${opts.tls.cert}, privateKey: ${opts.tls.key} }\n` : ''
  const namespace = opts.namespace !== undefined ? `, namespace: ${opts.namespace}` : ''
  const selector = opts.selector !== undefined ? `  selector: { ${Object.entries(opts.selector).map(([k, v]) => `${k}: ${v}`).join(', ')} }\n` : ''
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: ${opts.name ?? 'gw'}${namespace} }
spec:
${selector}  servers:
  - port: { number: ${port}, name: ${protocol.toLowerCase()}, protocol: ${protocol} }
    hosts: ${list(opts.hosts ?? ['*'])}
${tls}`
}

/** A Gateway `gw` serving every host on port 8080 (Istio's Bookinfo gateway shape). */
export const GATEWAY = gateway()

/**
 * The ingress gateway as Istio installs it for security tests: `istio-system/gw`, selecting the
 * `istio: ingressgateway` workload (which AuthorizationPolicy and RequestAuthentication select
 * too), and a VirtualService sending every host to `app` with `extra` route fields (indented).
 */
export function ingressToApp (extra = ''): string {
  return `${gateway({ namespace: 'istio-system', selector: { istio: 'ingressgateway' } })}---
${virtualService(`  - route:\n    - destination: { host: app }\n${extra}`, { name: 'app', hosts: ['*'], gateways: ['istio-system/gw'] })}`
}

/**
 * A VirtualService (named after its first host unless named) with the given `http:` list
 * (indented YAML). Without `gateways` it applies to the mesh only, as in Istio.
 */
export function virtualService (http: string, opts: { name?: string; hosts?: string[]; gateways?: string[] } = {}): string {
  const hosts = opts.hosts ?? ['app']
  const gateways = opts.gateways !== undefined ? `  gateways: ${list(opts.gateways)}\n` : ''
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${opts.name ?? hosts[0]} }
spec:
  hosts: ${list(hosts)}
${gateways}  http:
${http}`
}

/**
 * The usual ingress set-up as one text: `GATEWAY`, `gatewayVs(http)`, the `more` documents when
 * given (a DestinationRule, another ServiceEntry; joined with `---`), and `serviceEntry('app',
 * endpoints)`.
 */
export function gatewayApp (http: string, endpoints: Record<string, number>, more = ''): string {
  const extra = more !== '' ? `${more.trimEnd()}\n---\n` : ''
  return `${GATEWAY}---\n${gatewayVs(http).trimEnd()}\n---\n${extra}${serviceEntry('app', endpoints)}`
}

/** A gateway-bound VirtualService for `*` with the given `http:` list (indented YAML). */
export function gatewayVs (http: string, name = 'app'): string {
  return virtualService(http, { name, hosts: ['*'], gateways: ['gw'] })
}

/** An `http:` list (indented, for `virtualService`) of one route sending everything to `host` (or to one subset). */
export function routeTo (host = 'app', subset?: string): string {
  const dest = subset !== undefined ? `{ host: ${host}, subset: ${subset} }` : `{ host: ${host} }`
  return `  - route:\n    - destination: ${dest}\n`
}

/** A VirtualService for the mesh that sends every request for `host` to it (or to one subset). */
export function meshRoute (host = 'app', subset?: string): string {
  return virtualService(routeTo(host, subset), { hosts: [host] })
}

/**
 * A DestinationRule for `host`; `spec` is the YAML under `spec:` after `host:` (trafficPolicy,
 * subsets), indented. `annotations` go under `metadata` (each value written as a quoted string).
 */
export function destinationRule (host: string, spec: string, name = host, annotations?: Record<string, string>): string {
  const notes = annotations !== undefined ? `, annotations: { ${Object.entries(annotations).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ')} }` : ''
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${name}${notes} }
spec:
  host: ${host}
${spec}`
}

/**
 * A DestinationRule for `host` with one subset per name in `versions`, each selecting the
 * endpoints whose `version` label is that name (as `serviceEntry` labels them).
 * `trafficPolicy`, when given, is the YAML under `trafficPolicy:`, indented.
 */
export function versionSubsets (host: string, versions: string[], trafficPolicy?: string, annotations?: Record<string, string>): string {
  const policy = trafficPolicy !== undefined ? `  trafficPolicy:\n${trafficPolicy}` : ''
  return destinationRule(host, `${policy}  subsets:\n${versions.map(v => `  - { name: ${v}, labels: { version: ${v} } }\n`).join('')}`, host, annotations)
}

/** Subsets v1, v2, v3 of `app` by the `version` label. */
export const APP_SUBSETS = versionSubsets('app', ['v1', 'v2', 'v3'])

/**
 * A host with a subset per endpoint: `versionSubsets` for the versions of `endpoints`, then
 * `serviceEntry(host, endpoints)`, as two documents.
 */
export function subsetService (host: string, endpoints: Record<string, number>, opts: { servicePort?: number; namespace?: string } = {}): string {
  return `${versionSubsets(host, Object.keys(endpoints))}---\n${serviceEntry(host, endpoints, opts)}`
}

/**
 * One entry of an `http:` list (indented, for `virtualService`) that routes to `host`'s `subset`
 * and sets the response header `header: value`, so a test sees which route set answered.
 */
export function stampedRoute (header: string, value: string, subset: string, host = 'app'): string {
  return `  - headers:
      response:
        set: { ${header}: ${value} }
    route:
    - destination: { host: ${host}, subset: ${subset} }
`
}

/** A ServiceEntry registering endpoints (`{ version: port }`) for a host on loopback. */
export function serviceEntry (host: string, endpoints: Record<string, number>, opts: { servicePort?: number; namespace?: string } = {}): string {
  const eps = Object.entries(endpoints).map(([version, port]) => `
  - address: 127.0.0.1
    ports:
      http: ${port}
    labels:
      app: ${host}
      version: ${version}`).join('')
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${host}
${opts.namespace !== undefined ? `  namespace: ${opts.namespace}\n` : ''}spec:
  hosts:
  - ${host}
  location: MESH_INTERNAL
  ports:
  - number: ${opts.servicePort ?? 9080}
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:${eps.length > 0 ? eps : ' []'}
`
}

/** The port `serviceEntry` declares: 9080, named `http`, protocol HTTP. */
export const HTTP_9080 = { number: 9080, name: 'http', protocol: 'HTTP' }

/**
 * A ServiceEntry for `host` (MESH_INTERNAL) with one `port` (without `protocol`, Istio takes it
 * from the port's name) and endpoints on it at `address` (127.0.0.1 unless given): a list of
 * ports (no labels), of `[version, port]` pairs (several endpoints may share a version), or
 * `{ version: port }`. An endpoint with a version is labelled `version: <version>`. The
 * resolution is STATIC unless given (DNS, for an `address` that is a name); `annotations`
 * (such as `meshgate.io/probe`) go on its metadata.
 */
export function portService (
  host: string,
  port: { number: number; name: string; protocol?: string },
  endpoints: Array<number | [string, number]> | Record<string, number>,
  opts: { address?: string; resolution?: string; annotations?: Record<string, string> } = {}
): string {
  const list = Array.isArray(endpoints) ? endpoints : Object.entries(endpoints)
  const eps = list.map(e => {
    const [version, p] = typeof e === 'number' ? [undefined, e] : e
    return `\n  - { address: ${opts.address ?? '127.0.0.1'}, ports: { ${port.name}: ${p} }${version !== undefined ? `, labels: { version: ${version} }` : ''} }`
  }).join('')
  const protocol = port.protocol !== undefined ? `, protocol: ${port.protocol}` : ''
  const notes = opts.annotations !== undefined ? `, annotations: { ${Object.entries(opts.annotations).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ')} }` : ''
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${host}${notes} }
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  ports:
  - { number: ${port.number}, name: ${port.name}${protocol} }
  resolution: ${opts.resolution ?? 'STATIC'}
  endpoints:${eps.length > 0 ? eps : ' []'}
`
}

/**
 * A compact ServiceEntry for tests that only load and compile: `host` with STATIC resolution,
 * HTTP `ports` by name (`{ http: 9080 }` unless given) and one endpoint at `address`
 * (127.0.0.1 unless given) with `labels`. No `location` (Istio's default applies).
 */
export function staticService (host: string, opts: { name?: string; namespace?: string; ports?: Record<string, number>; address?: string; labels?: Record<string, string> } = {}): string {
  const namespace = opts.namespace !== undefined ? `, namespace: ${opts.namespace}` : ''
  const ports = Object.entries(opts.ports ?? { http: 9080 }).map(([name, number]) => `{ number: ${number}, name: ${name}, protocol: HTTP }`).join(', ')
  const labels = opts.labels !== undefined ? `, labels: { ${Object.entries(opts.labels).map(([k, v]) => `${k}: ${v}`).join(', ')} }` : ''
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${opts.name ?? host}${namespace} }
spec:
  hosts: [${host}]
  ports: [${ports}]
  resolution: STATIC
  endpoints: [{ address: ${opts.address ?? '127.0.0.1'}${labels} }]
`
}

/**
 * An AuthorizationPolicy `name` in `namespace` (istio-system, the ingress gateway's, unless
 * given). `spec` is the YAML under `spec:`, written from column 0; it is indented here. An empty
 * `spec` is `spec: {}` (allow nothing).
 */
export function authorizationPolicy (name: string, spec: string, namespace = 'istio-system'): string {
  const body = spec.trim() === '' ? ' {}' : `\n${spec.trimEnd().split('\n').map(l => `  ${l}`).join('\n')}`
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${namespace} }
spec:${body}
`
}

/**
 * The set-up of the health-probe tests: `GATEWAY`, every request to `app`, `app` with one
 * `port` and one endpoint on `endpointPort` probed per `probe` (the `meshgate.io/probe` JSON),
 * and, when `tls` is given (a YAML value), a DestinationRule originating that TLS.
 */
export function probedApp (port: { number: number; name: string; protocol?: string }, endpointPort: number, probe: string, tls?: string): string {
  const docs = [GATEWAY, gatewayVs(routeTo()), portService('app', port, [endpointPort], { annotations: { 'meshgate.io/probe': probe } })]
  if (tls !== undefined) docs.push(destinationRule('app', `  trafficPolicy:\n    tls: ${tls}\n`))
  return docs.join('---\n')
}
