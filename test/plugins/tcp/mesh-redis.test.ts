import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { connect } from 'node:net'
import { promisify } from 'node:util'
import { gatewayFor } from '../../helpers/gateway.js'
import { closedPort } from '../../helpers/upstream.js'
import { until, waitForLogs } from '../../helpers/wait.js'
import { echoServer, exchange, subsets, tcpServiceEntry } from './helpers.js'

// Mesh TCP listeners: a ServiceEntry TCP port mapped to a local port with
// meshgate.io/mesh-tcp-ports; the service is the default route, a mesh VirtualService's tcp
// routes come first. Redis (Debian's redis-server, installed by .ci/run) through meshgate, with
// redis-cli and with a raw RESP exchange.

const run = promisify(execFile)
const meshPort = (gw: { listeners: Array<{ configPort: number; port: number; kind: string; url: string }> }, p: number): number =>
  gw.listeners.find(l => l.kind === 'mesh' && l.configPort === p && l.url.startsWith('tcp:'))!.port

t.test('a mesh TCP port: the service by default, a mesh VirtualService\'s tcp route first', async t => {
  const a = await echoServer(t, 'a')
  const b = await echoServer(t, 'b')
  const se = tcpServiceEntry('echo', { a: a.port, b: b.port }, { annotations: { 'meshgate.io/mesh-tcp-ports': '{"9000": 19000}' } })
  const gw = await gatewayFor(t, [se, subsets('echo', ['a', 'b'])].join('---\n'), { gatewayPorts: [19000] })
  const seen = new Set<string>()
  for (let i = 0; i < 40; i++) seen.add((await exchange(meshPort(gw, 19000))).data.slice(0, 1))
  t.same([...seen].sort(), ['a', 'b'], 'no VirtualService: the service\'s endpoints, balanced')
  await waitForLogs(gw.logs, 40)
  t.match(gw.logs[0], { upstream_cluster: 'outbound|9000||echo.default.svc.cluster.local', route_name: '-', response_flags: '-' })

  await gw.reload({ inputs: [{ file: 'inline.yaml', text: [se, subsets('echo', ['a', 'b']), `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: echo }
spec:
  hosts: [echo]
  tcp:
  - match: [{ port: 9000 }]
    route: [{ destination: { host: echo, subset: b } }]
`].join('---\n') }] })
  for (let i = 0; i < 10; i++) t.match((await exchange(meshPort(gw, 19000))).data, /^b:ping$/)
})

t.test('the annotation is checked: the port must be a TCP port of the ServiceEntry', async t => {
  const { loadConfig } = await import('../../../src/config/load.js')
  const { compile } = await import('../../../src/compile/compile.js')
  const se = tcpServiceEntry('echo', { a: 1 }, { protocol: 'HTTP', annotations: { 'meshgate.io/mesh-tcp-ports': '{"9000": 19000}' } })
  const c = compile(loadConfig([{ file: 'se.yaml', text: se }]).set)
  t.match(c.problems, [{ severity: 'Error', file: 'se.yaml', path: 'metadata.annotations.meshgate.io/mesh-tcp-ports', message: /port 9000 has protocol HTTP/ }])
})

t.test('Redis through the mesh TCP port: redis-cli and a raw RESP exchange', async t => {
  const redisPort = await closedPort()
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  t.teardown(() => { redis.kill() })
  await until('redis-server answers', async () => {
    try { return (await run('redis-cli', ['-p', String(redisPort), 'ping'])).stdout.trim() === 'PONG' } catch { return false }
  }, 10_000, 100)
  const gw = await gatewayFor(t, tcpServiceEntry('redis', { v1: redisPort }, { servicePort: 6379, annotations: { 'meshgate.io/mesh-tcp-ports': '{"6379": 16379}' } }), { gatewayPorts: [16379] })
  const port = meshPort(gw, 16379)
  const cli = async (...args: string[]): Promise<string> => (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args])).stdout.trim()
  t.equal(await cli('SET', 'greeting', 'hello through meshgate'), 'OK')
  t.equal(await cli('GET', 'greeting'), 'hello through meshgate')
  t.equal((await run('redis-cli', ['-p', String(redisPort), 'GET', 'greeting'])).stdout.trim(), 'hello through meshgate', 'the value is in the real server')

  // Raw RESP, pipelined on one connection: INCR twice, then QUIT.
  const answer = await new Promise<string>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port })
    let data = ''
    s.on('data', c => { data += c.toString() })
    s.on('error', reject)
    s.on('close', () => resolve(data))
    s.write('*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n*1\r\n$4\r\nQUIT\r\n')
  })
  t.equal(answer, ':1\r\n:2\r\n+OK\r\n')
  await waitForLogs(gw.logs, 3)
  const raw = gw.logs[gw.logs.length - 1]
  t.match(raw, { upstream_cluster: 'outbound|6379||redis.default.svc.cluster.local', upstream_host: `127.0.0.1:${redisPort}`, bytes_sent: '13', response_flags: '-' })
})
