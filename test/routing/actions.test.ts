import t from 'tap'
import { startInlineGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { seeded } from '../helpers/random.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitForLogs } from '../helpers/wait.js'
import { GATEWAY, gatewayVs, serviceEntry, subsetService, virtualService } from '../helpers/yaml.js'

// Redirects, direct responses, fault injection, CORS and mirroring through the real proxy.

t.test('redirect: exact Location for scheme, authority, port and derivePort combinations', async t => {
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match: [{ uri: { exact: /plain } }]
    redirect: { uri: /new }
  - match: [{ uri: { prefix: /old/ } }]
    redirect: { uri: /v2/, redirectCode: 308 }
  - match: [{ uri: { prefix: /pre/ } }]
    redirect: { uri: "%PREFIX()%/v3/" }
  - match: [{ uri: { exact: /https } }]
    redirect: { scheme: https, derivePort: FROM_PROTOCOL_DEFAULT }
  - match: [{ uri: { exact: /https-port } }]
    redirect: { scheme: https, port: 8443 }
  - match: [{ uri: { exact: /https-443 } }]
    redirect: { scheme: https, port: 443 }
  - match: [{ uri: { exact: /auth } }]
    redirect: { authority: other.example.com, redirectCode: 302 }
  - match: [{ uri: { exact: /auth-port } }]
    redirect: { authority: "other.example.com:9000" }
  - match: [{ uri: { exact: /reqport } }]
    redirect: { authority: other.example.com, derivePort: FROM_REQUEST_PORT }
  - match: [{ uri: { exact: /http80 } }]
    redirect: { scheme: http, port: 80, uri: /x }
`, 'r')}
`)
  t.teardown(() => gw.close())
  const bound = Number(new URL(gw.ingress).port)
  const cases: Array<[string, string, number, string]> = [
    // [path, host header, code, Location]
    ['/plain', 'shop.example.com', 301, 'http://shop.example.com/new'],
    ['/plain?q=1&r=2', 'shop.example.com', 301, 'http://shop.example.com/new?q=1&r=2'],
    ['/plain', 'shop.example.com:8080', 301, 'http://shop.example.com:8080/new'],
    // Istio replaces the entire path even on a prefix match; the query is kept.
    ['/old/a/b?x=1', 'shop.example.com', 308, 'http://shop.example.com/v2/?x=1'],
    ['/pre/a/b?x=1', 'shop.example.com', 301, 'http://shop.example.com/v3/a/b?x=1'],
    ['/https', 'shop.example.com:8080', 301, 'https://shop.example.com/https'],
    ['/https-port', 'shop.example.com', 301, 'https://shop.example.com:8443/https-port'],
    ['/https-443', 'shop.example.com', 301, 'https://shop.example.com/https-443'],
    ['/auth?k=v', 'shop.example.com', 302, 'http://other.example.com/auth?k=v'],
    ['/auth-port', 'shop.example.com', 301, 'http://other.example.com:9000/auth-port'],
    ['/reqport', 'shop.example.com', 301, `http://other.example.com:${bound}/reqport`],
    ['/http80', 'shop.example.com:8080', 301, 'http://shop.example.com/x']
  ]
  for (const [path, host, code, location] of cases) {
    const r = await rawRequest(gw.ingress, path, { headers: { host } })
    t.equal(r.status, code, `${path} code`)
    t.equal(r.headers.location, location, `${path} Location`)
  }
})

