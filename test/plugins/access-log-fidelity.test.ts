import t from 'tap'
import { startInlineGateway } from '../helpers/gateway.js'
import { echoed, rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitForLogs } from '../helpers/wait.js'
import { GATEWAY, gatewayVs, serviceEntry, versionSubsets } from '../helpers/yaml.js'

// The JSON access log: Istio's EnvoyJSONLogFormatIstio keys (snake_case) plus ASM's fallback
// fields, with the values docs/fallback.md#in-the-access-log fixes for every fallback path.

const P = (subset: string): string => `outbound|9080|${subset}|app.default.svc.cluster.local`

/** docs/operations.md#access-log: the keys of one line. */
const KEYS = ['authority', 'bytes_received', 'bytes_sent', 'downstream_local_address', 'downstream_remote_address',
  'duration', 'fallback_final_cluster_name', 'fallback_path', 'fallback_result', 'method', 'path', 'protocol',
  'request_id', 'response_code', 'response_flags', 'route_name', 'start_time', 'trace_id', 'upstream_cluster',
  'upstream_host', 'upstream_local_address', 'upstream_service_time', 'upstream_transport_failure_reason',
  'user_agent', 'x_forwarded_for']

t.test('ASM fallback: not needed, taken, both unhealthy, target undefined, never cascading', async t => {
  const v1 = await startUpstream('v1')
  const v2 = await startUpstream('v2')
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - name: ok
    match: [{ uri: { prefix: /ok } }]
    route:
    - destination: { host: app, subset: v1 }
      fallback: { target: { host: app, subset: v2 } }
  - name: taken
    match: [{ uri: { prefix: /taken } }]
    route:
    - destination: { host: app, subset: v3 }
      fallback: { case: noinstances, target: { host: app, subset: v2 } }
  - name: both
    match: [{ uri: { prefix: /both } }]
    route:
    - destination: { host: app, subset: v3 }
      fallback: { target: { host: app, subset: v4 } }
  - name: undef
    match: [{ uri: { prefix: /undef } }]
    route:
    - destination: { host: app, subset: v3 }
      fallback: { target: { host: ghost.example } }
  - name: nocascade
    match: [{ uri: { prefix: /nocascade } }]
    # The picked destination's fallback is the only one tried: not the other weighted entry.
    route:
    - destination: { host: app, subset: v3 }
      weight: 50
      fallback: { target: { host: app, subset: v4 } }
    - destination: { host: app, subset: v1 }
      weight: 50`)}
---
${versionSubsets('app', ['v1', 'v2', 'v3', 'v4'])}---
${serviceEntry('app', { v1: v1.port, v2: v2.port })}`, { random: () => 0.1 })
  t.teardown(async () => { await gw.close(); await v1.close(); await v2.close() })
  const send = async (path: string): Promise<{ status: number; body: string; log: Record<string, string> }> => {
    const before = gw.logs.length
    const r = await rawRequest(gw.ingress, path)
    await waitForLogs(gw.logs, before + 1, 5000)
    return { status: r.status, body: r.body, log: gw.logs[before] }
  }

  const ok = await send('/ok')
  t.equal(ok.status, 200)
  t.equal(JSON.parse(ok.body).upstream, 'v1')
  t.same([ok.log.fallback_path, ok.log.fallback_final_cluster_name, ok.log.fallback_result], ['-', '-', '-'], 'fallback not needed: all -')
  t.equal(ok.log.upstream_cluster, P('v1'))

  const taken = await send('/taken')
  t.equal(taken.status, 200, 'no 503 when the fallback is healthy (ASM walkthrough)')
  t.equal(JSON.parse(taken.body).upstream, 'v2')
  t.equal(taken.log.fallback_path, `${P('v3')}:${P('v2')}`, 'PRIMARY:FALLBACK')
  t.equal(taken.log.fallback_final_cluster_name, P('v2'))
  t.equal(taken.log.fallback_result, 'fallback cluster is healthy')
  t.equal(taken.log.response_flags, '-')

  const both = await send('/both')
  t.equal(both.status, 503)
  t.equal(both.body, 'no healthy upstream')
  t.equal(both.log.response_flags, 'UH')
  t.equal(both.log.fallback_result, 'fallback cluster is unhealthy', 'the ASM walkthrough value')
  t.equal(both.log.fallback_path, `${P('v3')}:${P('v4')}`)
  t.equal(both.log.fallback_final_cluster_name, '-')
  t.equal(both.log.upstream_cluster, P('v3'), 'upstream_cluster stays the primary')

  const undef = await send('/undef')
  t.equal(undef.status, 503, 'a fallback target with no cluster counts as unhealthy')
  t.equal(undef.log.response_flags, 'UH')
  t.equal(undef.log.fallback_result, 'fallback cluster is unhealthy')
  t.equal(undef.log.upstream_cluster, P('v3'))

  for (let i = 0; i < 3; i++) {
    const nc = await send('/nocascade')
    t.equal(nc.status, 503, 'v1 (another weighted entry) is not used as a fallback')
    t.equal(nc.log.fallback_result, 'fallback cluster is unhealthy')
  }
})

