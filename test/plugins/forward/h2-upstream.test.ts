import { connect, createSecureServer, createServer, type Http2Server, type Http2SecureServer, type IncomingHttpHeaders } from 'node:http2'
import t from 'tap'
import { makePki } from '../../helpers/certs.js'
import { gatewayFor, type InlineGateway } from '../../helpers/gateway.js'
import { startH2Upstream, type H2Upstream } from '../../helpers/h2-upstream.js'
import { rawRequest } from '../../helpers/raw-http.js'
import { until, waitForLogs } from '../../helpers/wait.js'
import { GATEWAY, destinationRule, gateway, gatewayVs, portService, routeTo } from '../../helpers/yaml.js'

// HTTP/2 to upstreams that are plain HTTP/2 servers (node:http2, which refuse HTTP/1.1):
// h2UpgradePolicy UPGRADE on an HTTP port gives h2c with prior knowledge; an HTTP2 port with TLS
// origination (SIMPLE) gives h2 by ALPN; HTTP/1.1 clients are served through either; sessions
// are multiplexed and reused.

/** An HTTP/2 upstream answering JSON (what it got) with a trailer, `/slow…` paths 150 ms late. */
function h2Upstream (server: Http2Server | Http2SecureServer): Promise<H2Upstream> {
  return startH2Upstream((stream, headers) => {
    let body = ''
    stream.setEncoding('utf8')
    stream.on('data', c => { body += c })
    stream.on('end', () => setTimeout(() => {
      if (stream.destroyed) return
      stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-proto': 'h2' }, { waitForTrailers: true })
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': String(body.length) }))
      stream.end(JSON.stringify({ path: headers[':path'], authority: headers[':authority'], scheme: headers[':scheme'], body }))
    }, String(headers[':path']).startsWith('/slow') ? 150 : 0))
  }, server)
}

function config (port: number, servicePort: { number: number; name: string; protocol?: string }, dr: string, opts: { http?: string; gateway?: string } = {}): string {
  return `${opts.gateway ?? GATEWAY}---
${gatewayVs(opts.http ?? routeTo())}---
${portService('app', servicePort, [port])}---
${destinationRule('app', `  trafficPolicy:\n${dr}`)}`
}

t.test('h2UpgradePolicy UPGRADE: h2c with prior knowledge to an HTTP/2-only server', async t => {
  const up = await h2Upstream(createServer())
  t.teardown(() => up.close())
  const gw = await gatewayFor(t, config(up.port, { number: 9080, name: 'web', protocol: 'HTTP' }, '    connectionPool: { http: { h2UpgradePolicy: UPGRADE } }'), { overload: false })
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => rawRequest(gw.ingress, `/p/${i}`, { headers: { host: 'app.example.com' } })))
  for (const [i, r] of results.entries()) {
    t.equal(r.status, 200, `request ${i} served`)
    const b = JSON.parse(r.body)
    t.same([b.path, b.authority, b.scheme], [`/p/${i}`, 'app.example.com', 'http'], 'path, Host as :authority, http scheme')
  }
  t.equal(results[0].headers['x-proto'], 'h2')
  const post = await rawRequest(gw.ingress, '/post', { method: 'POST', headers: { host: 'app.example.com', 'content-type': 'text/plain' }, body: 'hello h2' })
  t.equal(JSON.parse(post.body).body, 'hello h2', 'request body sent on the stream')
  t.equal(up.sessions.size, 1, 'one multiplexed session carried every request')
  t.notOk(up.seen.some(h => h.connection !== undefined || h['transfer-encoding'] !== undefined || h.host !== undefined), 'no HTTP/1.1 connection headers upstream')
  await waitForLogs(gw.logs, 9)
  t.ok(gw.logs.every(l => l.response_code === '200'))
})