t.test('direct response with string and base64 bodies, content type from response headers', async t => {
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match: [{ uri: { exact: /health } }]
    directResponse: { status: 200, body: { string: '{"ok": true}' } }
    headers:
      response:
        set: { content-type: application/json }
  - match: [{ uri: { exact: /bytes } }]
    directResponse: { status: 418, body: { bytes: aGVsbG8= } }
  - match: [{ uri: { exact: /empty } }]
    directResponse: { status: 204 }
`, 'd')}
`)
  t.teardown(() => gw.close())
  let r = await rawRequest(gw.ingress, '/health')
  t.equal(r.status, 200)
  t.equal(r.body, '{"ok": true}')
  t.equal(r.headers['content-type'], 'application/json')
  r = await rawRequest(gw.ingress, '/bytes')
  t.equal(r.status, 418)
  t.equal(r.body, 'hello')
  t.equal(r.headers['content-type'], 'text/plain')
  r = await rawRequest(gw.ingress, '/empty')
  t.equal(r.status, 204)
  t.equal(r.body, '')
})

t.test('fault injection: percentages with a seeded random source, flags DI and FI', async t => {
  const up = await startUpstream('up')
  // A deterministic random source, so the measured fractions are reproducible.
  const random = seeded(42)
  const gw = await startInlineGateway(`
${virtualService(`  - match: [{ uri: { prefix: /abort } }]
    fault:
      abort: { httpStatus: 500, percentage: { value: 25.5 } }
    route:
    - destination: { host: app }
  - match: [{ uri: { prefix: /nopct } }]
    fault:
      abort: { httpStatus: 500 }
    route:
    - destination: { host: app }
  - match: [{ uri: { prefix: /delay } }]
    fault:
      delay: { fixedDelay: 0.1s, percent: 100 }
    route:
    - destination: { host: app }
  - match: [{ uri: { prefix: /grpc } }]
    fault:
      abort: { grpcStatus: UNAVAILABLE, percentage: { value: 100 } }
    route:
    - destination: { host: app }
`)}---
${serviceEntry('app', { v1: up.port })}`, { gatewayPorts: [], random })
  t.teardown(async () => { await gw.close(); await up.close() })
  let aborted = 0
  const N = 2000
  for (let i = 0; i < N; i++) {
    const r = await rawRequest(gw.mesh, '/abort', { headers: { host: 'app' } })
    if (r.status === 500) { aborted++; if (aborted === 1) t.equal(r.body, 'fault filter abort') }
  }
  t.ok(Math.abs(aborted / N - 0.255) < 0.03, `25.5 % aborted: measured ${(100 * aborted / N).toFixed(1)} %`)
  let none = 0
  for (let i = 0; i < 50; i++) if ((await rawRequest(gw.mesh, '/nopct', { headers: { host: 'app' } })).status === 200) none++
  t.equal(none, 50, 'a missing percentage means no fault')
  const start = Date.now()
  const d = await rawRequest(gw.mesh, '/delay', { headers: { host: 'app' } })
  t.equal(d.status, 200)
  t.ok(Date.now() - start >= 95, 'delayed by fixedDelay (deprecated integer percent 100)')
  const g = await rawRequest(gw.mesh, '/grpc', { headers: { host: 'app' } })
  t.equal(g.status, 200)
  t.equal(g.headers['grpc-status'], '14', 'gRPC abort UNAVAILABLE → grpc-status 14')
  await waitForLogs(gw.logs, N + 52)
  t.equal(gw.logs.find(l => l.path === '/abort' && l.response_code === '500')?.response_flags, 'FI')
  t.equal(gw.logs.find(l => l.path === '/delay')?.response_flags, 'DI')
})

