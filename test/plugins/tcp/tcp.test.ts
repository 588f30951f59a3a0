import t from 'tap'
import { type AddressInfo, type Socket, createServer } from 'node:net'
import { gatewayFor } from '../../helpers/gateway.js'
import { closedPort } from '../../helpers/upstream.js'
import { until, waitForLogs } from '../../helpers/wait.js'
import { echoServer, exchange, openConnection, subsets, tcpGateway, tcpServiceEntry } from './helpers.js'

// Gateway TCP listeners against real echo servers on loopback: bytes both ways, weights per
// connection, matches, the connection pool's limits, health, fallback and reloads.

const port = (gw: { listeners: Array<{ configPort: number; port: number; url: string }> }, p: number): number =>
  gw.listeners.find(l => l.configPort === p && l.url.startsWith('tcp:'))!.port

function tcpVs (routes: string, name = 'echo', gateways = '[tcp-gw]'): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name} }
spec:
  hosts: ["*"]
  gateways: ${gateways}
  tcp:
${routes}`
}

t.test('bytes pass both ways; one access-log line per connection with Envoy TCP fields', async t => {
  const a = await echoServer(t, 'a')
  const gw = await gatewayFor(t, [tcpGateway([31400]), tcpServiceEntry('echo', { a: a.port }), tcpVs(`  - route: [{ destination: { host: echo } }]
`)].join('---\n'), { gatewayPorts: [31400] })
  const big = 'x'.repeat(200_000)
  const r = await exchange(port(gw, 31400), big)
  t.equal(r.data, `a:${big}`, 'the greeting and every byte echoed back')
  await waitForLogs(gw.logs, 1)
  const line = gw.logs[0]
  t.match(line, {
    bytes_received: String(big.length),
    bytes_sent: String(big.length + 2),
    response_code: '0',
    response_flags: '-',
    method: '-',
    upstream_cluster: 'outbound|9000||echo.default.svc.cluster.local',
    upstream_host: `127.0.0.1:${a.port}`,
    route_name: 'tcp[0]'
  })
  t.ok(Number(line.duration) >= 0)
})

t.test('weighted routes pick a destination per connection', async t => {
  const a = await echoServer(t, 'a')
  const b = await echoServer(t, 'b')
  const gw = await gatewayFor(t, [tcpGateway([31400]), tcpServiceEntry('echo', { a: a.port, b: b.port }), subsets('echo', ['a', 'b']), tcpVs(`  - match: [{ port: 31400 }]
    route:
    - { destination: { host: echo, subset: a }, weight: 80 }
    - { destination: { host: echo, subset: b }, weight: 20 }
`)].join('---\n'), { gatewayPorts: [31400] })
  const seen = { a: 0, b: 0 }
  for (let i = 0; i < 200; i++) {
    const r = await exchange(port(gw, 31400), 'x')
    seen[r.data.slice(0, 1) as 'a' | 'b']++
  }
  t.equal(seen.a + seen.b, 200)
  t.ok(seen.a > 130 && seen.a < 190, `about 80 % to a (${seen.a}/200)`)
  t.equal(a.accepted + b.accepted, 200, 'one upstream connection per downstream connection')
})

t.test('match by port, destination subnet and source labels', async t => {
  const a = await echoServer(t, 'a')
  const b = await echoServer(t, 'b')
  const c = await echoServer(t, 'c')
  const sleep = `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: sleep }
spec:
  address: 127.0.0.7
  labels: { app: sleep }
`
  const gw = await gatewayFor(t, [tcpGateway([31400, 31401]), tcpServiceEntry('echo', { a: a.port, b: b.port, c: c.port }), subsets('echo', ['a', 'b', 'c']), sleep, tcpVs(`  - match: [{ sourceLabels: { app: sleep } }]
    route: [{ destination: { host: echo, subset: c } }]
  - match: [{ port: 31401 }]
    route: [{ destination: { host: echo, subset: b } }]
  - match: [{ destinationSubnets: [10.0.0.0/8] }]
    route: [{ destination: { host: echo, subset: b } }]
  - match: [{ destinationSubnets: [127.0.0.0/8] }]
    route: [{ destination: { host: echo, subset: a } }]
