import t, { type Test } from 'tap'
import { Counter, Registry } from 'prom-client'
import { ConnectionMetrics } from '../../../plugins/istio-metrics.js'
import { rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { connect as tlsConnect, createServer as createTls } from 'node:tls'
import { startAdmin } from '../../../routes/admin.js'
import { makePki } from '../../helpers/certs.js'
import { type InlineGateway, type Teardown, gatewayFor } from '../../helpers/gateway.js'
import { rawRequest } from '../../helpers/raw-http.js'
import { closedPort } from '../../helpers/upstream.js'
import { until, waitForLogs } from '../../helpers/wait.js'
import { type Series, parseExposition } from '../grafana-promql.js'
import { echoServer, exchange, openConnection, subsets, tcpGateway, tcpServiceEntry } from './helpers.js'

// Istio's TCP metrics (istio_tcp_connections_opened_total, _closed_total, istio_tcp_sent_bytes_total,
// istio_tcp_received_bytes_total) read from the admin API's /stats/prometheus after real
// connections through Gateway TCP, TLS-passthrough and mesh TCP listeners to loopback echo
// servers: labels from both reporters, exact byte counts, bytes of an open connection at each
// scrape, and the UF and UH flags of connections that never reached an upstream.

const TCP = ['istio_tcp_connections_opened_total', 'istio_tcp_connections_closed_total', 'istio_tcp_sent_bytes_total', 'istio_tcp_received_bytes_total']

const listenerPort = (gw: InlineGateway, p: number, kind = 'gateway'): number =>
  gw.listeners.find(l => l.kind === kind && l.configPort === p && l.url.startsWith('tcp:'))!.port

/** The admin API on port 0; `scrape()` reads /stats/prometheus. */
async function adminFor (t: Teardown, gw: InlineGateway): Promise<() => Promise<Series[]>> {
  const admin = await startAdmin({ gateway: gw, port: 0, token: 'tok' })
  t.teardown(() => admin.close())
  return async () => {
    const r = await rawRequest(admin.url, '/stats/prometheus', { headers: { authorization: 'Bearer tok' } })
    if (r.status !== 200) throw new Error(`scrape answered ${r.status}`)
    return parseExposition(r.body)
  }
}

/** The TCP series whose labels include `labels`, by metric name. */
function tcpSeries (series: Series[], labels: Record<string, string>): Record<string, Series[]> {
  const out: Record<string, Series[]> = {}
  for (const name of TCP) out[name] = series.filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  return out
}

/** The four values for one label set, requiring exactly one series of each metric. */
function values (t: Test, series: Series[], labels: Record<string, string>): { opened: number; closed: number; sent: number; received: number } {
  const s = tcpSeries(series, labels)
  for (const name of TCP) t.equal(s[name].length, 1, `one ${name} series for ${JSON.stringify(labels)}`)
  const v = (name: string): number => s[name][0]?.value ?? NaN
  return { opened: v(TCP[0]), closed: v(TCP[1]), sent: v(TCP[2]), received: v(TCP[3]) }
}

const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: echo }
spec:
  hosts: ["*"]
  gateways: [tcp-gw]
  tcp:
  - match: [{ port: 31400 }]
    route: [{ destination: { host: echo, subset: a } }]
  - match: [{ port: 31401 }]
    route: [{ destination: { host: echo, subset: dead } }]
