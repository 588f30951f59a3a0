import { readFileSync } from 'node:fs'
import { type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http'
import { type AddressInfo, type Socket, connect, createServer as createTcpServer } from 'node:net'
import t from 'tap'
import { startAdmin } from '../../routes/admin.js'
import { type Teardown, gatewayFor } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { waitForLogs } from '../helpers/wait.js'
import { GATEWAY, gatewayVs, virtualService } from '../helpers/yaml.js'
import { type Selector, dashboardQueries, parseExposition, select, selectorsOf, substitute } from './grafana-promql.js'
import { exchange, tcpGateway } from './tcp/helpers.js'

// Istio's published Service and Workload dashboards (unmodified, test/fixtures/grafana) read
// against a gateway that carried real traffic: ingress → productpage → reviews → ratings, each
// hop but the first through the mesh listener, and the same chain over TCP (a Gateway TCP port,
// then the services' mesh TCP ports) for the istio_tcp_* panels. Each workload listens on its own
// loopback address and calls out from it, so the mesh listeners identify the caller by address
// from its ServiceEntry endpoint, as they would a VM's WorkloadEntry.

const fixture = (name: string): unknown => JSON.parse(readFileSync(new URL(`../fixtures/grafana/${name}`, import.meta.url), 'utf8'))

/** A Bookinfo-like workload on `address`: answers after calling `next` through the mesh listener, from its own address. */
async function workload (t: Teardown, address: string, name: string, next?: { host: string; mesh: () => URL }): Promise<number> {
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    if (next === undefined) { res.end(`${name} ok`); return }
    const m = next.mesh()
    const out = request({ host: m.hostname, port: m.port, path: '/', localAddress: address, headers: { host: `${next.host}:9080` } }, r => {
      let body = ''
      r.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => { res.statusCode = r.statusCode ?? 502; res.end(`${name} <- ${body}`) })
    })
    out.on('error', () => { res.statusCode = 502; res.end() })
    out.end()
  })
  await new Promise<void>(resolve => server.listen(0, address, resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  return (server.address() as AddressInfo).port
}

/**
 * The TCP side of a workload on `address`: relays each connection to `next` (a mesh TCP port)
 * from its own address, or, at the end of the chain, answers `NAME:` and echoes.
 */
async function tcpWorkload (t: Teardown, address: string, name: string, next?: () => number): Promise<number> {
  const open = new Set<Socket>()
  const server = createTcpServer({ allowHalfOpen: true }, sock => {
    open.add(sock)
    sock.once('close', () => open.delete(sock))
    sock.on('error', () => sock.destroy())
    if (next === undefined) {
      sock.write(`${name}:`)
      sock.on('data', c => sock.write(c))
      sock.on('end', () => sock.end())
      return
    }
    const out = connect({ host: '127.0.0.1', port: next(), localAddress: address, allowHalfOpen: true })
    out.on('error', () => sock.destroy())
    sock.pipe(out)
    out.pipe(sock)
  })
  await new Promise<void>(resolve => server.listen(0, address, resolve))
  t.teardown(() => new Promise(resolve => { for (const s of open) s.destroy(); server.close(resolve) }))
  return (server.address() as AddressInfo).port
}

/**
 * A Bookinfo service with an HTTP port and a TCP port; `meshTcp` maps the TCP port to a mesh TCP
 * port. Probes are off: a probe's connection to a relaying TCP workload would be relayed too.
 */
function entry (host: string, address: string, ports: { http: number; tcp: number }, sa: string, meshTcp?: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${host}
  annotations:
    meshgate.io/probe: 'off'
${meshTcp !== undefined ? `    meshgate.io/mesh-tcp-ports: '{"9090": ${meshTcp}}'
` : ''}spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  ports: [{ number: 9080, name: http, protocol: HTTP }, { number: 9090, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints:
  - address: ${address}
    ports: { http: ${ports.http}, tcp: ${ports.tcp} }
    labels: { app: ${host}, version: v1 }
    serviceAccount: ${sa}
`
}

/** Selectors meshgate leaves empty on purpose, and why (docs/metrics.md#istios-dashboards). */
function expectedEmpty (s: Selector): string | undefined {
  if (s.name.startsWith('istio_request_duration_seconds')) return 'the legacy seconds histogram, the right side of an `or`'
  if (s.matchers.some(m => m.label === 'connection_security_policy' && m.op === '=' && m.value === 'mutual_tls')) return 'the mTLS twin of a panel: meshgate talks plaintext to workloads'
  if (s.matchers.some(m => m.label === 'destination_principal' && m.op === '=~')) return 'the mTLS twin of a panel: no destination principal without mTLS'
  return undefined
}

t.test("Istio's Service and Workload dashboards select non-empty series after ingress and mesh traffic, HTTP and TCP", async t => {
  const holder: { mesh?: URL } = {}
  const mesh = (): URL => holder.mesh!
  const ratings = await workload(t, '127.0.0.4', 'ratings')
  const reviews = await workload(t, '127.0.0.3', 'reviews', { host: 'ratings', mesh })
  const productpage = await workload(t, '127.0.0.2', 'productpage', { host: 'reviews', mesh })
  const meshTcp = (p: number) => (): number => gw.listeners.find(l => l.kind === 'mesh' && l.configPort === p && l.url.startsWith('tcp:'))!.port
  const ratingsTcp = await tcpWorkload(t, '127.0.0.4', 'ratings')
  const reviewsTcp = await tcpWorkload(t, '127.0.0.3', 'reviews', meshTcp(19092))
  const productpageTcp = await tcpWorkload(t, '127.0.0.2', 'productpage', meshTcp(19091))
  const yaml = [
    GATEWAY,
    gatewayVs('  - route:\n    - destination: { host: productpage, port: { number: 9080 } }\n', 'bookinfo'),
    virtualService('  - route:\n    - destination: { host: reviews }\n', { hosts: ['reviews'] }),
    tcpGateway([31400]),
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: productpage-tcp }
spec:
  hosts: ["*"]
  gateways: [tcp-gw]
  tcp:
  - route: [{ destination: { host: productpage, port: { number: 9090 } } }]
`,
    entry('productpage', '127.0.0.2', { http: productpage, tcp: productpageTcp }, 'bookinfo-productpage'),
    entry('reviews', '127.0.0.3', { http: reviews, tcp: reviewsTcp }, 'bookinfo-reviews', 19091),
    entry('ratings', '127.0.0.4', { http: ratings, tcp: ratingsTcp }, 'bookinfo-ratings', 19092)
  ].join('---\n')
  // Not a test of the overload guard: a busy CI machine must not turn these requests into 503 OM.
  const gw = await gatewayFor(t, yaml, { overload: false, gatewayPorts: [8080, 31400, 19091, 19092] })
  holder.mesh = new URL(gw.mesh)
  const ingressTcp = gw.listeners.find(l => l.kind === 'gateway' && l.configPort === 31400)!.port
  const admin = await startAdmin({ gateway: gw, port: 0, token: 'tok' })
  t.teardown(() => admin.close())

  const N = 5
  for (let i = 0; i < N; i++) {
    const r = await rawRequest(gw.ingress, '/productpage')
    t.equal(r.body, 'productpage <- reviews <- ratings ok', `request ${i} went ingress → productpage → reviews → ratings (${r.status})`)
  }
  const M = 3
  for (let i = 0; i < M; i++) {
    t.equal((await exchange(ingressTcp, `tcp ${i}`)).data, `ratings:tcp ${i}`, `connection ${i} went ingress → productpage → reviews → ratings over TCP`)
  }
  await waitForLogs(gw.logs, 3 * N + 3 * M)
  const text = (await rawRequest(admin.url, '/stats/prometheus', { headers: { authorization: 'Bearer tok' } })).body
  const series = parseExposition(text)
  const requests = (labels: Record<string, string>): number => series.filter(s => s.name === 'istio_requests_total' &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0)

  // Who called whom, from both reporters.
  for (const reporter of ['source', 'destination']) {
    t.equal(requests({ reporter, source_workload: 'istio-ingressgateway', source_workload_namespace: 'istio-system', source_app: 'istio-ingressgateway',
      destination_workload: 'productpage-v1', destination_service: 'productpage.default.svc.cluster.local' }), N, `${reporter}: ingress gateway → productpage`)
    t.equal(requests({ reporter, source_workload: 'productpage-v1', source_version: 'v1', source_app: 'productpage', source_workload_namespace: 'default',
      source_principal: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage', destination_workload: 'reviews-v1' }), N, `${reporter}: productpage → reviews`)
    t.equal(requests({ reporter, source_workload: 'reviews-v1', source_canonical_service: 'reviews', source_canonical_revision: 'v1', destination_workload: 'ratings-v1' }), N,
      `${reporter}: reviews → ratings`)
  }
  t.equal(requests({ source_workload: 'unknown' }), 0, 'every caller identified')
  const opened = (labels: Record<string, string>): number => series.filter(s => s.name === 'istio_tcp_connections_opened_total' &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0)
  for (const reporter of ['source', 'destination']) {
    t.equal(opened({ reporter, source_workload: 'istio-ingressgateway', destination_workload: 'productpage-v1' }), M, `${reporter}: TCP ingress gateway → productpage`)
    t.equal(opened({ reporter, source_workload: 'productpage-v1', destination_workload: 'reviews-v1', destination_service: 'reviews.default.svc.cluster.local' }), M,
      `${reporter}: TCP productpage → reviews`)
    t.equal(opened({ reporter, source_workload: 'reviews-v1', destination_workload: 'ratings-v1' }), M, `${reporter}: TCP reviews → ratings`)
  }
  t.equal(opened({ source_workload: 'unknown' }), 0, 'every TCP caller identified')
  t.equal(requests({ reporter: 'source', source_principal: 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account' }), N,
    "the gateway's principal from its service account")

  // The dashboards' variables set as a user would pick them for the demo's workloads; `$qrep` both ways.
  const cases: Array<{ file: string; vars: Record<string, string> }> = []
  for (const qrep of ['source', 'destination']) {
    cases.push(
      { file: 'istio-service-dashboard.json', vars: { qrep, service: 'productpage.default.svc.cluster.local', srcns: 'istio-system', srcwl: 'istio-ingressgateway', srccluster: '.*', dstns: 'default', dstwl: 'productpage-v1', dstcluster: '.*' } },
      { file: 'istio-service-dashboard.json', vars: { qrep, service: 'reviews.default.svc.cluster.local', srcns: 'default', srcwl: 'productpage-v1', srccluster: '.*', dstns: 'default', dstwl: 'reviews-v1', dstcluster: '.*' } },
      { file: 'istio-workload-dashboard.json', vars: { qrep, namespace: 'default', workload: 'productpage-v1', srcns: 'istio-system', srcwl: 'istio-ingressgateway', dstsvc: 'reviews.default.svc.cluster.local' } },
      { file: 'istio-workload-dashboard.json', vars: { qrep, namespace: 'default', workload: 'reviews-v1', srcns: 'default', srcwl: 'productpage-v1', dstsvc: 'ratings.default.svc.cluster.local' } }
    )
  }
  let checked = 0
  let checkedTcp = 0
  const emptyOnPurpose = new Set<string>()
  for (const c of cases) {
    const queries = dashboardQueries(fixture(c.file))
    t.ok(queries.length > 20, `${c.file} has its queries`)
    for (const q of queries) {
      const expr = substitute(q.expr, { ...c.vars, __rate_interval: '1m' })
      t.notMatch(expr, /\$/, `${c.file} ${q.where}: every variable substituted`)
      for (const s of selectorsOf(expr)) {
        const found = select(series, s)
        const why = expectedEmpty(s)
        const name = `${c.file} ${JSON.stringify(c.vars)} ${q.where}: ${s.text}`
        if (why !== undefined) {
          emptyOnPurpose.add(why)
          t.equal(found.length, 0, `${name} is empty: ${why}`)
        } else {
          checked++
          if (s.name.startsWith('istio_tcp_')) checkedTcp++
          t.ok(found.some(x => x.value > 0), `${name} selects non-empty series`)
        }
      }
    }
  }
  t.ok(checked > 150, `${checked} selectors checked non-empty`)
  t.ok(checkedTcp > 40, `${checkedTcp} of them istio_tcp_* selectors`)
  t.equal(emptyOnPurpose.size, 3, 'and only the documented kinds are empty')
})
