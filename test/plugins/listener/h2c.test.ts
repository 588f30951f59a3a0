import { once } from 'node:events'
import { connect as h2connect, type ClientHttp2Session } from 'node:http2'
import { connect } from 'node:net'
import t from 'tap'
import { startInlineGateway } from '../../helpers/gateway.js'
import { rawExchange, rawRequest } from '../../helpers/raw-http.js'
import { startUpstream } from '../../helpers/upstream.js'
import { waitForLogs } from '../../helpers/wait.js'
import { gateway, serviceEntry, virtualService } from '../../helpers/yaml.js'

// HTTP/2 cleartext (h2c, prior knowledge) on Gateway ports declared HTTP2 or GRPC (issue #4
// item 9): the same port takes HTTP/1.1 and h2c, forwards to HTTP/1.1 upstreams, and caps
// concurrent streams at 100.

function yaml (protocol: string, upPort: number): string {
  return `${gateway({ protocol })}---
${virtualService(`  - match: [{ uri: { prefix: /public/ } }]
    route:
    - destination: { host: app }
`, { name: 'app', hosts: ['app.example.com'], gateways: ['gw'] })}---
${serviceEntry('app', { v1: upPort })}`
}

function h2get (session: ClientHttp2Session, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': path, ':authority': 'app.example.com', ...headers }, { endStream: body === undefined })
    let data = ''
    let head: Record<string, unknown> = {}
    req.on('response', h => { head = h })
    req.setEncoding('utf8')
    req.on('data', c => { data += c })
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: data }))
    req.on('error', reject)
    if (body !== undefined) req.end(body)
  })
}

for (const protocol of ['HTTP2', 'GRPC']) {
  t.test(`${protocol} port: h2c prior knowledge and HTTP/1.1 on one listener`, async t => {
    const up = await startUpstream('app')
    const gw = await startInlineGateway(yaml(protocol, up.port), { overload: false })
    const session = h2connect(gw.ingress)
    t.teardown(async () => { session.close(); await gw.close(); await up.close() })
    const r = await h2get(session, '/public/../public/a?q=1')
    t.equal(r.status, 200, 'h2c request served')
    const echoed = JSON.parse(r.body)
    t.equal(echoed.url, '/public/a?q=1', 'canonical path forwarded over HTTP/1.1')
    t.equal(echoed.headers.host, 'app.example.com', ':authority becomes Host upstream')
    t.notOk(Object.keys(echoed.headers).some(k => k.startsWith(':')), 'no pseudo-headers upstream')
    const post = await h2get(session, '/public/up', {}, 'h2-body')
    t.equal(JSON.parse(post.body).body, 'h2-body', 'request body streamed through')
    const bad = await h2get(session, '/public/%2F..%2Fadmin')
    t.equal(bad.status, 400, 'the same path policy applies over h2c')
    t.equal(session.remoteSettings.maxConcurrentStreams, 100, 'stream cap advertised: 100')

    const h1 = await rawRequest(gw.ingress, '/public/b', { headers: { host: 'app.example.com' } })
    t.equal(h1.status, 200, 'HTTP/1.1 on the same port')
    t.equal(JSON.parse(h1.body).url, '/public/b')
    const junk = await rawExchange(gw.ingress, 'PRX * HTTP/2.0\r\n\r\n')
    t.equal(junk.statuses[0], 400, 'a near-preface is HTTP/1.1 garbage: 400')
    await waitForLogs(gw.logs, 5)
    t.ok(gw.logs.some(l => l.protocol === 'HTTP/2'), 'h2c requests logged as HTTP/2')
  })
}