`

t.test('a Gateway TCP listener: the four series from both reporters, with the bytes each way', async t => {
  const a = await echoServer(t, 'a')
  const gw = await gatewayFor(t, [tcpGateway([31400]), tcpServiceEntry('echo', { a: a.port }), subsets('echo', ['a']), VS.replace(/ {2}- match: \[\{ port: 31401[^]*$/, '')].join('---\n'), { gatewayPorts: [31400] })
  const scrape = await adminFor(t, gw)
  const payloads = ['ping', 'x'.repeat(100_000), '']
  for (const p of payloads) t.equal((await exchange(listenerPort(gw, 31400), p)).data, `a:${p}`)
  await waitForLogs(gw.logs, payloads.length)
  const received = payloads.reduce((n, p) => n + p.length, 0)
  const sent = received + 2 * payloads.length // each connection also gets the greeting `a:`
  const series = await scrape()
  const common = {
    source_workload: 'istio-ingressgateway', source_workload_namespace: 'istio-system', source_app: 'istio-ingressgateway',
    source_principal: 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account',
    destination_workload: 'echo-a', destination_app: 'echo', destination_version: 'a', destination_workload_namespace: 'default',
    destination_service: 'echo.default.svc.cluster.local', destination_service_name: 'echo', destination_service_namespace: 'default',
    destination_canonical_service: 'echo', destination_canonical_revision: 'a', request_protocol: 'tcp', response_flags: '-'
  }
  t.same(values(t, series, { ...common, reporter: 'source', connection_security_policy: 'unknown' }), { opened: 3, closed: 3, sent, received })
  t.same(values(t, series, { ...common, reporter: 'destination', connection_security_policy: 'none' }), { opened: 3, closed: 3, sent, received })
  const all = series.filter(s => s.name.startsWith('istio_tcp_'))
  t.equal(all.length, 8, 'two label sets, four metrics each')
  t.ok(all.every(s => !('response_code' in s.labels) && !('grpc_response_status' in s.labels)), 'TCP series carry no response_code or grpc_response_status, as in Istio')
  t.equal(series.filter(s => s.name === 'istio_requests_total').length, 0, 'and no request series')
})

t.test('a long connection: opened at the upstream connect, its bytes at each scrape, closed at close', async t => {
  const a = await echoServer(t, 'a')
  const gw = await gatewayFor(t, [tcpGateway([31400]), tcpServiceEntry('echo', { a: a.port }), subsets('echo', ['a']), VS.replace(/ {2}- match: \[\{ port: 31401[^]*$/, '')].join('---\n'), { gatewayPorts: [31400] })
  const scrape = await adminFor(t, gw)
  const src = { reporter: 'source', destination_workload: 'echo-a', response_flags: '-' }
  const c = await openConnection(listenerPort(gw, 31400))
  t.same(values(t, await scrape(), src), { opened: 1, closed: 0, sent: 2, received: 0 }, 'opened once connected; the greeting already counted')
  c.sock.write('x'.repeat(5000))
  await until('the echo came back', () => c.received().length === 5002, 5000, 10)
  t.same(values(t, await scrape(), src), { opened: 1, closed: 0, sent: 5002, received: 5000 }, 'bytes counted while the connection is open')
  c.sock.write('yz')
  await until('the echo came back', () => c.received().length === 5004, 5000, 10)
  t.same(values(t, await scrape(), src), { opened: 1, closed: 0, sent: 5004, received: 5002 }, 'only what moved since the last scrape is added')
  c.sock.end()
  await c.closed
  await waitForLogs(gw.logs, 1)
  t.same(values(t, await scrape(), src), { opened: 1, closed: 1, sent: 5004, received: 5002 }, 'closed; the total unchanged')
  t.same(values(t, await scrape(), { ...src, reporter: 'destination' }), { opened: 1, closed: 1, sent: 5004, received: 5002 })
  t.match(gw.logs[0], { bytes_sent: '5004', bytes_received: '5002' }, 'the same counts as the access log')
})

t.test('UF and UH: counted as opened and closed with the flag, from the source only', async t => {
  const a = await echoServer(t, 'a')
  const dead = await closedPort()
  const gw = await gatewayFor(t, [tcpGateway([31400, 31401]), tcpServiceEntry('echo', { a: a.port, dead }), subsets('echo', ['a', 'dead']), VS].join('---\n'),
    { gatewayPorts: [31400, 31401] })
  const scrape = await adminFor(t, gw)
  t.equal((await exchange(listenerPort(gw, 31401))).refused, true, 'the connect fails: UF')
  t.equal((await exchange(listenerPort(gw, 31401))).refused, true, 'the host is down: UH')
  await waitForLogs(gw.logs, 2)
  t.same(gw.logs.map(l => l.response_flags), ['UF', 'UH'])
  const series = await scrape()
  t.same(values(t, series, { reporter: 'source', response_flags: 'UF', destination_workload: 'echo-dead', destination_service: 'echo.default.svc.cluster.local' }),
    { opened: 1, closed: 1, sent: 0, received: 0 }, 'UF names the endpoint it tried')
  t.same(values(t, series, { reporter: 'source', response_flags: 'UH', destination_workload: 'unknown', destination_service: 'echo.default.svc.cluster.local' }),
    { opened: 1, closed: 1, sent: 0, received: 0 }, 'UH reached no endpoint')
  t.equal(series.filter(s => s.name.startsWith('istio_tcp_') && s.labels.reporter === 'destination').length, 0, 'no destination sidecar saw them')
  t.same(Object.values(tcpSeries(series, { request_protocol: 'tcp' })).map(s => s.length), [2, 2, 2, 2], 'only these two label sets')
})

t.test('a mesh TCP port: the caller identified by its address; a TLS-passthrough port counted too', async t => {
  const a = await echoServer(t, 'a')
  const sleep = `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: sleep, namespace: default }