`)].join('---\n'), { gatewayPorts: [31400, 31401] })
  t.match((await exchange(port(gw, 31400))).data, /^a:/, 'port 31400, connected to 127.0.0.1: the 127.0.0.0/8 route')
  t.match((await exchange(port(gw, 31401))).data, /^b:/, 'port 31401: the port route')
  t.match((await exchange(port(gw, 31400), 'ping', { localAddress: '127.0.0.7' })).data, /^c:/, 'from the sleep workload\'s address: its labels match')
  t.match((await exchange(port(gw, 31400), 'ping', { localAddress: '127.0.0.8' })).data, /^a:/, 'an unregistered address has no labels')
})

t.test('UF marks the host down; then UH; a destination with fallback falls back', async t => {
  const dead = await closedPort()
  const fb = await echoServer(t, 'fb')
  const gw = await gatewayFor(t, [tcpGateway([31400, 31401]), tcpServiceEntry('echo', { dead: dead, fb: fb.port }), subsets('echo', ['dead', 'fb']), tcpVs(`  - match: [{ port: 31400 }]
    route: [{ destination: { host: echo, subset: dead } }]
  - match: [{ port: 31401 }]
    route:
    - destination: { host: echo, subset: dead }
      fallback: { target: { host: echo, subset: fb } }
`)].join('---\n'), { gatewayPorts: [31400, 31401] })
  const cluster = 'outbound|9000|dead|echo.default.svc.cluster.local'
  t.ok(gw.runtime.cluster(cluster)!.hasHealthy(), 'healthy until a connection fails')
  const first = await exchange(port(gw, 31400))
  t.equal(first.refused, true, 'the connection is closed')
  await waitForLogs(gw.logs, 1)
  t.match(gw.logs[0], { response_flags: 'UF', upstream_host: `127.0.0.1:${dead}`, upstream_transport_failure_reason: 'ECONNREFUSED' })
  t.notOk(gw.runtime.cluster(cluster)!.hasHealthy(), 'a failed connect marks the host down at once')
  t.equal((await exchange(port(gw, 31400))).refused, true)
  await waitForLogs(gw.logs, 2)
  t.match(gw.logs[1], { response_flags: 'UH', upstream_cluster: cluster, upstream_host: '-' })
  const r = await exchange(port(gw, 31401))
  t.match(r.data, /^fb:ping$/, 'the fallback serves')
  await waitForLogs(gw.logs, 3)
  t.match(gw.logs[2], {
    response_flags: '-',
    upstream_cluster: 'outbound|9000|fb|echo.default.svc.cluster.local',
    fallback_path: `${cluster}:outbound|9000|fb|echo.default.svc.cluster.local`,
    fallback_result: 'fallback cluster is healthy'
  })
})

t.test('connectionPool.tcp: maxConnections overflows with UO; idleTimeout closes quiet connections', async t => {
  const a = await echoServer(t, 'a')
  const gw = await gatewayFor(t, [tcpGateway([31400]), tcpServiceEntry('echo', { a: a.port }),
    subsets('echo', ['a'], `  trafficPolicy:
    connectionPool: { tcp: { maxConnections: 1, idleTimeout: 400ms, connectTimeout: 1s } }
`), tcpVs(`  - route: [{ destination: { host: echo } }]
`)].join('---\n'), { gatewayPorts: [31400] })
  const held = await openConnection(port(gw, 31400))
  const second = await exchange(port(gw, 31400))
  t.equal(second.refused, true, 'the second connection is refused')
  await waitForLogs(gw.logs, 1)
  t.match(gw.logs[0], { response_flags: 'UO', upstream_cluster: 'outbound|9000||echo.default.svc.cluster.local' })
  const started = Date.now()
  await held.closed
  const idle = Date.now() - started
  t.ok(idle >= 300 && idle < 3000, `the quiet connection closed after the idle timeout (${idle} ms)`)
  await until('the upstream side closed too', () => a.open.size === 0)
  t.match((await exchange(port(gw, 31400))).data, /^a:ping$/, 'the slot is free again')
})

t.test('connectTimeout covers the upstream TLS handshake: a silent upstream is UF after it', async t => {
  // The upstream accepts TCP but never answers the ClientHello meshgate sends (DestinationRule SIMPLE).
  const silent = createServer(sock => { sock.on('error', () => {}) })
  await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => { silent.close(resolve); for (const s of held) s.destroy() }))
  const held: Socket[] = []
  silent.on('connection', s => held.push(s))
  const gw = await gatewayFor(t, [tcpGateway([31400]), tcpServiceEntry('echo', { a: (silent.address() as AddressInfo).port }),
    subsets('echo', ['a'], `  trafficPolicy:
    connectionPool: { tcp: { connectTimeout: 300ms } }
    tls: { mode: SIMPLE, insecureSkipVerify: true }