t.test('CORS: preflight answered by the gateway, origin echoed on actual requests', async t => {
  const up = await startUpstream('up')
  const gw = await startInlineGateway(`
${virtualService(`  - match: [{ uri: { prefix: /ignore } }]
    corsPolicy:
      allowOrigins: [{ exact: https://a.example.com }]
      unmatchedPreflights: IGNORE
    route:
    - destination: { host: app }
  - corsPolicy:
      allowOrigins:
      - exact: https://a.example.com
      - regex: "https://.*\\\\.b\\\\.example\\\\.com"
      allowMethods: [GET, POST]
      allowHeaders: [x-custom, content-type]
      exposeHeaders: [x-upstream]
      maxAge: 24h
      allowCredentials: true
    route:
    - destination: { host: app }
`)}---
${serviceEntry('app', { v1: up.port })}`, { gatewayPorts: [] })
  t.teardown(async () => { await gw.close(); await up.close() })
  const pre = (origin: string, path = '/x'): ReturnType<typeof rawRequest> => rawRequest(gw.mesh, path, { method: 'OPTIONS', headers: { host: 'app', origin, 'access-control-request-method': 'POST' } })
  let r = await pre('https://a.example.com')
  t.equal(r.status, 200)
  t.match(r.headers, {
    'access-control-allow-origin': 'https://a.example.com',
    'access-control-allow-methods': 'GET,POST',
    'access-control-allow-headers': 'x-custom,content-type',
    'access-control-max-age': '86400',
    'access-control-allow-credentials': 'true'
  })
  const before = up.seen.length
  r = await pre('https://x.b.example.com')
  t.equal(r.headers['access-control-allow-origin'], 'https://x.b.example.com', 'regex origin echoed')
  t.equal(up.seen.length, before, 'allowed preflights never reach the upstream')
  r = await pre('https://evil.example.com')
  t.equal(r.headers['access-control-allow-origin'], undefined, 'unmatched origin gets no CORS headers')
  t.equal(up.seen.length, before + 1, 'unmatched preflight forwarded (default FORWARD)')
  r = await pre('https://evil.example.com', '/ignore')
  t.equal(r.status, 200)
  t.equal(up.seen.length, before + 1, 'IGNORE answers without forwarding')
  r = await rawRequest(gw.mesh, '/x', { headers: { host: 'app', origin: 'https://a.example.com' } })
  t.equal(r.headers['access-control-allow-origin'], 'https://a.example.com')
  t.equal(r.headers['access-control-expose-headers'], 'x-upstream')
  r = await rawRequest(gw.mesh, '/x', { headers: { host: 'app', origin: 'https://evil.example.com' } })
  t.equal(r.headers['access-control-allow-origin'], undefined)
})

t.test('mirror: copies reach the mirror with a -shadow host; its answer never reaches the client', async t => {
  const primary = await startUpstream('primary')
  const mirror = await startUpstream('mirror', (_req, res) => { setTimeout(() => { res.writeHead(500); res.end('mirror failed') }, 300) })
  const gw = await startInlineGateway(`
${virtualService(`  - route:
    - destination: { host: app, subset: v1 }
    mirror: { host: app, subset: v2 }
`)}---
${subsetService('app', { v1: primary.port, v2: mirror.port })}`, { gatewayPorts: [] })
  t.teardown(async () => { await gw.close(); await primary.close(); await mirror.close() })
  const start = Date.now()
  const r = await rawRequest(gw.mesh, '/m?x=1', { method: 'POST', headers: { host: 'app:9080', 'content-type': 'text/plain' }, body: 'payload' })
  t.equal(r.status, 200, 'the client sees the primary')
  t.equal(JSON.parse(r.body).upstream, 'primary')
  t.ok(Date.now() - start < 250, 'not delayed by the slow mirror')
  const big = 'y'.repeat(200_000)
  const r2 = await rawRequest(gw.mesh, '/big', { method: 'POST', headers: { host: 'app:9080', 'transfer-encoding': 'chunked' }, body: big })
  t.equal(JSON.parse(r2.body).body.length, big.length, 'a streamed body reaches the primary whole')
  const deadline = Date.now() + 2000
  while (mirror.seen.length < 2 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(mirror.seen.length, 2, 'both requests mirrored')
  t.equal(mirror.seen[0].headers.host, 'app-shadow:9080', 'Host gets -shadow')
  t.equal(mirror.seen[0].body, 'payload', 'body mirrored')
  t.equal(mirror.seen[0].url, '/m?x=1')
  t.equal(mirror.seen[1].body.length, big.length, 'streamed body mirrored (teed)')
})
