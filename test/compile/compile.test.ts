import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { formatProblem } from '../../src/config/problem.js'
import { compile, clusterFor, visibleTo } from '../../src/compile/compile.js'
import { labelsInclude } from '../../src/compile/services.js'
import type { ListenerSpec, Snapshot } from '../../src/compile/snapshot.js'

// Compile: clusters and their endpoints, subsets by labels, WorkloadEntries, short names,
// Gateway server hosts ∩ VirtualService hosts, merging of several VirtualServices, mesh routes.

function build (yaml: string, meshNamespace?: string): { snapshot: Snapshot; problems: string[] } {
  const loaded = loadConfig([{ file: 'c.yaml', text: yaml }])
  const errors = loaded.problems.filter(p => p.severity === 'Error')
  if (errors.length > 0) throw new Error(errors.map(formatProblem).join('\n'))
  const r = compile(loaded.set, { ...(meshNamespace !== undefined ? { meshNamespace } : {}), now: () => 42, generation: 7 })
  return { snapshot: r.snapshot, problems: r.problems.map(formatProblem) }
}

const REVIEWS = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 19082}, labels: {app: reviews, version: v1}}
  - {address: 127.0.0.1, ports: {http: 19083}, labels: {app: reviews, version: v2}}
  - {address: 127.0.0.1, ports: {http: 19084}, labels: {app: reviews, version: v3, zone: b}}
  - {address: 127.0.0.2, labels: {app: reviews, version: v3, zone: a}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
  - {name: v3a, labels: {version: v3, zone: a}}
  - {name: none, labels: {version: v9}}
`

const endpointsOf = (s: Snapshot, name: string): string[] => (s.clusters.get(name)?.endpoints ?? []).map(e => e.key)

/** Route summary of a virtual host: `vs#http.match -> clusters`. */
function routesOf (l: ListenerSpec, host: string): string[] {
  const vh = l.hosts.all.find(v => v.domains.includes(host))
  if (vh === undefined) return []
  return vh.routes.map(r => `${r.virtualService}#${r.httpIndex}.${r.matchIndex} -> ${r.destinations.map(d => `${clusterFor(d, l.port === 0 ? 9080 : l.port)}@${d.weight}`).join(',')}`)
}

t.test('clusters in Istio form; subsets select endpoints whose labels include the subset labels', async t => {
  const { snapshot: s, problems } = build(REVIEWS)
  t.same(problems, [])
  t.same([...s.clusters.keys()], [
    'outbound|9080||reviews.default.svc.cluster.local',
    'outbound|9080|v1|reviews.default.svc.cluster.local',
    'outbound|9080|v2|reviews.default.svc.cluster.local',
    'outbound|9080|v3|reviews.default.svc.cluster.local',
    'outbound|9080|v3a|reviews.default.svc.cluster.local',
    'outbound|9080|none|reviews.default.svc.cluster.local'
  ], 'the whole service, then one cluster per subset in DestinationRule order')
  t.same(endpointsOf(s, 'outbound|9080||reviews.default.svc.cluster.local'), ['127.0.0.1:19082', '127.0.0.1:19083', '127.0.0.1:19084', '127.0.0.2:9080'])
  t.same(endpointsOf(s, 'outbound|9080|v1|reviews.default.svc.cluster.local'), ['127.0.0.1:19082'])
  t.same(endpointsOf(s, 'outbound|9080|v3|reviews.default.svc.cluster.local'), ['127.0.0.1:19084', '127.0.0.2:9080'], 'extra endpoint labels do not matter')
  t.same(endpointsOf(s, 'outbound|9080|v3a|reviews.default.svc.cluster.local'), ['127.0.0.2:9080'], 'every subset label must match')
  t.same(endpointsOf(s, 'outbound|9080|none|reviews.default.svc.cluster.local'), [])
  const v3 = s.clusters.get('outbound|9080|v3|reviews.default.svc.cluster.local')!
  t.match(v3, { host: 'reviews.default.svc.cluster.local', port: 9080, subset: 'v3', resolution: 'STATIC', destinationRule: 'default/reviews' })
  t.equal(s.generation, 7)
  t.equal(s.createdAt, 42)
  t.ok(Object.isFrozen(s), 'the snapshot is frozen')

  t.equal(labelsInclude({ app: 'a', version: 'v1' }, { version: 'v1' }), true)
  t.equal(labelsInclude({ app: 'a' }, { version: 'v1' }), false)
  t.equal(labelsInclude({ version: 'v1' }, {}), true, 'an empty selector selects everything')
})

t.test('WorkloadEntries are selected by workloadSelector in the ServiceEntry namespace', async t => {
  const { snapshot: s } = build(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: http, protocol: HTTP, targetPort: 8080}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm1}
spec: {address: 10.0.0.1, labels: {app: ratings, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm2}
spec: {address: 10.0.0.2, ports: {http: 9999}, labels: {app: ratings, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-app}
spec: {address: 10.0.0.3, labels: {app: details}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-ns, namespace: shop}
spec: {address: 10.0.0.4, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings.default.svc.cluster.local
  subsets: [{name: v2, labels: {version: v2}}]
`)
  t.same(endpointsOf(s, 'outbound|9080||ratings.default.svc.cluster.local'), ['10.0.0.1:8080', '10.0.0.2:9999'], 'targetPort, overridden by the workload port name')
  t.same(endpointsOf(s, 'outbound|9080|v2|ratings.default.svc.cluster.local'), ['10.0.0.2:9999'])
  t.same(s.clusters.get('outbound|9080|v2|ratings.default.svc.cluster.local')?.endpoints[0].labels, { app: 'ratings', version: 'v2' })
})

t.test('a wildcard DestinationRule applies to the services it covers; the most specific rule wins (regression)', async t => {
  const { snapshot: s } = build(`${REVIEWS}---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.3, labels: {version: v1}}, {address: 127.0.0.4, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: everything}
spec:
  host: "*"
  subsets: [{name: all-v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cluster-local}
spec:
  host: "*.svc.cluster.local"
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets: [{name: v1, labels: {version: v1}}]
`)
  t.same([...s.clusters.keys()].filter(k => k.endsWith('|ratings.default.svc.cluster.local')), [
    'outbound|9080||ratings.default.svc.cluster.local',
    'outbound|9080|v1|ratings.default.svc.cluster.local'
  ], '*.svc.cluster.local is more specific than *')
  t.same(endpointsOf(s, 'outbound|9080|v1|ratings.default.svc.cluster.local'), ['127.0.0.3:9080'])
  t.match(s.clusters.get('outbound|9080||ratings.default.svc.cluster.local'), { destinationRule: 'default/cluster-local', policy: { loadBalancer: { simple: 'ROUND_ROBIN' } } })
  t.equal(s.clusters.get('outbound|9080||reviews.default.svc.cluster.local')?.destinationRule, 'default/reviews', 'an exact host rule wins over wildcards')
  t.equal(s.clusters.has('outbound|9080|all-v2|reviews.default.svc.cluster.local'), false)
})

t.test('DNS services without endpoints are reached at their own name', async t => {
  const { snapshot: s } = build(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: https, protocol: HTTPS}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`)
  t.same(endpointsOf(s, 'outbound|443||api.example.com'), ['api.example.com:443'])
  t.same(endpointsOf(s, 'outbound|80||api.example.com'), ['api.example.com:80'])
})

const GW = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*.example.com", "bookinfo.local"]
---
`

t.test('Gateway server hosts are intersected with VirtualService hosts', async t => {
  const { snapshot: s } = build(`${GW}${REVIEWS}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front}
spec:
  hosts: [a.example.com, b.other.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: any}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: reviews, subset: v2}}]
