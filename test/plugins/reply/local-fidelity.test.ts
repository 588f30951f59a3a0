import t from 'tap'
import { gatewayFor } from '../../helpers/gateway.js'
import { overflowThird } from '../../helpers/pool-overflow.js'
import { loggedRequest } from '../../helpers/raw-http.js'
import { closedPort, upstreamFor } from '../../helpers/upstream.js'
import { waitForLogs } from '../../helpers/wait.js'
import { APP_SUBSETS, gateway, serviceEntry, virtualService } from '../../helpers/yaml.js'

// Envoy's local replies (status, body, response flag, details) and the access-log fields that go
// with them, observed from a real meshgate. Bodies are Envoy's (source/common/router/router.cc:
// onUpstreamTimeoutAbort "upstream request timeout"; onUpstreamReset "upstream connect error or
// disconnect/reset before headers. …"; load balancer "no healthy upstream"; route not found and
// cluster not found send an empty body; fault filter "fault filter abort").

t.test('NR, NC, UH, UF, UT, FI: status, body, flags, upstream cluster and host', async t => {
  const slow = await upstreamFor(t, 'v1', (req, res) => {
    const wait = req.url?.startsWith('/slow') === true ? 1500 : 0
    setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('ok') }, wait)
  })
  const deadA = await closedPort()
  const deadB = await closedPort()
  const gw = await gatewayFor(t, `${gateway({ hosts: ['shop.example.com'] })}---
${virtualService(`  - name: nc
    match: [{ uri: { prefix: /nc }, name: m1 }]
    route: [{ destination: { host: nowhere.example } }]
  - name: uh
    match: [{ uri: { prefix: /uh } }]
    route: [{ destination: { host: app, subset: v3 } }]
  - name: uf
    match: [{ uri: { prefix: /uf } }]
    route: [{ destination: { host: dead-a } }]
  - name: uf-no-retry
    match: [{ uri: { prefix: /u0 } }]
    retries: { attempts: 0 }
    route: [{ destination: { host: dead-b } }]
  - name: ut
    match: [{ uri: { prefix: /slow } }]
    timeout: 0.3s
    route: [{ destination: { host: app, subset: v1 } }]
  - name: fi
    match: [{ uri: { prefix: /fi } }]
    fault: { abort: { httpStatus: 418, percentage: { value: 100 } } }
    route: [{ destination: { host: app, subset: v1 } }]
`, { name: 'shop', hosts: ['shop.example.com'], gateways: ['gw'] })}---
${APP_SUBSETS}
---
${serviceEntry('app', { v1: slow.port })}
---
${serviceEntry('dead-a', { v1: deadA })}
---
${serviceEntry('dead-b', { v1: deadB })}`)
  const host = { host: 'shop.example.com' }
  const send = (path: string, headers: Record<string, string> = host): ReturnType<typeof loggedRequest> => loggedRequest(gw, path, headers)

  // 404 NR: no virtual host for the Host (gateway.go: no vhost → 404) and no route in a vhost.
  for (const [path, headers] of [['/x', { host: 'other.example.com' }], ['/none', host]] as const) {
    const r = await send(path, headers)
    t.equal(r.status, 404, `${headers.host}${path}: 404`)
    t.equal(r.body, '', 'Envoy route_not_found: empty body')
    t.equal(r.log.response_flags, 'NR')
    t.equal(r.log.route_name, '-', 'no route: route_name -')
    t.equal(r.log.upstream_cluster, '-', 'no route: upstream_cluster -')
    t.equal(r.log.upstream_host, '-')
  }

  // 503 NC: cluster_not_found, empty body; route name is http[].name + "." + match.name.
  const nc = await send('/nc')
  t.equal(nc.status, 503)
  t.equal(nc.body, '')
  t.equal(nc.log.response_flags, 'NC')
  t.equal(nc.log.route_name, 'nc.m1', 'route_name joins the route and match names with "."')
  t.equal(nc.log.upstream_host, '-')

  // 503 UH: the subset has no endpoint.
  const uh = await send('/uh')
  t.equal(uh.status, 503)
  t.equal(uh.body, 'no healthy upstream')
  t.equal(uh.log.response_flags, 'UH')
  t.equal(uh.log.upstream_cluster, 'outbound|9080|v3|app.default.svc.cluster.local', 'UH logs the cluster (Istio naming)')
  t.equal(uh.log.upstream_host, '-', 'no host was chosen')
  t.equal(uh.log.route_name, 'uh')

  // 503 UF: connection refused; with Istio's default retry policy (connect-failure, 2 attempts)
  // the retries are exhausted too: flags UF,URX in Envoy's flag order.
  const uf = await send('/uf')
  t.equal(uf.status, 503)
  t.match(uf.body, /^upstream connect error or disconnect\/reset before headers\. .*reset reason: .*connection failure/, 'Envoy reset body')
  t.equal(uf.log.response_flags, 'UF,URX')
  t.equal(uf.log.upstream_cluster, 'outbound|9080||dead-a.default.svc.cluster.local')
  t.equal(uf.log.upstream_host, `127.0.0.1:${deadA}`, 'the host that refused')
  t.not(uf.log.upstream_transport_failure_reason, '-', 'a transport failure reason is logged')
  // attempts: 0 disables retries (retry.go ConvertPolicy): UF alone, first try.
  const u0 = await send('/u0')
  t.equal(u0.status, 503)
  t.equal(u0.log.response_flags, 'UF', 'no retry policy: no URX')

  // 504 UT: the route timeout.
  const ut = await send('/slow')
  t.equal(ut.status, 504)
  t.equal(ut.body, 'upstream request timeout')
  t.equal(ut.log.response_flags, 'UT')
  t.equal(ut.log.upstream_cluster, 'outbound|9080|v1|app.default.svc.cluster.local')
  t.equal(ut.log.upstream_host, `127.0.0.1:${slow.port}`)

  // Fault abort: the configured status, Envoy's body, FI, never reaching the upstream.
  const seenBefore = slow.seen.length
  const fi = await send('/fi')
  t.equal(fi.status, 418)
  t.equal(fi.body, 'fault filter abort')
  t.equal(fi.log.response_flags, 'FI')
  t.equal(fi.log.upstream_host, '-', 'the request never left the gateway')
  t.equal(slow.seen.length, seenBefore)
})

t.test('503 UO: connection-pool overflow answers Envoy\'s overflow body', async t => {
  // Two requests fill the connection and the pending queue; the third overflows at once.
  const { gw, third, admitted } = await overflowThird(t, '{ tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } }')
  t.equal(third.status, 503)
  t.equal(third.body, 'upstream connect error or disconnect/reset before headers. reset reason: overflow')
  // Release the held upstream answers until both admitted requests have completed.
  const done = await admitted()
  t.same(done.map(r => r.status), [200, 200], 'the admitted requests complete')
  await waitForLogs(gw.logs, 3, 5000)
  const uo = gw.logs.find(l => l.path === '/c')
  t.equal(uo?.response_flags, 'UO')
  t.equal(uo?.upstream_cluster, 'outbound|9080||app.default.svc.cluster.local')
})
