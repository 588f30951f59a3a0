import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { compile } from '../../src/compile/compile.js'
import { ISTIO_MUTUAL_PLAINTEXT } from '../../src/compile/istio-mutual.js'
import type { CredentialStore } from '../../src/config/credentials.js'

// Compiling tcp and tls routes into snapshot.l4, and ISTIO_MUTUAL, from YAML (pure).

const SE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: db }
spec:
  hosts: [db]
  ports: [{ number: 5432, name: tcp-pg, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, labels: { version: v1 } }, { address: 127.0.0.2, labels: { version: v2 } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: db }
spec:
  host: db
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]
`
const GW = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  servers:
  - port: { number: 31400, name: tcp, protocol: TCP }
    hosts: ["*"]
  - port: { number: 31401, name: tcp2, protocol: TCP }
    hosts: ["*"]
  - port: { number: 443, name: tls, protocol: TLS }
    tls: { mode: PASSTHROUGH }
    hosts: ["*.example.com"]
  - port: { number: 8080, name: http, protocol: HTTP }
    hosts: ["*"]
`

const build = (...docs: string[]): ReturnType<typeof compile> & { loadProblems: ReturnType<typeof loadConfig>['problems'] } => {
  const loaded = loadConfig([{ file: 'c.yaml', text: docs.join('---\n') }])
  t.equal(loaded.ok, true, `loads: ${loaded.problems.filter(p => p.severity === 'Error').map(p => `${p.path ?? ''} ${p.message}`).join('; ')}`)
  return Object.assign(compile(loaded.set), { loadProblems: loaded.problems })
}

t.test('gateway TCP and passthrough ports become TCP listeners, HTTP ports stay HTTP', async t => {
  const { snapshot } = build(SE, GW, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db }
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match: [{ port: 31401 }]
    route:
    - { destination: { host: db, subset: v1 }, weight: 90 }
    - { destination: { host: db, subset: v2 }, weight: 10, fallback: { target: { host: db, subset: v1 } } }
    - { destination: { host: db, subset: v2 }, weight: 0 }
  - route: [{ destination: { host: db } }]
  tls:
  - match: [{ sniHosts: [a.example.com] }]
    route: [{ destination: { host: db, port: { number: 5432 } } }]
`)
  t.same(snapshot.gateways.map(g => g.port), [8080], 'only the HTTP server is an HTTP listener')
  t.same(snapshot.l4?.map(l => [l.name, l.port, l.mode]), [['0.0.0.0_443', 443, 'sni'], ['0.0.0.0_31400', 31400, 'tcp'], ['0.0.0.0_31401', 31401, 'tcp']])
  const p31400 = snapshot.l4!.find(l => l.port === 31400)!
  t.same(p31400.routes.map(r => r.name), ['tcp[1]'], 'the block for port 31401 is dropped on 31400')
  const p31401 = snapshot.l4!.find(l => l.port === 31401)!
  t.same(p31401.routes.map(r => r.name), ['tcp[0]', 'tcp[1]'])
  const weighted = p31401.routes[0]
  t.same(weighted.destinations.map(d => [d.cluster, d.weight, d.fallback?.cluster]), [
    ['outbound|5432|v1|db.default.svc.cluster.local', 90, undefined],
    ['outbound|5432|v2|db.default.svc.cluster.local', 10, 'outbound|5432|v1|db.default.svc.cluster.local']
  ], 'weight 0 dropped; the fallback resolved like an HTTP one')
  t.equal(weighted.totalWeight, 100)
  const tls = snapshot.l4!.find(l => l.port === 443)!
  t.same(tls.serverHosts, ['*.example.com'])
  t.same(tls.routes.map(r => [r.name, r.match[0].sniHosts]), [['tls[0]', ['a.example.com']]])
})

t.test('a TCP port without routes warns; mixing HTTP and TCP on one port is an error', async t => {
  const { problems } = build(SE, GW)
  t.match(problems.filter(p => p.path === 'spec.servers[0].port.protocol'), [{ severity: 'Warning', message: /no tcp route .* port 31400; its connections are closed/ }])
  const mixed = build(SE, `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  servers:
  - port: { number: 9000, name: http, protocol: HTTP }
    hosts: ["*"]
  - port: { number: 9000, name: tcp, protocol: TCP }
    hosts: ["*"]
`)
  t.match(mixed.problems, [{ severity: 'Error', path: 'spec.servers[1].port', message: /port 9000 has both HTTP and TCP servers/ }])
})

t.test('validation: destinations, subnets, SNI hosts within the VirtualService hosts', async t => {
  const loaded = loadConfig([{ file: 'v.yaml', text: [SE, GW, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: bad }
spec:
  hosts: [a.example.com]
  gateways: [gw]
  tcp:
  - match: [{ destinationSubnets: [300.0.0.0/8] }]
    route: [{ destination: { host: nowhere } }]
  - match: [{ port: 31400 }]
  tls:
  - match: [{ sniHosts: [b.example.com] }]
    route: [{ destination: { host: db, subset: v9 }, fallback: { target: { host: db, subset: v8 } } }]
`].join('---\n') }])
  const got = loaded.problems.map(p => `${p.severity} ${p.path ?? ''}`).sort()
  t.same(got, [
    'Error spec.tcp[0].match[0].destinationSubnets[0]',
    'Error spec.tcp[1].route',
    'Error spec.tls[0].match[0].sniHosts[0]',
    'Warning spec.tcp[0].route[0].destination.host',
    'Warning spec.tls[0].route[0].destination.subset',
    'Warning spec.tls[0].route[0].fallback.target.subset'
  ])
  t.match(loaded.problems.find(p => p.path === 'spec.tls[0].match[0].sniHosts[0]'), { file: 'v.yaml', line: 43, message: /not a compatible subset of any of the VirtualService hosts/ })
})

