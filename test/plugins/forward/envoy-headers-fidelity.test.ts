// Envoy/Istio behaviour of the router and connection manager that a client or upstream can
// observe: repeated-header matching, x-forwarded-for, server, x-envoy-* request headers, local
// reply headers and bodies, and the access-log fields of local replies (P1–P16 of the audit).
import t from 'tap'
import { gatewayFor } from '../../helpers/gateway.js'
import { overflowThird } from '../../helpers/pool-overflow.js'
import { echoed, loggedRequest, rawRequest } from '../../helpers/raw-http.js'
import { closedPort, upstreamFor } from '../../helpers/upstream.js'
import { waitForLogs } from '../../helpers/wait.js'
import { gateway, gatewayApp, serviceEntry, virtualService } from '../../helpers/yaml.js'

t.test('Envoy request/response headers', async t => {
  const up = await upstreamFor(t, 'v1')
  const gw = await gatewayFor(t, gatewayApp(`  - name: hdr
    match: [{ headers: { x-multi: { exact: "a,b" } } }]
    route: [{ destination: { host: app } }]
  - name: rw
    match: [{ uri: { prefix: /rw/ } }]
    rewrite: { uri: /x/ }
    timeout: 2s
    route: [{ destination: { host: app } }]
  - route: [{ destination: { host: app } }]`, { v1: up.port }))

  // P1 Envoy joins repeated header values with "," (no space) before matching
  // (HeaderUtility::getAllOfHeaderAsString); Node joins them with ", ".
  const multi = await rawRequest(gw.ingress, '/m', { headers: { 'x-multi': ['a', 'b'] } })
  t.equal(echoed(multi).url, '/m')
  t.equal(multi.status, 200)
  await waitForLogs(gw.logs, 1, 5000)
  t.equal(gw.logs[0].route_name, 'hdr', 'P1 two x-multi lines match exact "a,b"')

  // P2 Envoy appends the peer to x-forwarded-for with "," and no space (Utility::appendXff).
  const xff = await rawRequest(gw.ingress, '/x', { headers: { 'x-forwarded-for': '203.0.113.7' } })
  t.equal(echoed(xff).headers['x-forwarded-for'], '203.0.113.7,127.0.0.1', 'P2 XFF delimiter')

  // P3 Istio gateways set `server: istio-envoy` (OVERWRITE) on every response (proxy_headers.go).
  t.equal(xff.headers.server, 'istio-envoy', 'P3 server header')

  // P4 Istio enables include_request_attempt_count: the upstream sees x-envoy-attempt-count.
  t.equal(echoed(xff).headers['x-envoy-attempt-count'], '1', 'P4 x-envoy-attempt-count')

  // P5 With a prefix/regex rewrite Envoy sends the original path as x-envoy-original-path
  // (finalizeRequestHeaders, envoy headers not suppressed in Istio); P6 a route timeout is
  // announced as x-envoy-expected-rq-timeout-ms (FilterUtility::finalTimeout).
  const rw = echoed(await rawRequest(gw.ingress, '/rw/a?q=1'))
  t.equal(rw.headers['x-envoy-original-path'], '/rw/a?q=1', 'P5 x-envoy-original-path')
  t.equal(rw.headers['x-envoy-expected-rq-timeout-ms'], '2000', 'P6 x-envoy-expected-rq-timeout-ms')

})

