import t, { type Test } from 'tap'
import { startDemo } from '../../demo/demo.js'
import { type ReceivedSpan, otlpReceiverFor } from '../helpers/otlp.js'
import { rawRequest } from '../helpers/raw-http.js'
import { until, waitForLogs } from '../helpers/wait.js'

// End to end: the local Bookinfo demo with tracing on, its spans received by a real OTLP/HTTP
// receiver on loopback. The stand-ins propagate the trace headers they receive (as the real
// Bookinfo services do), so one page load is one trace: ingress → productpage, then
// productpage → details and → reviews, and reviews → ratings through the mesh listener, each
// hop a server span whose parent is the client span of the hop before.

const cluster = (svc: string, subset = ''): string => `outbound|9080|${subset}|${svc}.default.svc.cluster.local`

/** The server span of the hop to `upstream` on `listener`, and its one client span. */
function hop (spans: ReceivedSpan[], listener: string, upstream: string): { server: ReceivedSpan; client: ReceivedSpan } {
  const servers = spans.filter(s => s.kind === 'server' && s.attributes['meshgate.listener'] === listener && s.attributes.upstream_cluster === upstream)
  if (servers.length !== 1) throw new Error(`expected one server span on ${listener} to ${upstream}, got ${servers.length}`)
  const clients = spans.filter(s => s.kind === 'client' && s.parentSpanId === servers[0].spanId)
  if (clients.length !== 1) throw new Error(`expected one client span under the ${upstream} hop, got ${clients.length}`)
  return { server: servers[0], client: clients[0] }
}

t.test('one page load is one trace across ingress → productpage → reviews → ratings', async t => {
  const rx = await otlpReceiverFor(t)
  const logs: Array<Record<string, string>> = []
  const demo = await startDemo({
    freePorts: true,
    ingressPort: 0,
    meshPort: 0,
    scenarios: ['reviews-v3'],
    accessLog: line => logs.push(JSON.parse(line)),
    tracing: { otlpEndpoint: rx.url, samplingPercent: 100, exportDelayMs: 50 }
  })
  t.teardown(() => demo.close())

  const check = async (t: Test, traceId: string, rootParent: string): Promise<void> => {
    await until(`the 8 spans of trace ${traceId}`, () => rx.spans.filter(s => s.traceId === traceId).length >= 8, 10_000)
    const spans = rx.spans.filter(s => s.traceId === traceId)
    t.equal(spans.length, 8, 'four hops, a server and a client span each')
    const ingress = hop(spans, '8080', cluster('productpage'))
    const details = hop(spans, 'mesh', cluster('details'))
    const reviews = hop(spans, 'mesh', cluster('reviews', 'v3'))
    const ratings = hop(spans, 'mesh', cluster('ratings'))
    t.equal(ingress.server.parentSpanId, rootParent, 'the ingress span is where the trace starts (or continues the client)')
    t.equal(details.server.parentSpanId, ingress.client.spanId, 'productpage → details: parent is the ingress client span')
    t.equal(reviews.server.parentSpanId, ingress.client.spanId, 'productpage → reviews: parent is the ingress client span')
    t.equal(ratings.server.parentSpanId, reviews.client.spanId, 'reviews → ratings: parent is the reviews hop client span')
    t.equal(ingress.server.name, 'productpage.default.svc.cluster.local:9080/*')
    t.equal(ratings.server.name, 'ratings.default.svc.cluster.local:9080/*')
    t.match(String(ingress.server.attributes.node_id), /^router~/, 'the ingress is a router')
    t.match(String(ratings.server.attributes.node_id), /^sidecar~/, 'the mesh listener is a sidecar')
    t.match(reviews.server.attributes, { 'http.method': 'GET', 'http.status_code': 200, response_flags: '-', 'meshgate.retry_count': 0 })
    const byPath = (p: string): Record<string, string> | undefined => logs.find(l => l.path === p && l.trace_id === traceId)
    t.ok(byPath('/productpage') !== undefined && byPath('/ratings/0') !== undefined, 'the access log names the same trace on the first and the last hop')
  }

  t.test('meshgate starts the trace (no context from the client)', async t => {
    const page = await rawRequest(demo.ingressUrl, '/productpage')
    t.equal(page.status, 200)
    t.match(page.body, 'Reviews served by:')
    await waitForLogs(logs, 4)
    const line = logs.find(l => l.path === '/productpage')
    t.match(line?.trace_id, /^[0-9a-f]{32}$/, 'the access log has the new trace id')
    await check(t, line!.trace_id, '')
  })

  t.test('the client sends B3 multi-headers, as Bookinfo callers do', async t => {
    const tid = '5a3ce929d0e0e4736b4bf92f3577b34d'
    const parent = '0c0f067aa0ba902b'
    const page = await rawRequest(demo.ingressUrl, '/productpage', { headers: { 'x-b3-traceid': tid, 'x-b3-spanid': parent, 'x-b3-sampled': '1' } })
    t.equal(page.status, 200)
    await check(t, tid, parent)
  })
})