t.test('mesh TCP ports from the annotation: the first mesh VirtualService, then the service', async t => {
  const se = SE.replace('metadata: { name: db }', `metadata:
  name: db
  annotations: { meshgate.io/mesh-tcp-ports: '{"5432": 15432}' }`)
  const { snapshot, problems } = build(se, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db }
spec:
  hosts: [db]
  tcp:
  - match: [{ sourceLabels: { app: reporting } }]
    route: [{ destination: { host: db, subset: v2 } }]
`)
  t.same(problems.filter(p => p.severity === 'Error'), [])
  t.same(snapshot.l4?.map(l => [l.name, l.kind, l.port, l.destinationPort, l.service]), [['mesh_tcp_db.default.svc.cluster.local_5432', 'mesh', 15432, 5432, { host: 'db.default.svc.cluster.local', port: 5432 }]])
  t.same(snapshot.l4![0].routes.map(r => [r.name, r.destinations[0].cluster]), [
    ['tcp[0]', 'outbound|5432|v2|db.default.svc.cluster.local'],
    ['default', 'outbound|5432||db.default.svc.cluster.local']
  ])
})

t.test('ISTIO_MUTUAL: MUTUAL with the istio-mutual credential, else plaintext with the warning', async t => {
  const dr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: db }
spec:
  host: db
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL, sni: db.internal } }
`
  const loaded = loadConfig([{ file: 'm.yaml', text: [SE.split('---\n')[0], dr].join('---\n') }])
  t.same(loaded.problems, [], 'validation leaves the decision to compile')
  const files = new Set(['/creds/istio-mutual/tls.crt', '/creds/istio-mutual/tls.key', '/creds/istio-mutual/ca.crt'])
  const store: CredentialStore = { dir: '/creds', exists: p => files.has(p) }
  const withCert = compile(loaded.set, { credentials: store })
  t.same(withCert.problems, [], 'no warning: the traffic is mTLS')
  t.same(withCert.snapshot.clusters.get('outbound|5432||db.default.svc.cluster.local')?.policy.tls, {
    mode: 'MUTUAL', clientCertificate: '/creds/istio-mutual/tls.crt', privateKey: '/creds/istio-mutual/tls.key', caCertificates: '/creds/istio-mutual/ca.crt', sni: 'db.internal'
  })
  files.delete('/creds/istio-mutual/ca.crt')
  const without = compile(loaded.set, { credentials: store })
  t.match(without.problems, [{ severity: 'Warning', code: 'MG0004', file: 'm.yaml', path: 'spec.trafficPolicy.tls.mode', message: ISTIO_MUTUAL_PLAINTEXT }])
  t.match(ISTIO_MUTUAL_PLAINTEXT, 'plaintext')
  t.equal(without.snapshot.clusters.get('outbound|5432||db.default.svc.cluster.local')?.policy.tls?.mode, 'ISTIO_MUTUAL', 'left as is: the forwarders treat it as plaintext')
})