t.test('h2c: at most 100 concurrent streams per connection (maxConcurrentStreams); the rest wait', async t => {
  const pending: Array<() => void> = []
  const up = await startUpstream('slow', (_req, res) => { pending.push(() => res.end('done')) })
  const gw = await startInlineGateway(yaml('HTTP2', up.port), { overload: false })
  const session = h2connect(gw.ingress, { peerMaxConcurrentStreams: 1000 })
  t.teardown(async () => { session.destroy(); await gw.close(); await up.close() })
  await new Promise(resolve => session.once('remoteSettings', resolve))
  // Node's client queues streams beyond the server's advertised limit, so count what the server
  // lets run at once: never more than 100 requests reach the upstream concurrently.
  const all = Array.from({ length: 120 }, (_, i) => h2get(session, `/public/${i}`).catch(err => ({ status: -1, headers: {}, body: String(err?.code) })))
  const deadline = Date.now() + 10_000
  while (pending.length < 100 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(pending.length, 100, 'exactly 100 streams in flight at once')
  let done = false
  const finished = Promise.all(all).then(r => { done = true; return r })
  let maxInFlight = pending.length
  while (!done && Date.now() < deadline + 10_000) {
    maxInFlight = Math.max(maxInFlight, pending.length)
    const next = pending.shift()
    if (next !== undefined) next()
    else await new Promise(resolve => setTimeout(resolve, 20))
  }
  const results = await finished
  t.equal(results.filter(r => r.status === 200).length, 120, 'all 120 served')
  t.ok(maxInFlight <= 100, `never more than 100 at a time (${maxInFlight})`)
})

t.test('plain HTTP ports stay HTTP/1.1 only', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(yaml('HTTP', up.port), { overload: false })
  t.teardown(async () => { await gw.close(); await up.close() })
  const r = await rawExchange(gw.ingress, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
  t.equal(r.statuses[0], 400, 'the h2 preface on an HTTP port is a bad HTTP/1.1 request')
})

t.test('h2c port: a client that closes before it sends a request is closed at once, not after the sniff timeout', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(yaml('HTTP2', up.port), { overload: false })
  t.teardown(async () => { await gw.close(); await up.close() })
  const { hostname, port } = new URL(gw.ingress)
  for (const [what, bytes] of [['nothing', ''], ['part of the preface', 'PRI * HTTP/2.0\r\n']] as const) {
    const socket = connect(Number(port), hostname)
    await once(socket, 'connect')
    socket.end(bytes)
    // The client side closes only when the gateway ends its side too (allowHalfOpen is off).
    const closed = await Promise.race([once(socket, 'close').then(() => true), new Promise<false>(resolve => setTimeout(() => resolve(false), 2000))])
    socket.destroy()
    t.ok(closed, `after ${what} and FIN, the gateway closed the connection within 2 s`)
  }
  const r = await rawRequest(gw.ingress, '/public/after', { headers: { host: 'app.example.com' } })
  t.equal(r.status, 200, 'the listener still serves')
})

t.test('h2c: close() ends sessions gracefully, and the deadline destroys a stuck stream', async t => {
  const up = await startUpstream('stuck', () => { /* never answers */ })
  const gw = await startInlineGateway(yaml('HTTP2', up.port), { overload: false })
  const session = h2connect(gw.ingress)
  session.on('error', () => {})
  t.teardown(async () => { session.destroy(); await up.close() })
  const stuck = h2get(session, '/public/stuck').then(r => r.status === 200 ? 'answered' : 'aborted', () => 'aborted')
  await new Promise(resolve => setTimeout(resolve, 300))
  const started = Date.now()
  await gw.close(800)
  const ms = Date.now() - started
  t.ok(ms < 5000, `close() returned at the deadline (${ms} ms)`)
  t.equal(await stuck, 'aborted', 'the stuck stream was ended')
})

t.test('drain on HTTP/2: GOAWAY as soon as shutdown begins, in-flight streams complete', async t => {
  const up = await startUpstream('app', (_req, res) => { setTimeout(() => res.end('ok'), 300) })
  const gw = await startInlineGateway(yaml('HTTP2', up.port), { overload: false, shutdownDelayMs: 1500 })
  t.teardown(() => up.close())
  const session = h2connect(gw.ingress)
  let goawayAt = 0
  session.on('goaway', () => { goawayAt = Date.now() })
  session.on('error', () => {})
  t.equal((await h2get(session, '/public/warm')).status, 200)
  const inflight = h2get(session, '/public/slow')
  await new Promise(resolve => setTimeout(resolve, 50))
  const began = Date.now()
  const closing = gw.close(10_000)
  // A request during the preStop window carries the GOAWAY to this session.
  const other = h2connect(gw.ingress)
  other.on('error', () => {})
  const during = await h2get(other, '/public/during')
  t.equal(during.status, 200, 'a request in the preStop window is served')
  const r = await inflight
  t.equal(r.status, 200, 'the stream in flight completed')
  t.ok(goawayAt > 0 && goawayAt - began < 1200, `GOAWAY came at the start of the drain (${goawayAt - began} ms), not only when the listener closed`)
  await closing
  session.destroy()
  other.destroy()
})