t.test('an HTTP2 port with TLS origination: h2 by ALPN, the CA verified', async t => {
  const pki = makePki(['app.internal'])
  // meshgate originating TLS to an HTTP/2 upstream whose certificate `signer` issued, trusting pki's CA.
  const behindTls = async (signer: ReturnType<typeof makePki>): Promise<InlineGateway> => {
    const srv = signer.server('app.internal')
    const up = await h2Upstream(createSecureServer({ cert: signer.read(srv.cert), key: signer.read(srv.key) }))
    t.teardown(() => up.close())
    return gatewayFor(t, config(up.port, { number: 9443, name: 'web', protocol: 'HTTP2' },
      `    tls: { mode: SIMPLE, sni: app.internal, caCertificates: ${pki.ca} }`), { overload: false })
  }
  const gw = await behindTls(pki)
  const r = await rawRequest(gw.ingress, '/secure', { headers: { host: 'app.example.com' } })
  t.equal(r.status, 200)
  t.same(JSON.parse(r.body).scheme, 'https', 'over TLS')
  t.equal(r.headers['x-proto'], 'h2')

  // A server whose certificate the CA did not sign: a connect failure, 503 UF.
  const gw2 = await behindTls(makePki(['app.internal']))
  const bad = await rawRequest(gw2.ingress, '/secure', { headers: { host: 'app.example.com' } })
  t.equal(bad.status, 503, 'unverified upstream refused')
  await waitForLogs(gw2.logs, 1)
  t.match(gw2.logs[0].response_flags, /UF/)
})

t.test('trailers reach an HTTP/2 client; maxConcurrentStreams opens more sessions', async t => {
  const up = await h2Upstream(createServer())
  t.teardown(() => up.close())
  // An HTTP2 Gateway port; the service port's protocol comes from its name.
  const yaml = config(up.port, { number: 9080, name: 'http2-web' }, '    connectionPool: { http: { maxConcurrentStreams: 2 } }', { gateway: gateway({ protocol: 'HTTP2' }) })
  const gw = await gatewayFor(t, yaml, { overload: false })
  const session = connect(gw.ingress)
  t.teardown(() => session.close())
  const call = (path: string, body: string): Promise<{ status: number; body: string; trailers: IncomingHttpHeaders }> => new Promise((resolve, reject) => {
    const s = session.request({ ':path': path, ':authority': 'app.example.com', ':method': 'POST' })
    let status = 0
    let text = ''
    let trailers: IncomingHttpHeaders = {}
    s.on('response', h => { status = Number(h[':status']) })
    s.on('trailers', tr => { trailers = tr })
    s.setEncoding('utf8')
    s.on('data', c => { text += c })
    s.on('end', () => resolve({ status, body: text, trailers }))
    s.on('error', reject)
    s.end(body)
  })
  const r = await call('/t', 'abcd')
  t.equal(r.status, 200)
  t.equal(JSON.parse(r.body).body, 'abcd')
  t.equal(r.trailers['x-checksum'], '4', 'the upstream trailer passed through')
  const all = await Promise.all(Array.from({ length: 6 }, (_, i) => call(`/slow/${i}`, 'x')))
  t.ok(all.every(a => a.status === 200 && a.trailers['x-checksum'] === '1'))
  t.ok(up.sessions.size >= 3, `six concurrent streams at two per session need three sessions (${up.sessions.size})`)
})

t.test('a mirror to an HTTP/2 cluster is sent over HTTP/2', async t => {
  const main = await h2Upstream(createServer())
  const shadow = await h2Upstream(createServer())
  t.teardown(async () => { await main.close(); await shadow.close() })
  const yaml = `${config(main.port, { number: 9080, name: 'grpc-web' }, '    connectionPool: { http: { maxConcurrentStreams: 100 } }',
    { http: `${routeTo()}    mirror: { host: shadow }\n` })}
---
${portService('shadow', { number: 9080, name: 'http2' }, [shadow.port])}`
  const gw = await gatewayFor(t, yaml, { overload: false })
  const r = await rawRequest(gw.ingress, '/m', { method: 'POST', headers: { host: 'app.example.com', 'content-length': '3' }, body: 'abc' })
  t.equal(r.status, 200)
  await until('the shadow got its copy', () => shadow.seen.length === 1)
  t.equal(shadow.seen[0][':authority'], 'app.example.com-shadow', 'Host with -shadow, over HTTP/2')
  t.equal(shadow.seen[0][':path'], '/m')
})
