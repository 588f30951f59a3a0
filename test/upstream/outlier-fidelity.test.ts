import t from 'tap'
import { startInlineGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitForLogs } from '../helpers/wait.js'
import { destinationRule, GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'

// Outlier detection with Istio's defaults for the fields left out (destination_rule.proto
// OutlierDetection; docs/architecture.md#outlier-detection-defaults): max_ejection_percent 10 % but at least one host
// is always ejectable (Envoy), and the panic threshold is minHealthPercent, default 0
// (cluster_traffic_policy.go), so Envoy never routes to an ejected host.

t.test('a lone host is ejected after consecutive 5xx and the cluster answers 503 UH', async t => {
  const bad = await startUpstream('bad', (_req, res) => { res.writeHead(500); res.end('bug') })
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - route: [{ destination: { host: app } }]`)}
---
${destinationRule('app', `  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 2
      baseEjectionTime: 60s
`)}---
${serviceEntry('app', { v1: bad.port })}`)
  t.teardown(async () => { await gw.close(); await bad.close() })
  // 500 is not retried by the default policy, so each request is one try.
  t.equal((await rawRequest(gw.ingress, '/a')).status, 500)
  t.equal((await rawRequest(gw.ingress, '/b')).status, 500)
  const after = await rawRequest(gw.ingress, '/c')
  t.equal(after.status, 503, 'one host of one: 10 % rounds up to one ejectable host')
  t.equal(after.body, 'no healthy upstream', 'no panic routing to the ejected host')
  t.equal(bad.seen.length, 2, 'the ejected host gets nothing more')
  await waitForLogs(gw.logs, 3, 5000)
  t.equal(gw.logs[2].response_flags, 'UH')
})

t.test('with two hosts the failing one is ejected and the other takes all the traffic', async t => {
  const bad = await startUpstream('bad', (_req, res) => { res.writeHead(502); res.end('gw') })
  const good = await startUpstream('good')
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - retries: { attempts: 0 }
    route: [{ destination: { host: app } }]`)}
---
${destinationRule('app', `  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    outlierDetection:
      consecutive5xxErrors: 3
      baseEjectionTime: 60s
`)}---
${serviceEntry('app', { bad: bad.port, good: good.port })}`)
  t.teardown(async () => { await gw.close(); await bad.close(); await good.close() })
  for (let i = 0; i < 12; i++) await rawRequest(gw.ingress, `/warm${i}`)
  t.equal(bad.seen.length, 3, 'ejected after exactly consecutive5xxErrors failures')
  const statuses = []
  for (let i = 0; i < 10; i++) statuses.push((await rawRequest(gw.ingress, `/after${i}`)).status)
  t.same(statuses, Array(10).fill(200), 'all traffic to the healthy host')
  t.equal(bad.seen.length, 3)
})