t.test('a proxied request\'s line: DESIGN keys, original path, request id, service time', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - name: api
    match: [{ uri: { prefix: /api/ }, name: v1 }]
    rewrite: { uri: /internal/ }
    route: [{ destination: { host: app } }]`)}
---
${serviceEntry('app', { v1: up.port })}`)
  t.teardown(async () => { await gw.close(); await up.close() })
  const r = await rawRequest(gw.ingress, '/api/items?x=1', { headers: { host: 'shop.example.com', 'user-agent': 'fidelity/1', 'x-forwarded-for': '203.0.113.7' } })
  t.equal(r.status, 200)
  const seen = echoed(r)
  t.equal(seen.url, '/internal/items?x=1')
  await waitForLogs(gw.logs, 1, 5000)
  const l = gw.logs[0]
  t.same(Object.keys(l).sort(), KEYS, 'exactly the documented keys')
  // Istio's format logs %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%: the path before the rewrite.
  t.equal(l.path, '/api/items?x=1', 'the original path, not the rewritten one')
  t.equal(l.method, 'GET')
  t.equal(l.protocol, 'HTTP/1.1')
  t.equal(l.authority, 'shop.example.com')
  t.equal(l.user_agent, 'fidelity/1')
  t.equal(l.response_code, '200')
  t.equal(l.response_flags, '-')
  t.equal(l.route_name, 'api.v1')
  t.equal(l.request_id, seen.headers['x-request-id'], 'the id the upstream got')
  t.equal(l.upstream_cluster, 'outbound|9080||app.default.svc.cluster.local')
  t.equal(l.upstream_host, `127.0.0.1:${up.port}`)
  t.match(l.upstream_service_time, /^\d+$/)
  t.equal(l.upstream_service_time, r.headers['x-envoy-upstream-service-time'], 'same figure as the response header')
  t.equal(l.bytes_sent, String(Buffer.byteLength(r.body)))
  t.match(l.x_forwarded_for, /^203\.0\.113\.7,\s?127\.0\.0\.1$/, 'x_forwarded_for as sent upstream')
  t.match(l.start_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
})

t.test('route_name: http[].name + "." + match.name, as route.go translateRoute builds it', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match: [{ uri: { prefix: /only-match }, name: m }]
    route: [{ destination: { host: app } }]
  - name: only-route
    match: [{ uri: { prefix: /only-route } }]
    route: [{ destination: { host: app } }]
  - match: [{ uri: { prefix: /nameless } }]
    route: [{ destination: { host: app } }]`)}
---
${serviceEntry('app', { v1: up.port })}`)
  t.teardown(async () => { await gw.close(); await up.close() })
  for (const p of ['/only-match', '/only-route', '/nameless']) t.equal((await rawRequest(gw.ingress, p)).status, 200)
  await waitForLogs(gw.logs, 3, 5000)
  t.same(gw.logs.map(l => l.route_name), ['.m', 'only-route', '-'], 'unnamed route + named block is ".m"; nothing named is -')
})