`)
  t.equal(s.gateways.length, 1)
  const l = s.gateways[0]
  t.match(l, { name: '0.0.0.0_8080', kind: 'gateway', port: 8080, protocol: 'HTTP', gatewayNames: ['default/gw'] })
  t.same(l.hosts.all.map(v => v.name).sort(), ['*.example.com:8080', 'a.example.com:8080', 'bookinfo.local:8080'],
    'a.example.com (inside *.example.com), and "*" narrowed to each server host; b.other.com dropped')
  t.same(routesOf(l, 'a.example.com'), ['default/front#0.0 -> outbound|9080|v1|reviews.default.svc.cluster.local@1'])
  t.same(routesOf(l, 'bookinfo.local'), ['default/any#0.0 -> outbound|9080|v2|reviews.default.svc.cluster.local@1'])
  t.same(routesOf(l, '*.example.com'), ['default/any#0.0 -> outbound|9080|v2|reviews.default.svc.cluster.local@1'])
  t.equal(l.hosts.any, undefined, 'no "*" virtual host: the server does not accept every host')
  // The gateway rule is not a mesh rule: the mesh keeps the default route for reviews.
  t.same(routesOf(s.mesh, 'reviews'), ['-#0.0 -> outbound|9080||reviews.default.svc.cluster.local@1'])
})

t.test('server hosts with a namespace part only take VirtualServices from that namespace', async t => {
  const { snapshot: s } = build(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["shop/*", "./infra.example.com"]
---
${['shop', 'blog', 'infra'].map(ns => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front, namespace: ${ns}}
spec:
  hosts: [${ns}.example.com]
  gateways: [infra/gw]
  http:
  - route: [{destination: {host: ${ns}.example.com}}]
`).join('---\n')}`)
  t.same(s.gateways[0].hosts.all.map(v => v.name).sort(), ['infra.example.com:8080', 'shop.example.com:8080'])
})

t.test('short names expand against the VirtualService namespace', async t => {
  const { snapshot: s } = build(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
`, 'shop')
  t.ok(s.clusters.has('outbound|9080|v1|reviews.shop.svc.cluster.local'))
  const vh = s.mesh.hosts.all.find(v => v.name === 'reviews.shop.svc.cluster.local')!
  t.same(vh.domains, ['reviews.shop.svc.cluster.local', 'reviews.shop.svc', 'reviews.shop', 'reviews'])
  t.same(routesOf(s.mesh, 'reviews'), ['shop/reviews#0.0 -> outbound|9080|v1|reviews.shop.svc.cluster.local@1'])
  // From the default namespace the bare name is not an alias.
  const other = build(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`).snapshot
  t.same(other.mesh.hosts.all.map(v => [...v.domains]), [['reviews.shop.svc.cluster.local', 'reviews.shop.svc', 'reviews.shop']])
})

t.test('several VirtualServices for one gateway host: concatenated in order, catch-alls last', async t => {
  const vs = (name: string, http: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}}
spec:
  hosts: [bookinfo.local]
  gateways: [gw]
  http:
${http}---
`
  const { snapshot: s } = build(`${GW}${REVIEWS}---
${vs('a', `  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /never}}]
    route: [{destination: {host: reviews, subset: v3}}]
