// YAML builders for inline test configurations: the Istio resources most tests need, written
// once. Each returns one document (no leading or trailing `---`); join them with `docs()`.

/** Join YAML documents with `---` separators. */
export function docs (...parts: string[]): string {
  return parts.map(p => p.trim()).join('\n---\n') + '\n'
}

/** A Gateway `gw` serving every host on port 8080 (Istio's Bookinfo gateway shape). */
export const GATEWAY = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  servers:
  - port: { number: 8080, name: http, protocol: HTTP }
    hosts: ["*"]
`

/** Subsets v1, v2, v3 of `app` by the `version` label. */
export const APP_SUBSETS = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: app }
spec:
  host: app
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 } }
  - { name: v3, labels: { version: v3 } }
`

/** A gateway-bound VirtualService for `*` with the given `http:` list (indented YAML). */
export function gatewayVs (http: string, name = 'app'): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name} }
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
${http}`
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
