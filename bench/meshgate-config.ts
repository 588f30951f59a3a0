// The Bookinfo-like configuration meshgate runs in the bench: the full feature path
// (ingress VirtualService with several match blocks, weighted split, DestinationRule with
// outlier detection and connection pool, breakers on, a mesh VirtualService with a header match
// and a weighted two-way split), every service on the one loopback upstream.

/** The request path every scenario is measured with (the ingress route's 4th match block). */
export const BENCH_PATH = '/api/v1/products/0'

/** YAML for meshgate with all Bookinfo services at 127.0.0.1:`upstreamPort`. */
export function benchConfigYaml (upstreamPort: number): string {
  const se = (name: string): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}]
  location: MESH_INTERNAL
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints:
  - { address: 127.0.0.1, ports: { http: ${upstreamPort} }, labels: { app: ${name}, version: v1 } }`
  return [
    `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: bookinfo-gateway, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: 8080, name: http, protocol: HTTP }
    hosts: ['*']`,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: bookinfo, namespace: default }
spec:
  hosts: ['*']
  gateways: [bookinfo-gateway]
  http:
  - name: productpage
    match:
    - uri: { exact: /productpage }
    - uri: { prefix: /static }
    - uri: { exact: /login }
    - uri: { exact: /logout }
    - uri: { prefix: /api/v1/products }
    route:
    - destination: { host: productpage, port: { number: 9080 }, subset: v1 }
      weight: 90
    - destination: { host: productpage, port: { number: 9080 }, subset: v2 }
      weight: 10
    timeout: 10s
    retries: { attempts: 2, perTryTimeout: 5s, retryOn: "connect-failure,refused-stream,503" }
  - name: details
    match:
    - uri: { prefix: /details }
      headers: { x-canary: { exact: "1" } }
    route:
    - destination: { host: details, port: { number: 9080 } }`,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - match:
    - headers: { end-user: { exact: jason } }
    route:
    - destination: { host: reviews, subset: v2 }
  - route:
    - destination: { host: reviews, subset: v1 }
      weight: 50
    - destination: { host: reviews, subset: v3 }
      weight: 50`,
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: productpage, namespace: default }
spec:
  host: productpage
  trafficPolicy:
    connectionPool:
      tcp: { maxConnections: 1000 }
      http: { http1MaxPendingRequests: 1000, maxRequestsPerConnection: 0 }
    outlierDetection: { consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50 }
  subsets:
  - { name: v1, labels: { app: productpage } }
  - { name: v2, labels: { app: productpage } }`,
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: { consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s }
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v1 } }
  - { name: v3, labels: { version: v1 } }`,
    se('productpage'), se('reviews'), se('ratings'), se('details')
  ].join('\n---\n') + '\n'
}

/**
 * Ten AuthorizationPolicy rules on the ingress gateway, for the `meshgate-authz` scenario: one
 * ALLOW policy whose last rule is the one the bench request matches, so every request walks all
 * ten (methods, path wildcards, a header condition, hosts and ports along the way).
 */
export function benchAuthzYaml (): string {
  const miss = [
    '- to: [{ operation: { methods: [POST], paths: ["/admin/*"] } }]',
    '- to: [{ operation: { methods: [DELETE] } }]',
    '- to: [{ operation: { paths: ["/internal/*", "*/debug"] } }]',
    '- to: [{ operation: { hosts: ["admin.example.com"] } }]',
    '- to: [{ operation: { ports: ["9443"] } }]',
    '- from: [{ source: { remoteIpBlocks: ["10.0.0.0/8"] } }]',
    '- when: [{ key: "request.headers[x-canary]", values: ["1"] }]',
    '- to: [{ operation: { methods: [PUT], paths: ["/api/v1/products/*"] } }]',
    '- to: [{ operation: { notMethods: [GET, HEAD], paths: ["/api/*"] } }]'
  ]
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: bench-allow, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  action: ALLOW
  rules:
${[...miss, '- to: [{ operation: { methods: [GET], paths: ["/api/v1/products/*"] } }]'].map(r => '  ' + r).join('\n')}
`
}
