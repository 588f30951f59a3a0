import t from 'tap'
import { rawRequest, serviceEntry, startInlineGateway, startUpstream, waitForLogs } from '../helpers/upstream.js'
import { authorizationPolicy, ingressToApp } from '../helpers/yaml.js'

// AuthorizationPolicy through the running gateway: the ingress workload, the destination
// workload behind it, and the mesh listener with callers identified by address.

const GATEWAY = ingressToApp()

t.test('ingress: a DENY policy answers 403 "RBAC: access denied", flag -, and the matched policy in the log', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(GATEWAY + '---\n' + serviceEntry('app', { v1: up.port }) + '---\n' + authorizationPolicy('deny-admin', `selector: { matchLabels: { istio: ingressgateway } }
action: DENY
rules:
- to:
  - operation: { paths: ["/admin*"] }`))
  t.teardown(async () => { await gw.close(); await up.close() })
  t.equal((await rawRequest(gw.ingress, '/ok', { headers: { host: 'a.example' } })).status, 200)
  const denied = await rawRequest(gw.ingress, '/admin/x', { headers: { host: 'a.example' } })
  t.equal(denied.status, 403)
  t.equal(denied.body, 'RBAC: access denied')
  t.equal(denied.headers['content-type'], 'text/plain')
  t.equal(up.seen.length, 1, 'the denied request never reached the upstream')
  await waitForLogs(gw.logs, 2)
  const line = gw.logs[1]
  t.equal(line.response_code, '403')
  t.equal(line.response_flags, '-')
  t.equal(line.response_code_details, 'rbac_access_denied_matched_policy[ns[istio-system]-policy[deny-admin]-rule[0]]')
  t.equal(gw.logs[0].response_code_details, undefined, 'an allowed request keeps the ASM keys')
  const metrics = await gw.metrics.registry.metrics()
  t.match(metrics, /envoy_http_rbac_denied 1\b/)
  t.match(metrics, /envoy_http_rbac_allowed 1\b/)
})

t.test('remoteIpBlocks read X-Forwarded-For through the trusted proxy count; ipBlocks the peer', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(GATEWAY + '---\n' + serviceEntry('app', { v1: up.port }) + '---\n' + authorizationPolicy('ingress-policy', `selector: { matchLabels: { app: istio-ingressgateway } }
action: ALLOW
rules:
- from:
  - source: { remoteIpBlocks: ["203.0.113.0/24"] }`), { numTrustedProxies: 1 })
  t.teardown(async () => { await gw.close(); await up.close() })
  t.equal((await rawRequest(gw.ingress, '/', { headers: { host: 'a', 'x-forwarded-for': '203.0.113.9' } })).status, 200, 'one trusted proxy: its XFF entry is the client')
  t.equal((await rawRequest(gw.ingress, '/', { headers: { host: 'a', 'x-forwarded-for': '203.0.113.9, 198.51.100.1' } })).status, 403, 'the entry next to the trusted proxy')
  t.equal((await rawRequest(gw.ingress, '/', { headers: { host: 'a' } })).status, 403, 'no XFF: the peer (127.0.0.1) is the client')
})

t.test('ingress → destination: the destination workload\'s policies apply with the gateway as the source', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(GATEWAY + '---\n' + serviceEntry('app', { v1: up.port }) + '---\n' + authorizationPolicy('app-viewer', `selector: { matchLabels: { app: app } }
rules:
- from:
  - source: { principals: ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"] }
  to:
  - operation: { methods: ["GET"] }`, 'default'))
  t.teardown(async () => { await gw.close(); await up.close() })
  t.equal((await rawRequest(gw.ingress, '/', { headers: { host: 'a' } })).status, 200)
  const post = await rawRequest(gw.ingress, '/', { method: 'POST', headers: { host: 'a', 'content-length': '0' } })
  t.equal(post.status, 403)
  await waitForLogs(gw.logs, 2)
  t.equal(gw.logs[1].response_code_details, 'rbac_access_denied_matched_policy[none]')
})

t.test('mesh: callers are identified by their WorkloadEntry address and service account', async t => {
  const up = await startUpstream('reviews')
  const gw = await startInlineGateway(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  location: MESH_INTERNAL
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  resolution: STATIC
  workloadSelector: { labels: { app: reviews } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-1, namespace: default }
spec:
  address: 127.0.0.1
  ports: { http: ${up.port} }
  labels: { app: reviews }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: productpage-1, namespace: default }
spec:
  address: 127.0.0.2
  labels: { app: productpage }
  serviceAccount: bookinfo-productpage
---
${authorizationPolicy('reviews-viewer', `selector: { matchLabels: { app: reviews } }
rules:
- from:
  - source: { principals: ["cluster.local/ns/default/sa/bookinfo-productpage"] }`, 'default')}`, { gatewayPorts: [] })
  t.teardown(async () => { await gw.close(); await up.close() })
  const asProductpage = await rawRequest(gw.mesh, '/reviews/0', { localAddress: '127.0.0.2', headers: { host: 'reviews:9080' } })
  t.equal(asProductpage.status, 200)
  const asStranger = await rawRequest(gw.mesh, '/reviews/0', { localAddress: '127.0.0.3', headers: { host: 'reviews:9080' } })
  t.equal(asStranger.status, 403)
  t.equal(asStranger.body, 'RBAC: access denied')
})

t.test('a policy change applies at reload; removing every policy removes the stage', async t => {
  const up = await startUpstream('app')
  const base = GATEWAY + '---\n' + serviceEntry('app', { v1: up.port })
  const gw = await startInlineGateway(base)
  t.teardown(async () => { await gw.close(); await up.close() })
  t.equal((await rawRequest(gw.ingress, '/', { headers: { host: 'a' } })).status, 200)
  await gw.config.applyText(authorizationPolicy('allow-nothing', ''), 'merge', '<body>')
  t.equal((await rawRequest(gw.ingress, '/', { headers: { host: 'a' } })).status, 403, 'allow-nothing')
  await gw.config.applyText(base, 'replace', '<body>')
  t.equal((await rawRequest(gw.ingress, '/', { headers: { host: 'a' } })).status, 200)
  t.equal(gw.config.current.snapshot.security, undefined)
})
