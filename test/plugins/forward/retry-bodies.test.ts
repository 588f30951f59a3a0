import { request as httpRequest } from 'node:http'
import t from 'tap'
import { gatewayFor, type InlineGateway, type Teardown } from '../../helpers/gateway.js'
import { appRequest } from '../../helpers/raw-http.js'
import { type Upstream, upstreamFor } from '../../helpers/upstream.js'
import { waitForLogs } from '../../helpers/wait.js'
import { HTTP_9080, destinationRule, portService, virtualService } from '../../helpers/yaml.js'

// Retries and request bodies: a body is replayed only when it is known to be replay-safe
// (buffered within a bound); chunked or large bodies stream once and are never retried.
// Also URX when retries are exhausted and perTryTimeout moving on to another host.

/**
 * meshgate (mesh listener only) with `app` served by `first` and `second` under RANDOM balancing,
 * random() always 0: the first pick is always `first`. The route's retry policy is `retries`.
 */
function gateway (t: Teardown, first: Upstream, second: Upstream, retries: string): Promise<InlineGateway> {
  return gatewayFor(t, `${destinationRule('app', '  trafficPolicy:\n    loadBalancer: { simple: RANDOM }\n')}---
${virtualService(`  - retries: ${retries}
    route:
    - destination: { host: app }
`)}---
${portService('app', HTTP_9080, [['v1', first.port], ['v1', second.port]])}`, { gatewayPorts: [], random: () => 0 })
}

/** POST with a chunked body (no content-length), written in two pieces. */
function postChunked (base: string, body: string[]): Promise<{ status: number; body: string }> {
  const u = new URL(base)
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: Number(u.port), method: 'POST', path: '/up', headers: { host: 'app', 'transfer-encoding': 'chunked' }, agent: false }, res => {
      let text = ''
      res.on('data', c => { text += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
    for (const piece of body) req.write(piece)
    req.end()
  })
}

async function pair (t: Teardown): Promise<{ bad: Upstream; good: Upstream }> {
  const bad = await upstreamFor(t, 'bad', (_req, res) => { res.writeHead(503); res.end('unavailable') })
  const good = await upstreamFor(t, 'good')
  return { bad, good }
}

t.test('a small body with content-length is buffered and replayed on the retry', async t => {
  const { bad, good } = await pair(t)
  // random() = 0: the first pick is always the failing host, the retry must avoid it.
  const gw = await gateway(t, bad, good, '{ attempts: 2, retryOn: 5xx }')
  const payload = JSON.stringify({ order: 42, items: 'x'.repeat(10_000) })
  const r = await appRequest(gw, '/up', { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }, body: payload })
  t.equal(r.status, 200)
  t.equal(JSON.parse(r.body).upstream, 'good', 'served by the second host')
  t.equal(bad.seen.length, 1)
  t.equal(bad.seen[0].body, payload, 'the first try got the whole body')
  t.equal(good.seen[0].body, payload, 'the retry replayed the same bytes')
})

t.test('a chunked body streams once and is not retried', async t => {
  const { bad, good } = await pair(t)
  const gw = await gateway(t, bad, good, '{ attempts: 2, retryOn: 5xx }')
  const r = await postChunked(gw.mesh, ['first part,', 'second part'])
  t.equal(r.status, 503, "the failing host's answer is passed through")
  t.equal(r.body, 'unavailable')
  t.equal(bad.seen[0].body, 'first part,second part', 'the body streamed to the upstream')
  t.equal(good.seen.length, 0, 'no retry: the body could not be replayed')
})

t.test('a body over the replay bound (64 KiB) streams once and is not retried', async t => {
  const { bad, good } = await pair(t)
  const gw = await gateway(t, bad, good, '{ attempts: 2, retryOn: 5xx }')
  const big = 'y'.repeat(64 * 1024 + 1)
  const r = await appRequest(gw, '/up', { method: 'POST', headers: { 'content-length': String(big.length) }, body: big })
  t.equal(r.status, 503)
  t.equal(bad.seen[0].body.length, big.length)
  t.equal(good.seen.length, 0, 'not retried')
})

t.test('retries exhausted: the last answer with flag URX', async t => {
  const bad = await upstreamFor(t, 'bad', (_req, res) => { res.writeHead(503); res.end('unavailable') })
  const bad2 = await upstreamFor(t, 'bad2', (_req, res) => { res.writeHead(503); res.end('unavailable too') })
  const gw = await gateway(t, bad, bad2, '{ attempts: 2, retryOn: 5xx }')
  const r = await appRequest(gw)
  t.equal(r.status, 503)
  t.equal(bad.seen.length + bad2.seen.length, 3, 'one try and two retries')
  t.ok(bad.seen.length >= 1 && bad2.seen.length >= 1, 'the retry moved to the other host')
  await waitForLogs(gw.logs, 1)
  t.equal(gw.logs.at(-1)?.response_flags, 'URX')
  t.equal(gw.logs.at(-1)?.response_code, '503')
})

t.test('perTryTimeout: a host that hangs is abandoned for another one', async t => {
  const hung: Array<() => void> = []
  const hang = await upstreamFor(t, 'hang', (_req, res) => { hung.push(() => res.destroy()) })
  const good = await upstreamFor(t, 'good')
  t.teardown(() => { for (const h of hung) h() })
  const gw = await gateway(t, hang, good, '{ attempts: 1, perTryTimeout: 0.3s, retryOn: 5xx }')
  const r = await appRequest(gw, '/slow')
  t.equal(r.status, 200)
  t.equal(JSON.parse(r.body).upstream, 'good', 'served by the second host after the per-try timeout')
  t.equal(hang.seen.length, 1, 'the hanging host got the first try')
})
