import t from 'tap'
import { gatewayFor } from '../../helpers/gateway.js'
import { rawRequest } from '../../helpers/raw-http.js'
import { startUpstream, upstreamFor, upstreamsFor } from '../../helpers/upstream.js'
import { waitForLogs } from '../../helpers/wait.js'
import { APP_SUBSETS, gateway, gatewayApp, serviceEntry, subsetService, virtualService } from '../../helpers/yaml.js'

// Plugin tests: meshgate with real upstream HTTP servers on loopback (port 0).

t.test('routes by path, header and query to the right upstream', async t => {
  const [v1, v2, v3] = await upstreamsFor(t, 'v1', 'v2', 'v3')
  const gw = await gatewayFor(t, gatewayApp(`  - name: by-header
    match:
    - headers: { end-user: { exact: jason } }
    route:
    - destination: { host: app, subset: v2 }
  - name: by-query
    match:
    - queryParams: { canary: { exact: "yes" } }
    route:
    - destination: { host: app, subset: v3 }
  - name: by-path
    match:
    - uri: { prefix: /v3/ }
      name: v3path
    route:
    - destination: { host: app, subset: v3 }
  - name: exact
    match:
    - uri: { exact: /productpage }
    route:
    - destination: { host: app, subset: v1 }
`, { v1: v1.port, v2: v2.port, v3: v3.port }, APP_SUBSETS))

  const cases: Array<{ name: string; target: string; headers?: Record<string, string>; want: string | number }> = [
    { name: 'exact path', target: '/productpage', want: 'v1' },
    { name: 'exact path ignores the query', target: '/productpage?u=normal', want: 'v1' },
    { name: 'exact path is not a prefix', target: '/productpage/x', want: 404 },
    { name: 'header match wins (first route)', target: '/productpage', headers: { 'end-user': 'jason' }, want: 'v2' },
    { name: 'header value must match exactly', target: '/productpage', headers: { 'end-user': 'jasonx' }, want: 'v1' },
    { name: 'query param', target: '/anything?canary=yes', want: 'v3' },
    { name: 'query param value must match', target: '/anything?canary=no', want: 404 },
    { name: 'prefix', target: '/v3/reviews', want: 'v3' },
    { name: 'no route', target: '/nothing', want: 404 }
  ]
  for (const c of cases) {
    const res = await rawRequest(gw.ingress, c.target, { headers: c.headers })
    if (typeof c.want === 'number') {
      t.equal(res.status, c.want, `${c.name}: status`)
    } else {
      t.equal(res.status, 200, `${c.name}: status`)
      t.equal(JSON.parse(res.body).upstream, c.want, `${c.name}: upstream`)
    }
  }
  await waitForLogs(gw.logs, cases.length)
  const nr = gw.logs.find(l => l.path === '/nothing')
  t.equal(nr?.response_flags, 'NR', 'no route is logged with NR')
  t.equal(nr?.response_code, '404')
  const named = gw.logs.find(l => l.path === '/v3/reviews')
  t.equal(named?.route_name, 'by-path.v3path', 'route name is route.match')
  t.equal(named?.upstream_cluster, 'outbound|9080|v3|app.default.svc.cluster.local')
  t.equal(named?.upstream_host, `127.0.0.1:${v3.port}`)
})

