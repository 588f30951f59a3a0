import { connect as h2connect, constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import t from 'tap'
import { gatewayFor, type InlineGateway, type Teardown } from '../../helpers/gateway.js'
import { startH2Upstream } from '../../helpers/h2-upstream.js'
import { closedPort } from '../../helpers/upstream.js'
import { until, waitForLogs } from '../../helpers/wait.js'
import { gateway, portService, routeTo, versionSubsets, virtualService } from '../../helpers/yaml.js'
import { type Msg, echoClient, grpc, startEchoServer, unary } from '../../fixtures/grpc/echo.js'

// gRPC through meshgate end to end: a grpc-js client on an h2c Gateway port, grpc-js servers as
// the endpoints of a GRPC ServiceEntry port (meshgate speaks h2c to them): every call shape,
// status codes, metadata and trailers, deadlines, retries on `unavailable`, fallback, and the
// gRPC local reply when no upstream is healthy.

const AUTH = 'echo.example.com'

function config (endpoints: Record<string, number>, opts: { retries?: string; route?: string } = {}): string {
  return `${gateway({ protocol: 'GRPC' })}---
${virtualService(`  - ${opts.retries !== undefined ? `retries: ${opts.retries}\n    ` : ''}route:
${opts.route ?? '    - destination: { host: echo }'}
`, { name: 'echo', hosts: [AUTH], gateways: ['gw'] })}---
${portService('echo', { number: 50051, name: 'grpc-echo', protocol: 'GRPC' }, endpoints)}---
${versionSubsets('echo', ['v1', 'v2'])}`
}

function target (url: string): string {
  return new URL(url).host
}

/** `startEchoServer`, closed when the test ends. */
async function echoServerFor (t: Teardown, opts: Parameters<typeof startEchoServer>[0]): Promise<Awaited<ReturnType<typeof startEchoServer>>> {
  const up = await startEchoServer(opts)
  t.teardown(() => up.close())
  return up
}

/**
 * meshgate with `yaml`, and a grpc-js client on its ingress (its mesh listener with `mesh`) for
 * `authority` (the VirtualService's host unless given); both closed when the test ends.
 */
async function callThrough (t: Teardown, yaml: string, opts: { authority?: string; mesh?: boolean } = {}): Promise<{ gw: InlineGateway; client: ReturnType<typeof echoClient> }> {
  const gw = await gatewayFor(t, yaml, { overload: false })
  const client = echoClient(target(opts.mesh === true ? gw.mesh : gw.ingress), opts.authority ?? AUTH)
  t.teardown(() => client.close())
  return { gw, client }
}

type Call = Record<string, (...args: unknown[]) => grpc.ClientReadableStream<Msg> & grpc.ClientWritableStream<Msg> & grpc.ClientDuplexStream<Msg, Msg>>

t.test('unary, streaming both ways and bidi, with metadata and trailers', async t => {
  const up = await echoServerFor(t, { name: 'v1' })
  const { gw, client } = await callThrough(t, config({ v1: up.port }))

  const r = await unary(client, { text: 'hi', count: 41 }, { metadata: { 'x-echo': 'md' } })
  t.same(r.msg, { text: 'v1:hi:md', count: 42 }, 'unary answer, request metadata reached the server')
  t.same(r.headers.get('x-served-by'), ['v1'], 'initial metadata passed through')
  t.equal(r.status.code, grpc.status.OK)
  t.same(r.status.metadata.get('x-trailer'), ['bye from v1'], 'trailing metadata passed through')

  const calls = client as unknown as Call
  const stream = calls.ServerStream({ text: 's', count: 5 })
  const got: string[] = []
  const trailers = await new Promise<grpc.StatusObject>((resolve, reject) => {
    stream.on('data', (m: Msg) => got.push(m.text))
    stream.on('status', resolve)
    stream.on('error', reject)
  })
  t.same(got, ['v1:s:0', 'v1:s:1', 'v1:s:2', 'v1:s:3', 'v1:s:4'], 'server streaming: every message in order')
  t.same(trailers.metadata.get('x-trailer'), ['bye from v1'])

  const cs = await new Promise<Msg>((resolve, reject) => {
    const call = (client as unknown as Record<string, (cb: (e: Error | null, m?: Msg) => void) => grpc.ClientWritableStream<Msg>>)
      .ClientStream((err, m) => err !== null ? reject(err) : resolve(m!))
    for (const text of ['a', 'b', 'c']) call.write({ text, count: 0 })
    call.end()
  })
  t.same(cs, { text: 'v1:a+b+c', count: 3 }, 'client streaming')

  // Bidi: each answer arrives before the next message is sent (no buffering in the gateway).
  const bidi = calls.Bidi()
  const answers: Msg[] = []
  for (let i = 1; i <= 3; i++) {
    const next = new Promise<Msg>(resolve => bidi.once('data', resolve))
    bidi.write({ text: `m${i}`, count: i })
    answers.push(await next)
  }
  const bidiStatus = new Promise<grpc.StatusObject>(resolve => bidi.on('status', resolve))
  bidi.end()
  t.same(answers, [{ text: 'v1:m1', count: 2 }, { text: 'v1:m2', count: 4 }, { text: 'v1:m3', count: 6 }], 'bidi: answer by answer')
  t.equal((await bidiStatus).code, grpc.status.OK)

  await waitForLogs(gw.logs, 4)
  t.equal(gw.logs[0].upstream_cluster, 'outbound|50051||echo.default.svc.cluster.local')
  t.equal(gw.logs[0].protocol, 'HTTP/2')
})

t.test('large messages both ways (flow control and backpressure across the gateway)', async t => {
  const up = await echoServerFor(t, { name: 'v1' })
  const { client } = await callThrough(t, config({ v1: up.port }))
  const big = 'x'.repeat(1024 * 1024)
  const r = await unary(client, { text: big, count: 1 })
  t.equal(r.msg.text.length, big.length + 3, 'a 1 MiB request and answer')
  const stream = (client as unknown as Call).ServerStream({ text: 'y'.repeat(256 * 1024), count: 12 })
  let bytes = 0
  let n = 0
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (m: Msg) => { bytes += m.text.length; n++ })
    stream.on('status', () => resolve())
    stream.on('error', reject)
  })
  t.equal(n, 12, 'twelve messages of 256 KiB')
  t.ok(bytes > 12 * 256 * 1024)
})

