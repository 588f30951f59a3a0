import t from 'tap'
import { gatewayFor } from '../helpers/gateway.js'
import { type OtlpReceiver, type ReceivedSpan, otlpReceiverFor } from '../helpers/otlp.js'
import { echoed, rawRequest } from '../helpers/raw-http.js'
import { upstreamFor } from '../helpers/upstream.js'
import { until, waitForLogs } from '../helpers/wait.js'
import { GATEWAY, gatewayVs, serviceEntry, versionSubsets } from '../helpers/yaml.js'

// Tracing through a real gateway: the context a client sends (W3C, B3 single, B3 multi) is
// continued, the upstream receives meshgate's client span as its parent, and the spans reach a
// real OTLP/HTTP receiver on loopback.

const TID = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'
const ROUTE = gatewayVs('  - route:\n    - destination: { host: app }\n')
const EXPORT = { exportDelayMs: 20 }

const spansOf = async (rx: OtlpReceiver, traceId: string, n: number): Promise<ReceivedSpan[]> => {
  await until(`${n} spans of trace ${traceId}`, () => rx.spans.filter(s => s.traceId === traceId).length >= n)
  return rx.spans.filter(s => s.traceId === traceId)
}
const one = <T>(xs: T[], what: string): T => {
  if (xs.length !== 1) throw new Error(`expected one ${what}, got ${xs.length}`)
  return xs[0]
}

t.test('W3C, B3 single and B3 multi contexts are continued and propagated in the formats the client used, plus W3C', async t => {
  const rx = await otlpReceiverFor(t)
  const up = await upstreamFor(t, 'app')
  const gw = await gatewayFor(t, [GATEWAY, ROUTE, serviceEntry('app', { v1: up.port })].join('---\n'), { tracing: { otlpEndpoint: rx.url, samplingPercent: 0, ...EXPORT } })

  t.test('W3C traceparent and tracestate', async t => {
    const r = await rawRequest(gw.ingress, '/w3c', { headers: { traceparent: `00-${TID}-${PARENT}-01`, tracestate: 'congo=t61rcWkgMzE' } })
    const seen = echoed(r).headers
    const [server, client] = await spansOf(rx, TID, 2).then(s => [one(s.filter(x => x.kind === 'server'), 'server span'), one(s.filter(x => x.kind === 'client'), 'client span')])
    t.equal(server.parentSpanId, PARENT, 'the server span continues the client span of the caller')
    t.equal(client.parentSpanId, server.spanId, 'the try is a client span under it')
    t.equal(seen.traceparent, `00-${TID}-${client.spanId}-01`, 'the upstream sees the client span as its parent, sampled')
    t.equal(seen.tracestate, 'congo=t61rcWkgMzE', 'tracestate passed on')
    t.equal(seen['x-b3-traceid'], undefined, 'no B3 added for a W3C client')
    t.equal(seen.b3, undefined)
    await waitForLogs(gw.logs, 1)
    t.equal(gw.logs.find(l => l.path === '/w3c')?.trace_id, TID, 'the access log names the trace')
    t.equal(server.service, 'meshgate')
    t.match(server.attributes, {
      component: 'proxy',
      'http.method': 'GET',
      'http.url': /^http:\/\/127\.0\.0\.1:\d+\/w3c$/,
      'http.status_code': 200,
      response_flags: '-',
      upstream_cluster: 'outbound|9080||app.default.svc.cluster.local',
      'guid:x-request-id': String(seen['x-request-id']),
      'meshgate.retry_count': 0,
      'meshgate.fallback_path': '-'
    })
    t.match(String(server.attributes.node_id), /^router~/, 'node_id as a gateway proxy')
    t.equal(server.name, 'app.default.svc.cluster.local:9080/*', "Istio's operation name")
    t.match(client.attributes, { upstream_address: `127.0.0.1:${up.port}`, 'http.status_code': 200, 'meshgate.attempt': 1 })
  })

  t.test('B3 multi-header', async t => {
    const tid = 'a3ce929d0e0e47364bf92f3577b34da6'
    const r = await rawRequest(gw.ingress, '/b3multi', { headers: { 'x-b3-traceid': tid, 'x-b3-spanid': PARENT, 'x-b3-parentspanid': 'e457b5a2e4d86bd1', 'x-b3-sampled': '1' } })
    const seen = echoed(r).headers
    const spans = await spansOf(rx, tid, 2)
    const server = one(spans.filter(x => x.kind === 'server'), 'server span')
    const client = one(spans.filter(x => x.kind === 'client'), 'client span')
    t.equal(server.parentSpanId, PARENT)
    t.equal(client.parentSpanId, server.spanId)
    t.equal(seen['x-b3-traceid'], tid, 'B3 multi propagated')
    t.equal(seen['x-b3-spanid'], client.spanId)
    t.equal(seen['x-b3-sampled'], '1')
    t.equal(seen['x-b3-parentspanid'], undefined, "the caller's parent id is not passed on as meshgate's")
    t.equal(seen.traceparent, `00-${tid}-${client.spanId}-01`, 'plus W3C')
    t.equal(seen.b3, undefined, 'no single header for a multi-header client')
  })

  t.test('B3 single header', async t => {
    const tid = '0e0e47364bf92f3577b34da6a3ce929d'
    const r = await rawRequest(gw.ingress, '/b3single', { headers: { b3: `${tid}-${PARENT}-1` } })
    const seen = echoed(r).headers
    const spans = await spansOf(rx, tid, 2)
    const server = one(spans.filter(x => x.kind === 'server'), 'server span')
    const client = one(spans.filter(x => x.kind === 'client'), 'client span')
    t.equal(server.parentSpanId, PARENT)
    t.equal(seen.b3, `${tid}-${client.spanId}-1`, 'B3 single propagated')
    t.equal(seen.traceparent, `00-${tid}-${client.spanId}-01`, 'plus W3C')
    t.equal(seen['x-b3-traceid'], undefined, 'no multi-header for a single-header client')
  })

  t.test('a not-sampled decision that came with the request is kept, and propagated', async t => {
    const tid = '77b34da6a3ce929d0e0e47364bf92f35'
    const r = await rawRequest(gw.ingress, '/unsampled', { headers: { traceparent: `00-${tid}-${PARENT}-00` } })
    const seen = echoed(r).headers
    t.match(String(seen.traceparent), new RegExp(`^00-${tid}-[0-9a-f]{16}-00$`), 'same trace, not sampled, upstream')
    await gw.close()
    t.equal(rx.spans.filter(s => s.traceId === tid).length, 0, 'no span exported, even after the flush at close')
  })
})

