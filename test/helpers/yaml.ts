// YAML builders for inline test configurations: the Istio resources most tests need, written
// once. Each returns one document; join documents with `---` lines.

const list = (items: string[]): string => `[${items.map(i => JSON.stringify(i)).join(', ')}]`

/**
 * A Gateway (`gw` unless named, in the default namespace unless given, with an optional
 * workload `selector`) with one server: HTTP on 8080 for every host by default, HTTPS
 * on 8443 with a SIMPLE TLS certificate when `tls` is given.
 */
export function gateway (opts: { name?: string; namespace?: string; selector?: Record<string, string>; port?: number; hosts?: string[]; tls?: { cert: string; key: string } } = {}): string {
  const port = opts.port ?? (opts.tls !== undefined ? 8443 : 8080)
  const protocol = opts.tls !== undefined ? 'HTTPS' : 'HTTP'
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

/** A gateway-bound VirtualService for `*` with the given `http:` list (indented YAML). */
export function gatewayVs (http: string, name = 'app'): string {
  return virtualService(http, { name, hosts: ['*'], gateways: ['gw'] })
}

/** A VirtualService for the mesh that sends every request for `host` to it (or to one subset). */
export function meshRoute (host = 'app', subset?: string): string {
  const dest = subset !== undefined ? `{ host: ${host}, subset: ${subset} }` : `{ host: ${host} }`
  return virtualService(`  - route:\n    - destination: ${dest}\n`, { hosts: [host] })
}

/** A DestinationRule for `host`; `spec` is the YAML under `spec:` after `host:` (trafficPolicy, subsets), indented. */
export function destinationRule (host: string, spec: string, name = host): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${name} }
spec:
  host: ${host}
${spec}`
}

/** Subsets v1, v2, v3 of `app` by the `version` label. */
export const APP_SUBSETS = destinationRule('app', `  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 } }
  - { name: v3, labels: { version: v3 } }
`)

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