t.test('local replies and their access-log fields', async t => {
  const up = await upstreamFor(t, 'v1')
  const dead = await closedPort()
  const gw = await gatewayFor(t, `${gateway({ hosts: ['shop.example.com'] })}---
${virtualService(`  - name: nc
    match: [{ uri: { prefix: /nc } }]
    route: [{ destination: { host: nowhere.example } }]
  - name: fi
    match: [{ uri: { prefix: /fi } }]
    fault: { abort: { httpStatus: 500, percentage: { value: 100 } } }
    route: [{ destination: { host: app } }]
  - name: uf
    match: [{ uri: { prefix: /uf } }]
    route: [{ destination: { host: dead } }]
`, { name: 'shop', hosts: ['shop.example.com'], gateways: ['gw'] })}---
${serviceEntry('app', { v1: up.port })}
---
${serviceEntry('dead', { v1: dead })}`)
  const host = { host: 'shop.example.com', 'x-forwarded-for': '203.0.113.7' }
  const send = (path: string): ReturnType<typeof loggedRequest> => loggedRequest(gw, path, host)
  const nr = await send('/none')
  t.equal(nr.status, 404)
  t.equal(nr.headers['content-type'], undefined, 'P7 Envoy sends no content-type on an empty local reply')
  // P8 The HCM appends x-forwarded-for before routing, so NR/FI lines log it too.
  t.equal(nr.log.x_forwarded_for, '203.0.113.7,127.0.0.1', 'P8 x_forwarded_for logged on NR')

  // P9 NC: Envoy has no cluster info, so %UPSTREAM_CLUSTER% is "-".
  const nc = await send('/nc')
  t.equal(nc.log.response_flags, 'NC')
  t.equal(nc.log.upstream_cluster, '-', 'P9 upstream_cluster on NC')

  // P10 FI: the route's cluster is resolved before the fault filter runs; Istio logs it
  // (e.g. `500 FI fault_filter_abort … "-" outbound|9080|v1|ratings.default.svc.cluster.local`).
  const fi = await send('/fi')
  t.equal(fi.log.response_flags, 'FI')
  t.equal(fi.log.upstream_cluster, 'outbound|9080||app.default.svc.cluster.local', 'P10 upstream_cluster on FI')
  t.equal(fi.log.x_forwarded_for, '203.0.113.7,127.0.0.1', 'P8 x_forwarded_for logged on FI')

  // P11 Envoy's reset body (router.cc onUpstreamReset + Http::Utility::resetReasonToString):
  // retried → "retried and the latest reset reason: remote connection failure, transport
  // failure reason: delayed connect error: …".
  const uf = await send('/uf')
  t.equal(uf.log.response_flags, 'UF,URX')
  t.match(uf.body, /^upstream connect error or disconnect\/reset before headers\. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: (111|Connection refused)$/, 'P11 UF body after retries')
})

t.test('UO carries x-envoy-overloaded', async t => {
  const { third, admitted } = await overflowThird(t, '{ tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } }')
  t.equal(third.status, 503)
  // P12 router.cc onUpstreamAbort: a dropped (overflow) request gets x-envoy-overloaded: true.
  t.equal(third.headers['x-envoy-overloaded'], 'true', 'P12 x-envoy-overloaded')
  await admitted()
})

t.test('mesh listener (sidecar outbound) headers', async t => {
  const up = await upstreamFor(t, 'v1')
  const gw = await gatewayFor(t, serviceEntry('app', { v1: up.port }))
  const r = await rawRequest(gw.mesh, '/x', { headers: { host: 'app:9080' } })
  t.equal(r.status, 200)
  // P13 Sidecar outbound HCMs do not use the remote address: x-forwarded-for is not appended.
  t.equal(echoed(r).headers['x-forwarded-for'], undefined, 'P13 no XFF added by the mesh listener')
  // P14 Sidecar outbound keeps Envoy's default server name "envoy" (proxy_headers.go).
  t.equal(r.headers.server, 'envoy', 'P14 server: envoy on the mesh listener')
})

t.test('the access log sees the request headers as the router left them', async t => {
  const up = await upstreamFor(t, 'v1')
  const gw = await gatewayFor(t, gatewayApp(`  - rewrite: { authority: rewritten.example }
    route: [{ destination: { host: app } }]`, { v1: up.port }))
  t.equal((await rawRequest(gw.ingress, '/a', { headers: { host: 'shop.example.com' } })).status, 200)
  await waitForLogs(gw.logs, 1, 5000)
  // P15 %REQ(:AUTHORITY)% reads the header map the router rewrote in place (finalizeRequestHeaders
  // → host_rewrite_literal), which is why Istio's format needs X-ENVOY-ORIGINAL-PATH for the path.
  t.equal(gw.logs[0].authority, 'rewritten.example', 'P15 logged authority after rewrite.authority')
})

t.test('a weighted destination\'s set.host rewrites the authority', async t => {
  const up = await upstreamFor(t, 'v1')
  const gw = await gatewayFor(t, gatewayApp(`  - route:
    - destination: { host: app }
      weight: 100
      headers: { request: { set: { host: weighted.example } } }
    - destination: { host: app }
      weight: 0`, { v1: up.port }))
  // P16 route.go processWeightedDestination: ClusterWeight.HostRewriteLiteral (applied unless
  // the route itself rewrites the authority, Envoy WeightedClusterEntry::finalizeRequestHeaders).
  const r = await rawRequest(gw.ingress, '/a', { headers: { host: 'shop.example.com' } })
  t.equal(echoed(r).headers.host, 'weighted.example', 'P16 weighted destination authority')
})