t.test('a client that cancels a bidi call cancels it upstream', async t => {
  const up = await echoServerFor(t, { name: 'v1' })
  const { client } = await callThrough(t, config({ v1: up.port }))
  const bidi = (client as unknown as Call).Bidi()
  bidi.on('error', () => {})
  const first = new Promise<Msg>(resolve => bidi.once('data', resolve))
  bidi.write({ text: 'one', count: 1 })
  t.equal((await first).text, 'v1:one', 'the call is open end to end')
  bidi.cancel()
  await until('the server saw the cancellation', () => up.calls.BidiCancelled === 1)
  t.pass('cancelled upstream')
})

t.test('gRPC status codes and messages from the upstream reach the client', async t => {
  const up = await echoServerFor(t, { name: 'v1' })
  const { client } = await callThrough(t, config({ v1: up.port }, { retries: '{ attempts: 0 }' }))
  for (const code of [grpc.status.NOT_FOUND, grpc.status.INVALID_ARGUMENT, grpc.status.UNAVAILABLE, grpc.status.PERMISSION_DENIED]) {
    const err = await unary(client, { text: `status:${code}`, count: 0 }).then(() => undefined, (e: grpc.ServiceError) => e)
    t.equal(err?.code, code, `status ${code}`)
    t.equal(err?.details, 'failed by v1')
    t.same(err?.metadata.get('x-trailer'), ['bye from v1'], 'trailers-only answer keeps its metadata')
  }
})

t.test('a deadline: grpc-timeout bounds the request as a route timeout', async t => {
  const up = await echoServerFor(t, { name: 'v1' })
  const { client } = await callThrough(t, config({ v1: up.port }, { retries: '{ attempts: 0 }' }))
  // Three timers end this call at about the same moment: the client's, the gateway's and the
  // grpc-js server's (it reads the forwarded grpc-timeout too). Which one the log shows is a race;
  // the test below, with an upstream that ignores deadlines, shows the gateway's own.
  const err = await unary(client, { text: 'sleep:2000', count: 0 }, { deadlineMs: 300 }).then(() => undefined, (e: grpc.ServiceError) => e)
  t.equal(err?.code, grpc.status.DEADLINE_EXCEEDED, 'the client sees its deadline')
  const fast = await unary(client, { text: 'sleep:10', count: 0 }, { deadlineMs: 2000 })
  t.equal(fast.msg.text, 'v1:sleep:10', 'a call inside its deadline succeeds')
})