t.test('forwarding: Host kept, rewrites, header operations, forwarding headers', async t => {
  const up = await upstreamFor(t, 'up')
  const gw = await gatewayFor(t, gatewayApp(`  - match:
    - uri: { prefix: /api/ }
    rewrite: { uri: /v2/ }
    route:
    - destination: { host: app }
  - match:
    - uri: { exact: /old }
    rewrite: { uri: /new, authority: rewritten.example.com }
    route:
    - destination: { host: app }
  - match:
    - uri: { regex: "/service/[^/]+/.*" }
    rewrite:
      uriRegexRewrite: { match: "^/service/([^/]+)(/.*)$", rewrite: "/customprefix\\\\2/\\\\1" }
    route:
    - destination: { host: app }
  - match:
    - uri: { prefix: /headers }
    headers:
      request:
        set: { x-set: route }
        add: { x-add: route-added }
        remove: [x-remove-me]
      response:
        set: { x-resp: route }
        remove: [x-upstream]
    route:
    - destination: { host: app }
      headers:
        request:
          set: { x-dest: dest, x-set: dest }
        response:
          add: { x-resp-dest: dest }
  - route:
    - destination: { host: app }
`, { v1: up.port }))

  let res = await rawRequest(gw.ingress, '/api/items?x=1', { headers: { host: 'shop.example.com:8080' } })
  let echo = JSON.parse(res.body)
  t.equal(echo.url, '/v2/items?x=1', 'prefix rewrite replaces the matched prefix and keeps the query')
  t.equal(echo.headers.host, 'shop.example.com:8080', 'client Host kept')
  t.equal(echo.headers['x-forwarded-for'], '127.0.0.1', 'x-forwarded-for set to the peer')
  t.equal(echo.headers['x-forwarded-proto'], 'http')
  t.match(echo.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'x-request-id generated')
  t.ok(res.headers['x-envoy-upstream-service-time'] !== undefined, 'upstream service time header')

  res = await rawRequest(gw.ingress, '/old?q=2', { headers: { 'x-request-id': 'abc-123', 'x-forwarded-for': '10.1.1.1' } })
  echo = JSON.parse(res.body)
  t.equal(echo.url, '/new?q=2', 'exact-match rewrite replaces the whole path, keeps the query')
  t.equal(echo.headers.host, 'rewritten.example.com', 'authority rewrite')
  t.equal(echo.headers['x-request-id'], 'abc-123', 'x-request-id passed on')
  t.equal(echo.headers['x-forwarded-for'], '10.1.1.1,127.0.0.1', 'x-forwarded-for appended, joined with "," as Envoy does')

  res = await rawRequest(gw.ingress, '/service/books/a/b?z=1')
  t.equal(JSON.parse(res.body).url, '/customprefix/a/b/books?z=1', 'uriRegexRewrite with groups')

  res = await rawRequest(gw.ingress, '/headers', {
    headers: { 'x-remove-me': '1', 'x-add': 'client', connection: 'keep-alive, x-hop', 'x-hop': 'secret', 'keep-alive': 'timeout=5' }
  })
  echo = JSON.parse(res.body)
  // One destination: Istio appends its operations after the route's (route.go processDestination),
  // so its set wins; with weighted destinations the route's wins (test/fidelity/headers.test.ts).
  t.equal(echo.headers['x-set'], 'dest', 'single destination: destination-level set wins over route-level')
  t.equal(echo.headers['x-dest'], 'dest', 'destination-level set applied')
  t.equal(echo.headers['x-add'], 'client, route-added', 'add appends a value')
  t.equal(echo.headers['x-remove-me'], undefined, 'remove')
  t.equal(echo.headers['x-hop'], undefined, 'headers named in Connection are not forwarded')
  t.equal(echo.headers['keep-alive'], undefined, 'hop-by-hop headers are not forwarded')
  t.equal(res.headers['x-resp'], 'route', 'response set')
  t.equal(res.headers['x-resp-dest'], 'dest', 'response add at destination level')
  t.equal(res.headers['x-upstream'], undefined, 'response remove')

  res = await rawRequest(gw.ingress, '/post', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a": 1}' })
  echo = JSON.parse(res.body)
  t.equal(echo.body, '{"a": 1}', 'JSON body forwarded byte for byte, not re-serialised')
  res = await rawRequest(gw.ingress, '/post', { method: 'PUT', headers: { 'content-type': 'bogus/x;;' }, body: 'raw' })
  t.equal(JSON.parse(res.body).body, 'raw', 'any content type passes through')
  res = await rawRequest(gw.ingress, '/post', { method: 'DELETE', body: 'del-body', headers: { 'content-length': '8' } })
  t.equal(JSON.parse(res.body).body, 'del-body', 'DELETE with a body')
})

t.test('error statuses and flags', async t => {
  const up = await upstreamFor(t, 'up')
  const closed = await startUpstream('closed')
  await closed.close()
  const gw = await gatewayFor(t, `${gateway({ hosts: ['bookinfo.example.com'] })}---
${virtualService(`  - match: [{ uri: { prefix: /nc } }]
    route:
    - destination: { host: app, subset: v9 }
  - match: [{ uri: { prefix: /nohost } }]
    route:
    - destination: { host: nowhere }
  - match: [{ uri: { prefix: /uf } }]
    route:
    - destination: { host: dead }
  - match: [{ uri: { prefix: /uh } }]
    route:
    - destination: { host: empty }
  - match: [{ uri: { prefix: /ok } }]
    route:
    - destination: { host: app }
`, { name: 'app', hosts: ['bookinfo.example.com'], gateways: ['gw'] })}---
${serviceEntry('app', { v1: up.port })}
---
${serviceEntry('dead', { v1: closed.port })}
---
${serviceEntry('empty', {})}`)
  t.ok(gw.problems.some(p => p.message.includes('v9')), 'undefined subset is a load warning')
  const h = { host: 'bookinfo.example.com' }
  const cases = [
    { target: '/ok', status: 200, flag: '-' },
    { target: '/nc', status: 503, flag: 'NC' },
    { target: '/nohost', status: 503, flag: 'NC' },
    { target: '/uf', status: 503, flag: 'UF,URX' },
    { target: '/uh', status: 503, flag: 'UH', body: 'no healthy upstream' },
    { target: '/missing', status: 404, flag: 'NR' }
  ]
  for (const c of cases) {
    const res = await rawRequest(gw.ingress, c.target, { headers: h })
    t.equal(res.status, c.status, `${c.target} status`)
    if (c.body !== undefined) t.equal(res.body, c.body, `${c.target} body`)
  }
  const other = await rawRequest(gw.ingress, '/ok', { headers: { host: 'other.example.com' } })
  t.equal(other.status, 404, 'a host no virtual host covers is 404')
  const bad = await rawRequest(gw.ingress, '/ok/%zz', { headers: h })
  t.equal(bad.status, 400, 'malformed percent escape is 400')
  await waitForLogs(gw.logs, cases.length + 2)
  for (const c of cases) {
    const line = gw.logs.find(l => l.path === c.target)
    t.equal(line?.response_flags, c.flag, `${c.target} flag`)
    t.equal(line?.response_code, String(c.status), `${c.target} logged code`)
  }
  t.equal(gw.logs.find(l => l.path === '/nc')?.upstream_cluster, '-', 'NC: Envoy has no cluster info to log')
  t.equal(gw.logs.find(l => l.path === '/uf')?.upstream_transport_failure_reason, 'ECONNREFUSED')
})

t.test('access log: one JSON line per request with exactly the documented fields', async t => {
  const up = await upstreamFor(t, 'up')
  const gw = await gatewayFor(t, gatewayApp(`  - name: main
    route:
    - destination: { host: app }
`, { v1: up.port }))
  const res = await rawRequest(gw.ingress, '/reviews/0?x=1', {
    method: 'POST',
    body: 'hello',
    headers: { 'user-agent': 'tap-test', 'x-request-id': 'rid-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', host: 'shop:8080' }
  })
  t.equal(res.status, 200)
  await waitForLogs(gw.logs, 1)
  const line = gw.logs[0]
  t.same(Object.keys(line), [
    'authority', 'bytes_received', 'bytes_sent', 'downstream_local_address', 'downstream_remote_address', 'duration',
    'fallback_final_cluster_name', 'fallback_path', 'fallback_result', 'method', 'path', 'protocol', 'request_id',
    'response_code', 'response_flags', 'route_name', 'start_time', 'trace_id', 'upstream_cluster', 'upstream_host',
    'upstream_local_address', 'upstream_service_time', 'upstream_transport_failure_reason', 'user_agent', 'x_forwarded_for'
  ], 'exactly the fields of docs/operations.md#access-log')
  t.match(line, {
    authority: 'shop:8080',
    bytes_received: '5',
    bytes_sent: String(Buffer.byteLength(res.body)),
    method: 'POST',
    path: '/reviews/0?x=1',
    protocol: 'HTTP/1.1',
    request_id: 'rid-1',
    response_code: '200',
    response_flags: '-',
    route_name: 'main',
    trace_id: '0af7651916cd43dd8448eb211c80319c',
    upstream_cluster: 'outbound|9080||app.default.svc.cluster.local',
    upstream_host: `127.0.0.1:${up.port}`,
    user_agent: 'tap-test',
    x_forwarded_for: '127.0.0.1',
    fallback_path: '-',
    fallback_final_cluster_name: '-',
    fallback_result: '-'
  })
  t.match(line.downstream_remote_address, /^127\.0\.0\.1:\d+$/)
  t.match(line.downstream_local_address, /^127\.0\.0\.1:\d+$/)
  t.match(line.start_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  t.match(line.duration, /^\d+$/)
  t.match(line.upstream_service_time, /^\d+$/)
})

t.test('mesh listener: Host and absolute-form targets select the service', async t => {
  const [v1, v2] = await upstreamsFor(t, 'v1', 'v2')
  const gw = await gatewayFor(t, `${virtualService(`  - match:
    - headers: { end-user: { exact: jason } }
    route:
    - destination: { host: reviews, subset: v2 }
  - route:
    - destination: { host: reviews, subset: v1 }
`, { hosts: ['reviews'] })}---
${subsetService('reviews', { v1: v1.port, v2: v2.port })}`, { gatewayPorts: [] })
  const spellings = ['reviews:9080', 'reviews', 'reviews.default:9080', 'reviews.default.svc', 'reviews.default.svc.cluster.local:9080']
  for (const host of spellings) {
    const res = await rawRequest(gw.mesh, '/reviews/0', { headers: { host } })
    t.equal(JSON.parse(res.body).upstream, 'v1', `Host ${host}`)
  }
  const jason = await rawRequest(gw.mesh, '/reviews/0', { headers: { host: 'reviews:9080', 'end-user': 'jason' } })
  t.equal(JSON.parse(jason.body).upstream, 'v2', 'header rule applies on the mesh')
  const abs = await rawRequest(gw.mesh, 'http://reviews:9080/reviews/0?a=b', { headers: { host: 'ignored:1' } })
  const echo = JSON.parse(abs.body)
  t.equal(echo.upstream, 'v1', 'absolute-form target routes by its authority')
  t.equal(echo.url, '/reviews/0?a=b', 'forwarded in origin form')
  t.equal(echo.headers.host, 'reviews:9080', 'Host taken from the absolute-form authority')
  const unknown = await rawRequest(gw.mesh, '/x', { headers: { host: 'ratings:9080' } })
  t.equal(unknown.status, 404, 'unknown service on the mesh is NR')
})