`)}${vs('b', `  - match: [{uri: {prefix: /}}]
    route: [{destination: {host: reviews, subset: v3}}]
`)}${vs('c', `  - match: [{uri: {exact: /c}}, {headers: {x-c: {exact: "1"}}}]
    route: [{destination: {host: reviews, subset: v3a}}]
  - match: [{uri: {regex: '.*'}}]
    route: [{destination: {host: reviews}}]
`)}`)
  t.same(routesOf(s.gateways[0], 'bookinfo.local'), [
    'default/a#0.0 -> outbound|9080|v1|reviews.default.svc.cluster.local@1',
    'default/c#0.0 -> outbound|9080|v3a|reviews.default.svc.cluster.local@1',
    'default/c#0.1 -> outbound|9080|v3a|reviews.default.svc.cluster.local@1',
    'default/a#1.0 -> outbound|9080|v2|reviews.default.svc.cluster.local@1',
    'default/b#0.0 -> outbound|9080|v3|reviews.default.svc.cluster.local@1',
    'default/c#1.0 -> outbound|9080||reviews.default.svc.cluster.local@1'
  ], 'each match block is its own route; routes after a catch-all in one VirtualService are dropped')
  const catchAll = s.gateways[0].hosts.all.find(v => v.name === 'bookinfo.local:8080')!.routes.map(r => r.match.catchAll)
  t.same(catchAll, [false, false, false, true, true, true])
})

t.test('gateways: none means mesh only; per-match gateways override the VirtualService list', async t => {
  const { snapshot: s } = build(`${GW}${REVIEWS}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews, bookinfo.local]
  gateways: [gw, mesh]
  http:
  - match:
    - {uri: {prefix: /mesh-only}, gateways: [mesh]}
    - {uri: {prefix: /gw-only}, gateways: [default/gw]}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: meshy}
spec:
  hosts: [meshy.example.com]
  http:
  - route: [{destination: {host: reviews, subset: v3}}]
`)
  t.same(routesOf(s.mesh, 'reviews'), [
    'default/reviews#0.0 -> outbound|9080|v1|reviews.default.svc.cluster.local@1',
    'default/reviews#1.0 -> outbound|9080|v2|reviews.default.svc.cluster.local@1'
  ])
  t.same(routesOf(s.gateways[0], 'bookinfo.local'), [
    'default/reviews#0.1 -> outbound|9080|v1|reviews.default.svc.cluster.local@1',
    'default/reviews#1.0 -> outbound|9080|v2|reviews.default.svc.cluster.local@1'
  ])
  t.same(routesOf(s.mesh, 'meshy.example.com'), ['default/meshy#0.0 -> outbound|9080|v3|reviews.default.svc.cluster.local@1'], 'no gateways: mesh')
  t.equal(s.gateways[0].hosts.all.some(v => v.domains.includes('meshy.example.com')), false, 'and not the gateway')
})