spec:
  address: 127.0.0.7
  labels: { app: sleep, version: v1 }
  serviceAccount: sleep
`
  // A TLS upstream that echoes, behind a passthrough port routed by SNI.
  const pki = makePki(['echo.example.com'])
  t.teardown(() => rmSync(pki.dir, { recursive: true, force: true }))
  const tls = createTls({ cert: pki.read(pki.server('echo.example.com').cert), key: pki.read(pki.server('echo.example.com').key) }, s => {
    s.on('error', () => s.destroy())
    s.on('data', c => s.write(c))
    s.on('end', () => s.end())
  })
  await new Promise<void>(resolve => tls.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => tls.close(() => resolve())))
  const tlsPort = (tls.address() as AddressInfo).port
  const passthrough = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: tls-gw }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: 443, name: tls, protocol: TLS }
    tls: { mode: PASSTHROUGH }
    hosts: [echo.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: secure-echo }
spec:
  hosts: [echo.example.com]
  gateways: [tls-gw]
  tls:
  - match: [{ port: 443, sniHosts: [echo.example.com] }]
    route: [{ destination: { host: secure-echo } }]
`
  const gw = await gatewayFor(t, [
    tcpServiceEntry('echo', { a: a.port }, { annotations: { 'meshgate.io/mesh-tcp-ports': '{"9000": 19000}' } }),
    tcpServiceEntry('secure-echo', { v1: tlsPort }, { servicePort: 443 }),
    sleep, passthrough
  ].join('---\n'), { gatewayPorts: [19000, 443] })
  const scrape = await adminFor(t, gw)
  t.equal((await exchange(listenerPort(gw, 19000, 'mesh'), 'hello', { localAddress: '127.0.0.7' })).data, 'a:hello', 'from the sleep workload')
  t.equal((await exchange(listenerPort(gw, 19000, 'mesh'), 'hi', { localAddress: '127.0.0.8' })).data, 'a:hi', 'from an unregistered address')

  const echoed = await new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: listenerPort(gw, 443), servername: 'echo.example.com', ca: pki.read(pki.ca) }, () => s.end('secret'))
    let got = ''
    s.on('data', c => { got += c.toString() })
    s.on('error', reject)
    s.on('close', () => resolve(got))
  })
  t.equal(echoed, 'secret', 'TLS passed through to the upstream and back')
  await waitForLogs(gw.logs, 3)

  const series = await scrape()
  const mesh = { destination_workload: 'echo-a', destination_service: 'echo.default.svc.cluster.local', request_protocol: 'tcp', response_flags: '-' }
  for (const reporter of ['source', 'destination']) {
    t.same(values(t, series, { ...mesh, reporter, source_workload: 'sleep-v1', source_app: 'sleep', source_version: 'v1', source_workload_namespace: 'default',
      source_principal: 'spiffe://cluster.local/ns/default/sa/sleep', source_canonical_service: 'sleep', source_canonical_revision: 'v1' }),
    { opened: 1, closed: 1, sent: 2 + 5, received: 5 }, `${reporter}: sleep-v1 → echo through the mesh port`)
    t.same(values(t, series, { ...mesh, reporter, source_workload: 'unknown', source_workload_namespace: 'unknown', source_principal: 'unknown' }),
      { opened: 1, closed: 1, sent: 2 + 2, received: 2 }, `${reporter}: an unknown caller`)
  }
  const pass = values(t, series, { reporter: 'source', source_workload: 'istio-ingressgateway', destination_workload: 'secure-echo-v1',
    destination_service: 'secure-echo.default.svc.cluster.local', response_flags: '-' })
  t.equal(pass.opened, 1)
  t.equal(pass.closed, 1)
  t.ok(pass.received > 6, `the passthrough connection's TLS bytes from the client (${pass.received})`)
  t.ok(pass.sent > 6, `and to it (${pass.sent})`)
  t.match(gw.logs.find(l => l.upstream_cluster.includes('secure-echo')), { bytes_received: String(pass.received), bytes_sent: String(pass.sent) }, 'the access log counts the same bytes')
})

