import { readFileSync } from 'node:fs'
import t from 'tap'
import { startAdmin } from '../../routes/admin.js'
import { gatewayFor } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { upstreamsFor } from '../helpers/upstream.js'
import { waitForLogs } from '../helpers/wait.js'
import { GATEWAY, destinationRule, gatewayVs, serviceEntry } from '../helpers/yaml.js'
import { dashboardQueries, parseExposition, select, selectorsOf, substitute } from './grafana-promql.js'

// The Grafana dashboard meshgate ships (docs/grafana/meshgate-dashboard.json) queries only
// metrics a running gateway exposes on /stats/prometheus, and after traffic with a fallback
// (one answered 503) every one of its selectors selects series.

const dashboard: unknown = JSON.parse(readFileSync(new URL('../../docs/grafana/meshgate-dashboard.json', import.meta.url), 'utf8'))

t.test('every metric the meshgate dashboard queries is exposed by a running gateway', async t => {
  const [v1, v2] = await upstreamsFor(t, 'v1', 'v2')
  // overload: false — not a test of the overload guard; a busy CI machine must not turn these into 503 OM.
  const gw = await gatewayFor(t, `${GATEWAY}---
${gatewayVs(`  - name: fb
    match: [{ uri: { prefix: /fb } }]
    route:
    - destination: { host: app, subset: v3 }
      fallback: { target: { host: app, subset: v2 } }
  - name: down
    match: [{ uri: { prefix: /down } }]
    route:
    - destination: { host: app, subset: v3 }
  - name: main
    route:
    - destination: { host: app, subset: v1 }`)}
---
${destinationRule('app', `  trafficPolicy:
    outlierDetection: { consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s }
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 } }
  - { name: v3, labels: { version: v3 } }
`)}---
${serviceEntry('app', { v1: v1.port, v2: v2.port })}`, { overload: false })
  const admin = await startAdmin({ gateway: gw, port: 0, token: 'tok' })
  t.teardown(() => admin.close())
  for (const path of ['/main', '/main', '/fb', '/fb']) {
    const r = await rawRequest(gw.ingress, path)
    t.equal(r.status, 200, `${path}: ${r.status} ${r.body}`)
  }
  t.equal((await rawRequest(gw.ingress, '/down')).status, 503, 'no endpoint and no fallback: 503 UH, an error for the error panel')
  await waitForLogs(gw.logs, 5)

  const text = (await rawRequest(admin.url, '/stats/prometheus', { headers: { authorization: 'Bearer tok' } })).body
  const declared = new Set([...text.matchAll(/^# TYPE (\S+) (\w+)$/gm)].flatMap(m => m[2] === 'histogram' ? [`${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1]]))
  const series = parseExposition(text)
  const queries = dashboardQueries(dashboard)
  t.ok(queries.length >= 15, `${queries.length} queries in the dashboard`)
  const names = new Set<string>()
  for (const q of queries) {
    const expr = substitute(q.expr, { service: '.*', source: '.*', __rate_interval: '1m', __range: '1h' })
    t.notMatch(expr, /\$/, `${q.where}: every variable substituted`)
    const sels = selectorsOf(expr, '(?:istio_|meshgate_)')
    t.ok(sels.length > 0, `${q.where} queries a meshgate metric`)
    for (const s of sels) {
      names.add(s.name)
      t.ok(declared.has(s.name), `${q.where}: ${s.name} is exposed`)
      t.ok(select(series, s).length > 0, `${q.where}: ${s.text} selects series`)
    }
  }
  t.same([...names].sort(), [
    'istio_request_duration_milliseconds_bucket', 'istio_requests_total', 'meshgate_breaker_state', 'meshgate_config_generation',
    'meshgate_config_reload_failures_total', 'meshgate_endpoint_healthy', 'meshgate_fallback_total', 'meshgate_outlier_ejections_total',
    'meshgate_upstream_requests_active'
  ], 'request rate, errors, latency, who calls whom, fallbacks, endpoint health, breakers, configuration')
  t.ok(series.some(s => s.name === 'meshgate_fallback_total' && s.labels.result === 'taken' && s.value === 2), 'the fallbacks were counted')
})