t.test('grpc-timeout: the gateway times the call out itself (UT) and resets the upstream stream', async t => {
  // An HTTP/2 upstream that never answers and ignores grpc-timeout; the client sends the header
  // and sets no deadline of its own, so only the gateway can end the call.
  const streams: ServerHttp2Stream[] = []
  const up = await startH2Upstream(stream => { streams.push(stream) })
  t.teardown(() => up.close())
  const gw = await gatewayFor(t, config({ v1: up.port }, { retries: '{ attempts: 0 }' }), { overload: false })
  const session = h2connect(gw.ingress)
  t.teardown(() => session.destroy())
  const started = Date.now()
  const head = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/echo.Echo/Unary', ':authority': AUTH, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '200m' })
    req.on('response', resolve)
    req.on('error', reject)
    req.end(Buffer.from([0, 0, 0, 0, 0]))
    req.resume()
  })
  const ms = Date.now() - started
  t.equal(head['grpc-status'], '14', 'a trailers-only gRPC answer: 504 as UNAVAILABLE, as Envoy maps it')
  t.equal(head['grpc-message'], 'upstream request timeout')
  t.ok(ms >= 180 && ms < 5000, `after the 200 ms in grpc-timeout (${ms} ms)`)
  await waitForLogs(gw.logs, 1, 5000)
  t.equal(gw.logs[0].response_flags, 'UT', 'logged as an upstream request timeout')
  t.equal(gw.logs[0].response_code, '200', 'the trailers-only answer\'s :status, as Envoy logs a gRPC local reply')
  await until('the upstream stream is reset, not left running', () => streams.length === 1 && streams[0].closed, 5000)
  t.equal(streams[0].rstCode, constants.NGHTTP2_CANCEL, 'RST_STREAM CANCEL upstream')
})

t.test('retryOn unavailable: a trailers-only UNAVAILABLE is retried on another endpoint', async t => {
  let failed = 0
  const bad = await startEchoServer({ name: 'bad' })
  const good = await startEchoServer({ name: 'good' })
  t.teardown(async () => { await bad.close(); await good.close() })
  // Both endpoints in one subset; the bad one answers UNAVAILABLE to everything.
  const { gw, client } = await callThrough(t, config({ v1: bad.port, v2: good.port }, { retries: '{ attempts: 2, retryOn: unavailable }' }))
  for (let i = 0; i < 6; i++) {
    const r = await unary(client, { text: 'status:14', count: 0 }).then(() => 'ok', (e: grpc.ServiceError) => e.code)
    if (r === grpc.status.UNAVAILABLE) failed++
  }
  t.equal(failed, 6, 'both endpoints answer UNAVAILABLE for status:14, so every call still fails')
  t.equal((bad.calls.Unary ?? 0) + (good.calls.Unary ?? 0), 18, 'but each call was tried 3 times (1 + 2 retries)')
  await waitForLogs(gw.logs, 6)
  t.ok(gw.logs.every(l => l.response_flags === 'URX'), 'retries exhausted: URX')

  const ok = await unary(client, { text: 'hi', count: 0 })
  t.match(ok.msg.text, /^(bad|good):hi$/, 'a healthy answer is not retried')
})

t.test('retryOn unavailable: an endpoint that answers UNAVAILABLE is retried away from', async t => {
  const bad = await startEchoServer({ name: 'bad', failWith: grpc.status.UNAVAILABLE })
  const good = await startEchoServer({ name: 'good' })
  t.teardown(async () => { await bad.close(); await good.close() })
  const { client } = await callThrough(t, config({ v1: bad.port, v2: good.port }, { retries: '{ attempts: 2, retryOn: "cancelled,unavailable" }' }))
  for (let i = 0; i < 6; i++) t.equal((await unary(client, { text: `c${i}`, count: 0 })).msg.text, `good:c${i}`, `call ${i} succeeds`)
  t.ok((bad.calls.Unary ?? 0) > 0, 'the failing endpoint was tried, and the call retried on the other')
  t.equal(good.calls.Unary, 6)
})