`), tcpVs(`  - route: [{ destination: { host: echo } }]
`)].join('---\n'), { gatewayPorts: [31400] })
  const started = Date.now()
  const r = await exchange(port(gw, 31400))
  const took = Date.now() - started
  t.equal(r.refused, true)
  await waitForLogs(gw.logs, 1)
  t.match(gw.logs[0], { response_flags: 'UF', upstream_transport_failure_reason: 'ETIMEDOUT' })
  t.ok(took >= 250 && took < 2000, `closed after the 300 ms connect timeout, not the default 10 s (${took} ms)`)
})

t.test('a reload keeps established connections and routes new ones by the new snapshot; ports are fixed', async t => {
  const a = await echoServer(t, 'a')
  const b = await echoServer(t, 'b')
  const base = [tcpGateway([31400]), tcpServiceEntry('echo', { a: a.port, b: b.port }), subsets('echo', ['a', 'b'])]
  const to = (subset: string): string => tcpVs(`  - route: [{ destination: { host: echo, subset: ${subset} } }]
`)
  const gw = await gatewayFor(t, [...base, to('a')].join('---\n'), { gatewayPorts: [31400] })
  const held = await openConnection(port(gw, 31400))
  t.equal(held.received(), 'a:')
  await gw.reload({ inputs: [{ file: 'inline.yaml', text: [...base, to('b')].join('---\n') }] })
  held.sock.write('still here')
  await until('the old connection still echoes', () => held.received() === 'a:still here')
  t.match((await exchange(port(gw, 31400))).data, /^b:/, 'a new connection follows the new route')
  held.sock.end()
  await held.closed
  const moved = [tcpGateway([31402]), ...base.slice(1), to('b')].join('---\n')
  const err = await gw.reload({ inputs: [{ file: 'inline.yaml', text: moved }] }).then(() => undefined, (e: unknown) => e as { problems?: Array<{ code: string }> })
  t.ok(err?.problems?.some(p => p.code === 'MG0007'), 'a changed TCP port is refused until restart (MG0007)')
  t.match((await exchange(port(gw, 31400))).data, /^b:/, 'the running listener still serves')
})

t.test('no route: the connection is closed with NR', async t => {
  const a = await echoServer(t, 'a')
  const gw = await gatewayFor(t, [tcpGateway([31400]), tcpServiceEntry('echo', { a: a.port }), tcpVs(`  - match: [{ destinationSubnets: [10.0.0.0/8] }]
    route: [{ destination: { host: echo } }]
`)].join('---\n'), { gatewayPorts: [31400] })
  t.equal((await exchange(port(gw, 31400))).refused, true)
  await waitForLogs(gw.logs, 1)
  t.match(gw.logs[0], { response_flags: 'NR', upstream_cluster: '-' })
  t.equal(a.accepted, 0)
})

t.test('shutdown: no new connections; an open one is closed at the deadline', async t => {
  const a = await echoServer(t, 'a')
  const gw = await gatewayFor(t, [tcpGateway([31400]), tcpServiceEntry('echo', { a: a.port }), tcpVs(`  - route: [{ destination: { host: echo } }]
`)].join('---\n'), { gatewayPorts: [31400] })
  const p = port(gw, 31400)
  const held = await openConnection(p)
  const started = Date.now()
  const closing = gw.close(500)
  await held.closed
  const took = Date.now() - started
  t.ok(took >= 400 && took < 3000, `the open connection lasted until the 500 ms deadline (${took} ms)`)
  await closing
  t.equal((await exchange(p)).refused, true, 'the listener no longer accepts')
})

t.test('a destination whose endpoints stop answering probes falls back without a failed connection', async t => {
  const primary = await echoServer(t, 'primary')
  const fb = await echoServer(t, 'fb')
  const probe = '{"tcpSocket": {}, "periodSeconds": 0.1, "timeoutSeconds": 0.2, "failureThreshold": 1}'
  const gw = await gatewayFor(t, [tcpGateway([31400]), tcpServiceEntry('echo', { primary: primary.port, fb: fb.port }, { annotations: { 'meshgate.io/probe': probe } }),
    subsets('echo', ['primary', 'fb']), tcpVs(`  - route:
    - destination: { host: echo, subset: primary }
      fallback: { target: { host: echo, subset: fb } }
`)].join('---\n'), { gatewayPorts: [31400] })
  t.match((await exchange(port(gw, 31400))).data, /^primary:/)
  await primary.close()
  const cluster = 'outbound|9000|primary|echo.default.svc.cluster.local'
  await until('the probe marks the primary down', () => gw.runtime.cluster(cluster)?.hasHealthy() === false, 5000, 20)
  for (let i = 0; i < 5; i++) t.match((await exchange(port(gw, 31400))).data, /^fb:ping$/, 'served by the fallback')
  await waitForLogs(gw.logs, 6)
  t.same(gw.logs.slice(1).map(l => [l.response_flags, l.fallback_result]), Array(5).fill(['-', 'fallback cluster is healthy']), 'no UF: the connection never tried the dead endpoint')
})