t.test('sampling: 100 % starts a sampled trace for a request without one; 0 % starts an unsampled one', async t => {
  const rx = await otlpReceiverFor(t)
  const up = await upstreamFor(t, 'app')
  const yaml = [GATEWAY, ROUTE, serviceEntry('app', { v1: up.port })].join('---\n')
  const all = await gatewayFor(t, yaml, { tracing: { otlpEndpoint: rx.url, samplingPercent: 100, ...EXPORT } })
  const none = await gatewayFor(t, yaml, { tracing: { otlpEndpoint: rx.url, samplingPercent: 0, ...EXPORT } })

  const r = await rawRequest(all.ingress, '/all')
  const tp = String(echoed(r).headers.traceparent)
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(tp)
  t.ok(m !== null, `a new sampled trace upstream: ${tp}`)
  const spans = await spansOf(rx, m![1], 2)
  const server = one(spans.filter(s => s.kind === 'server'), 'server span')
  t.equal(server.parentSpanId, '', 'the server span is the root')
  t.equal(one(spans.filter(s => s.kind === 'client'), 'client span').spanId, m![2])
  await waitForLogs(all.logs, 1)
  t.equal(all.logs[0].trace_id, m![1], 'the access log names the trace meshgate started')

  for (let i = 0; i < 20; i++) {
    const u = await rawRequest(none.ingress, `/none${i}`)
    t.match(String(echoed(u).headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/, 'a context is propagated, not sampled')
  }
  await waitForLogs(none.logs, 20)
  const ids = new Set(none.logs.map(l => l.trace_id))
  t.equal(ids.size, 20, 'each request has its own trace id in the log')
  await none.close()
  await all.close()
  t.equal(rx.spans.filter(s => ids.has(s.traceId)).length, 0, 'nothing exported at 0 %')
  t.ok(rx.posts.every(p => p.path === '/v1/traces' && p.contentType.startsWith('application/json')), 'OTLP/HTTP JSON posts to /v1/traces')
})

t.test('retries are sibling client spans; the server span counts them', async t => {
  const rx = await otlpReceiverFor(t)
  let calls = 0
  const up = await upstreamFor(t, 'app', (req, res) => {
    calls++
    res.writeHead(calls === 1 ? 503 : 200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ headers: req.headers }))
  })
  const vs = gatewayVs('  - route:\n    - destination: { host: app }\n    retries: { attempts: 2, retryOn: 5xx }\n')
  const gw = await gatewayFor(t, [GATEWAY, vs, serviceEntry('app', { v1: up.port })].join('---\n'), { tracing: { otlpEndpoint: rx.url, samplingPercent: 100, ...EXPORT } })
  const r = await rawRequest(gw.ingress, '/retry', { headers: { traceparent: `00-${TID}-${PARENT}-01` } })
  t.equal(r.status, 200, 'served by the second try')
  const spans = await spansOf(rx, TID, 3)
  const server = one(spans.filter(s => s.kind === 'server'), 'server span')
  const tries = spans.filter(s => s.kind === 'client').sort((a, b) => Number(a.attributes['meshgate.attempt']) - Number(b.attributes['meshgate.attempt']))
  t.equal(tries.length, 2, 'one client span per try')
  t.same(tries.map(s => s.parentSpanId), [server.spanId, server.spanId], 'siblings under the server span')
  t.same(tries.map(s => s.attributes['http.status_code']), [503, 200])
  t.equal(tries[0].status, 2, 'the 503 try is an error')
  t.not(tries[0].spanId, tries[1].spanId)
  t.equal(up.seen.length, 2, 'two tries reached the upstream')
  t.equal(JSON.parse(r.body).headers.traceparent, `00-${TID}-${tries[1].spanId}-01`, 'the upstream of the second try sees the second span')
  t.equal(server.attributes['meshgate.retry_count'], 1)
  t.equal(server.attributes['http.status_code'], 200)
})