t.test('retryOn without a gRPC condition: UNAVAILABLE is not retried', async t => {
  const up = await echoServerFor(t, { name: 'v1' })
  const { client } = await callThrough(t, config({ v1: up.port }, { retries: '{ attempts: 2, retryOn: 5xx }' }))
  const code = await unary(client, { text: 'status:14', count: 0 }).then(() => 0, (e: grpc.ServiceError) => e.code)
  t.equal(code, grpc.status.UNAVAILABLE)
  t.equal(up.calls.Unary, 1, 'one try: HTTP 200 is no 5xx')
})

t.test('fallback: the primary subset is down, the fallback subset serves the gRPC call', async t => {
  const down = await closedPort()
  const up = await echoServerFor(t, { name: 'v2' })
  const { gw, client } = await callThrough(t, config({ v1: down, v2: up.port }, {
    route: `    - destination: { host: echo, subset: v1 }
      fallback:
        target: { host: echo, subset: v2 }`
  }))
  const r = await unary(client, { text: 'fb', count: 0 })
  t.equal(r.msg.text, 'v2:fb', 'served by the fallback subset')
  const again = await unary(client, { text: 'fb2', count: 0 })
  t.equal(again.msg.text, 'v2:fb2')
  await waitForLogs(gw.logs, 2)
  t.equal(gw.logs[1].fallback_path, 'outbound|50051|v1|echo.default.svc.cluster.local:outbound|50051|v2|echo.default.svc.cluster.local')
  t.equal(gw.logs[1].upstream_cluster, 'outbound|50051|v2|echo.default.svc.cluster.local')
})

t.test('no healthy upstream: a gRPC local reply, UNAVAILABLE with the reason', async t => {
  const down = await closedPort()
  const { gw, client } = await callThrough(t, config({ v1: down }))
  const first = await unary(client, { text: 'x', count: 0 }).then(() => undefined, (e: grpc.ServiceError) => e)
  t.equal(first?.code, grpc.status.UNAVAILABLE, 'connect failure (UF) is UNAVAILABLE')
  t.match(first?.details, /upstream connect error/)
  const second = await unary(client, { text: 'x', count: 0 }).then(() => undefined, (e: grpc.ServiceError) => e)
  t.equal(second?.code, grpc.status.UNAVAILABLE, 'no healthy upstream (UH) is UNAVAILABLE')
  t.equal(second?.details, 'no healthy upstream')
  await waitForLogs(gw.logs, 2)
  t.match(gw.logs[1].response_flags, /UH/)
  t.equal(gw.logs[1].response_code, '200', 'the local reply is HTTP 200 with grpc-status, as Envoy logs it')
})

t.test('no route: UNIMPLEMENTED', async t => {
  const up = await echoServerFor(t, { name: 'v1' })
  const { client } = await callThrough(t, config({ v1: up.port }), { authority: 'other.example.com' })
  const err = await unary(client, { text: 'x', count: 0 }).then(() => undefined, (e: grpc.ServiceError) => e)
  t.equal(err?.code, grpc.status.UNIMPLEMENTED, '404 NR maps to UNIMPLEMENTED')
})

t.test('a workload calls through the mesh listener: h2c by prior knowledge, the mesh route applies', async t => {
  const v1 = await startEchoServer({ name: 'v1' })
  const v2 = await startEchoServer({ name: 'v2' })
  t.teardown(() => { v1.close(); v2.close() })
  const meshRoute = virtualService(routeTo('echo', 'v2'), { name: 'echo-mesh', hosts: ['echo'] })
  const { gw, client } = await callThrough(t, `${config({ v1: v1.port, v2: v2.port })}---\n${meshRoute}`, { authority: 'echo:50051', mesh: true })
  const r = await unary(client, { text: 'm', count: 1 })
  t.same(r.msg, { text: 'v2:m', count: 2 }, 'the mesh VirtualService sent the call to v2')
  t.equal(r.status.code, grpc.status.OK)
  await waitForLogs(gw.logs, 1)
  const line = gw.logs[0]
  t.equal(line.protocol, 'HTTP/2', 'the workload spoke HTTP/2 to the mesh listener')
  t.match(line.upstream_cluster, /\|v2\|echo/, 'logged against the v2 cluster')
})