// The aggregated TCP counters must render what prom-client's own Counters render for the same
// values, and bring open connections' bytes up to date before every read.
t.test('ConnectionMetrics: the same exposition text as prom-client Counters; bytes brought up to date before each read', async t => {
  const names = {
    opened: { name: 'x_opened_total', help: 'Opened.' },
    closed: { name: 'x_closed_total', help: 'Closed.' },
    sent: { name: 'x_sent_total', help: 'Sent.' },
    received: { name: 'x_received_total', help: 'Received.' }
  }
  const ours = new Registry()
  let reads = 0
  let pending = 0
  const m = new ConnectionMetrics(ours, names, () => { reads++; a.sent += pending; pending = 0 })
  const a = m.seriesFor('a', () => ({ reporter: 'source', response_flags: '-' }))
  const uf = m.seriesFor('uf', () => ({ reporter: 'source', response_flags: 'UF' }))
  t.equal(m.seriesFor('a', () => ({ reporter: 'other' })), a, 'one series per key')
  a.opened = 3; a.closed = 2; a.received = 120; uf.opened = 1; uf.closed = 1
  pending = 80
  const ref = new Registry()
  const labelNames = ['reporter', 'response_flags']
  // Registered in the order ConnectionMetrics registers them (the registry renders in that order).
  const counters = Object.fromEntries((['sent', 'received', 'opened', 'closed'] as const).map(k => [k, new Counter({ ...names[k], labelNames, registers: [ref] })]))
  const l = { reporter: 'source', response_flags: '-' }
  counters.opened.inc(l, 3); counters.closed.inc(l, 2); counters.received.inc(l, 120); counters.sent.inc(l, 80)
  const f = { reporter: 'source', response_flags: 'UF' }
  counters.opened.inc(f, 1); counters.closed.inc(f, 1); counters.received.inc(f, 0); counters.sent.inc(f, 0)
  t.equal(await ours.metrics(), await ref.metrics())
  t.equal(reads, 4, 'each of the four counters brought the bytes up to date before it was read')
  t.equal(a.sent, 80)
  ours.resetMetrics()
  t.equal(await ours.metrics(), (await ref.metrics()).replace(/^x_.*\n/gm, ''), 'a registry reset clears the series')
})
