import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { formatProblem } from '../../src/config/problem.js'
import { compile } from '../../src/compile/compile.js'
import { portProtocol, upstreamProtocol } from '../../src/compile/upstream-protocol.js'

// The upstream protocol of a cluster: HTTP/2 for HTTP2/GRPC ports (declared or by name prefix)
// and for h2UpgradePolicy UPGRADE; TLS origination makes it h2 (ALPN), else h2c.

function clusters (yaml: string): Map<string, string> {
  const loaded = loadConfig([{ file: 'c.yaml', text: yaml }])
  const errors = loaded.problems.filter(p => p.severity === 'Error')
  if (errors.length > 0) throw new Error(errors.map(formatProblem).join('\n'))
  const { snapshot } = compile(loaded.set, { now: () => 1, generation: 1 })
  return new Map([...snapshot.clusters].map(([name, c]) => [name, c.upstreamProtocol ?? 'http1']))
}

const SE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc}
spec:
  hosts: [svc]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 81, name: web, protocol: HTTP2}
  - {number: 82, name: api, protocol: GRPC}
  - {number: 83, name: grpc-api}
  - {number: 84, name: http2-x}
  - {number: 85, name: plain}
  - {number: 86, name: grpc-web}
  - {number: 87, name: grpcish}
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, labels: {version: v1}}
`

t.test('port protocols and name prefixes', async t => {
  const c = clusters(SE)
  t.equal(c.get('outbound|80||svc.default.svc.cluster.local'), 'http1')
  t.equal(c.get('outbound|81||svc.default.svc.cluster.local'), 'h2c', 'HTTP2')
  t.equal(c.get('outbound|82||svc.default.svc.cluster.local'), 'h2c', 'GRPC')
  t.equal(c.get('outbound|83||svc.default.svc.cluster.local'), 'h2c', 'grpc- prefix')
  t.equal(c.get('outbound|84||svc.default.svc.cluster.local'), 'h2c', 'http2- prefix')
  t.equal(c.get('outbound|85||svc.default.svc.cluster.local'), 'http1', 'no protocol, unknown name')
  t.equal(c.get('outbound|86||svc.default.svc.cluster.local'), 'h2c', 'grpc-web')
  t.equal(c.get('outbound|87||svc.default.svc.cluster.local'), 'http1', 'a prefix needs the dash')
})

t.test('h2UpgradePolicy per DestinationRule, subset and port; TLS makes it h2', async t => {
  const c = clusters(`${SE}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc}
spec:
  host: svc
  trafficPolicy:
    connectionPool: {http: {h2UpgradePolicy: UPGRADE}}
    portLevelSettings:
    - port: {number: 82}
      tls: {mode: SIMPLE}
    - port: {number: 81}
      connectionPool: {http: {h2UpgradePolicy: DO_NOT_UPGRADE}}
  subsets:
  - name: old
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {http: {h2UpgradePolicy: DO_NOT_UPGRADE}}
  - name: tls
    labels: {version: v1}
    trafficPolicy:
      tls: {mode: SIMPLE}
`)
  t.equal(c.get('outbound|80||svc.default.svc.cluster.local'), 'h2c', 'HTTP port upgraded')
  t.equal(c.get('outbound|85||svc.default.svc.cluster.local'), 'h2c', 'unknown-protocol port upgraded')
  t.equal(c.get('outbound|80|old|svc.default.svc.cluster.local'), 'http1', 'subset DO_NOT_UPGRADE')
  t.equal(c.get('outbound|80|tls|svc.default.svc.cluster.local'), 'h2', 'UPGRADE inherited, TLS from the subset')
  t.equal(c.get('outbound|82||svc.default.svc.cluster.local'), 'h2', 'GRPC with TLS origination')
  t.equal(c.get('outbound|81||svc.default.svc.cluster.local'), 'h2c', 'DO_NOT_UPGRADE does not downgrade an HTTP2 port')
})

t.test('the decision alone', async t => {
  t.equal(portProtocol({ name: 'http', protocol: 'grpc' }), 'GRPC', 'declared wins, any case')
  t.equal(portProtocol({ name: 'grpc-web-x' }), 'GRPC-WEB')
  t.equal(portProtocol({ name: 'Grpc' }), 'GRPC')
  t.equal(portProtocol({ name: 'x' }), undefined)
  t.equal(upstreamProtocol({ name: 'tcp-db' }, { connectionPool: { http: { h2UpgradePolicy: 'UPGRADE' } } }), 'http1', 'TCP ports are never upgraded')
  t.equal(upstreamProtocol({ name: 'a', protocol: 'HTTPS' }, { connectionPool: { http: { h2UpgradePolicy: 'UPGRADE' } } }), 'http1', 'only HTTP ports are upgraded')
  t.equal(upstreamProtocol({ name: 'a', protocol: 'GRPC' }, { tls: { mode: 'MUTUAL' } }), 'h2')
  t.equal(upstreamProtocol({ name: 'a', protocol: 'GRPC' }, { tls: { mode: 'DISABLE' } }), 'h2c')
})
