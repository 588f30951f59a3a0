import { connect, constants, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import t from 'tap'
import { clusterOf, gatewayFor, type InlineGateway, type Teardown } from '../../helpers/gateway.js'
import { startH2Upstream, type H2Upstream } from '../../helpers/h2-upstream.js'
import { rawRequest } from '../../helpers/raw-http.js'
import { until, waitForLogs } from '../../helpers/wait.js'
import { GATEWAY, gateway, gatewayVs, portService, routeTo } from '../../helpers/yaml.js'
import { echoClient, startEchoServer, unary } from '../../fixtures/grpc/echo.js'

// `retryOn: refused-stream` against a real h2c upstream (node:http2) that refuses streams with
// RST_STREAM REFUSED_STREAM, or with a GOAWAY whose last-stream-id is below the stream: Envoy's
// remote refused stream reset. It is retried by `refused-stream` (and every reset condition),
// whatever the method, within the route's retry budget; without it the request ends 503 UR.

/** What the upstream does with the n-th stream it receives (0-based). */
type Act = 'refuse' | 'hold' | 'goaway' | 'internal-error' | 'answer'

async function upstream (act: (n: number) => Act): Promise<H2Upstream> {
  let held: { stream: ServerHttp2Stream; headers: IncomingHttpHeaders } | undefined
  const answer = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    let body = ''
    stream.setEncoding('utf8')
    stream.on('data', c => { body += c })
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'text/plain' })
      stream.end(`${String(headers[':method'])} ${body}`)
    })
  }
  return startH2Upstream((stream, headers, n) => {
    const what = act(n)
    if (what === 'refuse') { stream.close(constants.NGHTTP2_REFUSED_STREAM); return }
    if (what === 'internal-error') { stream.close(constants.NGHTTP2_INTERNAL_ERROR); return }
    if (what === 'hold') { held = { stream, headers }; return }
    if (what === 'goaway' && held !== undefined) {
      // Graceful shutdown: streams up to the held one are processed, this later one is refused.
      stream.session!.goaway(constants.NGHTTP2_NO_ERROR, held.stream.id)
      answer(held.stream, held.headers)
      return
    }
    answer(stream, headers)
  })
}

const CLUSTER = 'outbound|9080||app'

function config (port: number, retries: string | undefined): string {
  return `${GATEWAY}---
${gatewayVs(`  - ${retries !== undefined ? `retries: ${retries}\n    ` : ''}route:
    - destination: { host: app }
`)}---
${portService('app', { number: 9080, name: 'http2-web', protocol: 'HTTP2' }, [port])}`
}

async function setup (t: Teardown, act: (n: number) => Act, retries: string | undefined): Promise<{ up: H2Upstream; gw: InlineGateway; retries: () => number }> {
  const up = await upstream(act)
  t.teardown(() => up.close())
  const gw = await gatewayFor(t, config(up.port, retries), { overload: false })
  const cluster = clusterOf(gw, CLUSTER)
  return { up, gw, retries: () => cluster.stats.retries }
}

const post = (gw: InlineGateway): ReturnType<typeof rawRequest> =>
  rawRequest(gw.ingress, '/orders', { method: 'POST', headers: { host: 'app.example.com', 'content-type': 'text/plain' }, body: 'one order' })

t.test('retryOn refused-stream: a refused POST is retried, counted as a retry, and answered', async t => {
  const { up, gw, retries } = await setup(t, n => n === 0 ? 'refuse' : 'answer', '{ attempts: 2, retryOn: refused-stream }')
  const r = await post(gw)
  t.equal(r.status, 200, 'the client never sees the refusal')
  t.equal(r.body, 'POST one order', 'a non-idempotent request, its body sent again')
  t.equal(up.seen.length, 2, 'two streams reached the upstream')
  t.same(up.seen.map(h => h['x-envoy-attempt-count']), ['1', '2'], 'the second is try 2')
  t.equal(retries(), 1, 'the cluster counts one retry')
  await waitForLogs(gw.logs, 1)
  t.equal(gw.logs[0].response_code, '200')
  t.equal(gw.logs[0].response_flags, '-')
})

t.test('a GOAWAY whose last-stream-id is below the stream refuses it too: retried on a new session', async t => {
  const { up, gw, retries } = await setup(t, n => n === 0 ? 'hold' : n === 1 ? 'goaway' : 'answer', '{ attempts: 1, retryOn: refused-stream }')
  const first = post(gw)
  await until('the first stream upstream', () => up.seen.length === 1, 15000)
  const r = await Promise.all([first, post(gw)])
  t.same(r.map(x => x.status), [200, 200], 'both answered')
  t.same(r.map(x => x.body), ['POST one order', 'POST one order'])
  t.equal(up.seen.length, 3, 'the refused stream was sent again')
  t.equal(up.sessions.size, 2, 'on a fresh session')
  t.equal(retries(), 1)
})