t.test('a fallback is on the server span; a failed connect is an error try', async t => {
  const rx = await otlpReceiverFor(t)
  const v2 = await upstreamFor(t, 'v2')
  const v3 = await upstreamFor(t, 'v3')
  const v3port = v3.port
  await v3.close()
  const yaml = `${GATEWAY}---
${gatewayVs(`  - route:
    - destination: { host: app, subset: v3 }
      fallback:
        target: { host: app, subset: v2 }
    retries: { attempts: 0 }`)}
---
${versionSubsets('app', ['v2', 'v3'])}---
${serviceEntry('app', { v3: v3port, v2: v2.port })}`
  const gw = await gatewayFor(t, yaml, { tracing: { otlpEndpoint: rx.url, samplingPercent: 100, ...EXPORT } })
  const first = await rawRequest(gw.ingress, '/first', { headers: { traceparent: `00-${TID}-${PARENT}-01` } })
  t.equal(first.status, 503, 'v3 refuses the connection: 503 UF, the host is marked down')
  const failed = await spansOf(rx, TID, 2)
  const failedTry = one(failed.filter(s => s.kind === 'client'), 'client span')
  t.equal(failedTry.attributes.error, true)
  t.equal(failedTry.attributes.upstream_transport_failure_reason, 'ECONNREFUSED')
  const failedServer = one(failed.filter(s => s.kind === 'server'), 'server span')
  t.match(failedServer.attributes, { 'http.status_code': 503, response_flags: 'UF', error: true })

  const tid = '9d0e0e47364bf92f3577b34da6a3ce92'
  const r = await rawRequest(gw.ingress, '/second', { headers: { traceparent: `00-${tid}-${PARENT}-01` } })
  t.equal(echoed(r).upstream, 'v2', 'served by the fallback target')
  const server = one((await spansOf(rx, tid, 2)).filter(s => s.kind === 'server'), 'server span')
  t.match(server.attributes, {
    upstream_cluster: 'outbound|9080|v2|app.default.svc.cluster.local',
    'meshgate.fallback_path': 'outbound|9080|v3|app.default.svc.cluster.local:outbound|9080|v2|app.default.svc.cluster.local',
    'meshgate.fallback_result': 'fallback cluster is healthy',
    'http.status_code': 200
  })
})

t.test('tracing off: nothing is added to the request, the log copies the client trace id', async t => {
  const up = await upstreamFor(t, 'app')
  const gw = await gatewayFor(t, [GATEWAY, ROUTE, serviceEntry('app', { v1: up.port })].join('---\n'))
  const plain = echoed(await rawRequest(gw.ingress, '/plain')).headers
  t.equal(plain.traceparent, undefined, 'no context invented')
  const w3c = echoed(await rawRequest(gw.ingress, '/w3c', { headers: { traceparent: `00-${TID}-${PARENT}-01` } })).headers
  t.equal(w3c.traceparent, `00-${TID}-${PARENT}-01`, 'the client context passes unchanged')
  const single = echoed(await rawRequest(gw.ingress, '/b3', { headers: { b3: `${TID}-${PARENT}-1` } })).headers
  t.equal(single.b3, `${TID}-${PARENT}-1`, 'B3 passes unchanged')
  t.equal(single.traceparent, undefined, 'and no W3C is added')
  await waitForLogs(gw.logs, 3)
  t.same(gw.logs.map(l => l.trace_id), ['-', TID, TID], 'trace_id from traceparent, x-b3-traceid or b3')
})