t.test('weights: 0 drops a destination, a single destination takes all, totals are relative', async t => {
  const { snapshot: s } = build(`${REVIEWS}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /a}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 550}
    - {destination: {host: reviews, subset: v2}, weight: 500}
    - {destination: {host: reviews, subset: v3}, weight: 0}
  - match: [{uri: {prefix: /b}}]
    route:
    - {destination: {host: reviews, subset: v3}, weight: 0}
  - route:
    - {destination: {host: reviews, subset: v1}}
    - {destination: {host: reviews, subset: v3}, weight: 10}
`)
  const routes = s.mesh.hosts.all.find(v => v.name === 'reviews.default.svc.cluster.local')!.routes
  t.same(routesOf(s.mesh, 'reviews'), [
    'default/reviews#0.0 -> outbound|9080|v1|reviews.default.svc.cluster.local@550,outbound|9080|v2|reviews.default.svc.cluster.local@500',
    'default/reviews#1.0 -> outbound|9080|v3|reviews.default.svc.cluster.local@1',
    'default/reviews#2.0 -> outbound|9080|v3|reviews.default.svc.cluster.local@10'
  ])
  t.same(routes.map(r => r.totalWeight), [1050, 1, 10])
})

t.test('mesh listener: a default route per service; only the first VirtualService for a host applies', async t => {
  const { snapshot: s, problems } = build(`${REVIEWS}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: first}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: second}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
`)
  t.same(routesOf(s.mesh, 'reviews'), ['default/first#0.0 -> outbound|9080|v1|reviews.default.svc.cluster.local@1'])
  t.same(problems, ['Warning [MG0005] (VirtualService default/second c.yaml:37:3) spec.hosts: host "reviews.default.svc.cluster.local" is already routed for the mesh by VirtualService default/first; as in Istio sidecars, only the first VirtualService for a host applies'])
  t.same(s.mesh.hosts.all.find(v => v.name === 'reviews.default.svc.cluster.local')!.domains,
    ['reviews.default.svc.cluster.local', 'reviews.default.svc', 'reviews.default', 'reviews'])
})

t.test('a destination port picks the cluster; a multi-port service picks by the addressed port', async t => {
  const { snapshot: s } = build(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: multi}
spec:
  hosts: [multi]
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: admin, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: multi}
spec:
  hosts: [multi]
  http:
  - match: [{uri: {prefix: /fixed}}]
    route: [{destination: {host: multi, port: {number: 9090}}}]
  - route: [{destination: {host: multi}}]
`)
  const [fixed, any] = s.mesh.hosts.all.find(v => v.name === 'multi.default.svc.cluster.local')!.routes
  t.equal(clusterFor(fixed.destinations[0], 9080), 'outbound|9090||multi.default.svc.cluster.local')
  t.equal(clusterFor(any.destinations[0], 9080), 'outbound|9080||multi.default.svc.cluster.local')
  t.equal(clusterFor(any.destinations[0], 9090), 'outbound|9090||multi.default.svc.cluster.local')
  t.equal(clusterFor(any.destinations[0], 1234), 'outbound|9080||multi.default.svc.cluster.local', 'an unknown port takes the first service port')
})

t.test('a route to an unregistered host has no endpoints (503 NC at run time), not a compile failure', async t => {
  const { snapshot: s } = build(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ghost}
spec:
  hosts: [ghost]
  http: [{route: [{destination: {host: ghost, subset: v1}}]}]
`)
  const d = s.mesh.hosts.all.find(v => v.name === 'ghost.default.svc.cluster.local')!.routes[0].destinations[0]
  t.same({ host: d.host, subset: d.subset, cluster: d.cluster }, { host: 'ghost.default.svc.cluster.local', subset: 'v1', cluster: undefined })
  t.equal(clusterFor(d, 9080), 'outbound|9080|v1|ghost.default.svc.cluster.local')
  t.equal(s.clusters.size, 0)
})

t.test('exportTo visibility', async t => {
  t.equal(visibleTo(undefined, 'a', 'b'), true)
  t.equal(visibleTo(['*'], 'a', 'b'), true)
  t.equal(visibleTo(['.'], 'a', 'a'), true)
  t.equal(visibleTo(['.'], 'a', 'b'), false)
  t.equal(visibleTo(['b'], 'a', 'b'), true)
  t.equal(visibleTo(['~'], 'a', 'a'), false)
})