t.test("Istio's default policy includes refused-stream", async t => {
  const { up, gw, retries } = await setup(t, n => n === 0 ? 'refuse' : 'answer', undefined)
  const r = await post(gw)
  t.equal(r.status, 200)
  t.equal(up.seen.length, 2)
  t.equal(retries(), 1)
})

t.test('without refused-stream: 503 UR at once, not resent', async t => {
  // connect-failure does not cover a refused stream (its headers went out), as in Envoy.
  const { up, gw, retries } = await setup(t, n => n === 0 ? 'refuse' : 'answer', '{ attempts: 2, retryOn: connect-failure }')
  const r = await post(gw)
  t.equal(r.status, 503)
  t.equal(r.body, 'upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset')
  t.equal(up.seen.length, 1, 'one stream only')
  t.equal(retries(), 0)
  await waitForLogs(gw.logs, 1)
  t.equal(gw.logs[0].response_flags, 'UR')
  t.equal(gw.logs[0].response_code, '503')
})

t.test('retries run out: 503 UR,URX after 1 + attempts streams', async t => {
  const { up, gw, retries } = await setup(t, () => 'refuse', '{ attempts: 2, retryOn: refused-stream, perTryTimeout: 2s }')
  const r = await post(gw)
  t.equal(r.status, 503)
  t.equal(r.body, 'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote refused stream reset')
  t.equal(up.seen.length, 3)
  t.same(up.seen.map(h => h['x-envoy-attempt-count']), ['1', '2', '3'])
  t.equal(retries(), 2)
  await waitForLogs(gw.logs, 1)
  t.equal(gw.logs[0].response_flags, 'UR,URX')
})

t.test('another reset code is a reset, not a refused stream', async t => {
  const { up, gw, retries } = await setup(t, () => 'internal-error', '{ attempts: 2, retryOn: refused-stream }')
  const r = await post(gw)
  t.equal(r.status, 503)
  t.notMatch(r.body, /refused stream/)
  t.equal(retries(), 0, 'refused-stream does not retry it')
  await waitForLogs(gw.logs, 1)
  t.notMatch(gw.logs[0].response_flags, /UR/)
  t.equal(up.seen.length, 2, 'only the one transparent resend any reset before the response gets')
})

/**
 * A grpc-js echo server behind an HTTP/2 front that refuses its first `refuse` streams once their
 * request is in, and relays the others (headers, messages, trailers) to the server.
 */
async function refusingGrpc (refuse: number): Promise<{ port: number; streams: () => number; close: () => Promise<void> }> {
  const echo = await startEchoServer({ name: 'echo' })
  const backend = connect(`http://127.0.0.1:${echo.port}`)
  backend.on('error', () => {})
  const front = await startH2Upstream((stream, headers, n) => {
    if (n < refuse) {
      stream.resume()
      stream.on('end', () => stream.close(constants.NGHTTP2_REFUSED_STREAM))
      return
    }
    const out: OutgoingHttpHeaders = {}
    for (const [k, v] of Object.entries(headers)) if (k !== ':scheme' && v !== undefined) out[k] = v
    const up = backend.request(out)
    up.on('error', () => stream.close(constants.NGHTTP2_INTERNAL_ERROR))
    let trailers: OutgoingHttpHeaders = {}
    up.on('response', h => {
      const { ':status': status, ...rest } = h
      stream.respond({ ':status': status, ...rest }, { waitForTrailers: true })
    })
    up.on('trailers', tr => { trailers = tr })
    stream.on('wantTrailers', () => stream.sendTrailers(trailers))
    stream.pipe(up)
    up.pipe(stream)
  })
  return {
    port: front.port,
    streams: () => front.seen.length,
    close: async () => {
      await front.close()
      backend.destroy()
      await echo.close()
    }
  }
}

t.test('a grpc-js unary call whose stream is refused succeeds under the default policy', async t => {
  const up = await refusingGrpc(1)
  t.teardown(() => up.close())
  const gw = await gatewayFor(t, `${gateway({ protocol: 'GRPC' })}---
${gatewayVs(routeTo('echo'))}---
${portService('echo', { number: 50051, name: 'grpc-echo', protocol: 'GRPC' }, [up.port])}`, { overload: false })
  const client = echoClient(new URL(gw.ingress).host, 'echo.example.com')
  t.teardown(() => client.close())
  const r = await unary(client, { text: 'hi', count: 1 })
  t.same(r.msg, { text: 'echo:hi', count: 2 }, 'answered by the server on the second stream')
  t.equal(r.status.code, 0)
  t.equal(up.streams(), 2, 'the refused stream, then its retry')
  await waitForLogs(gw.logs, 1)
  t.equal(gw.logs[0].response_flags, '-')
})
