import t from 'tap'
import { startInlineGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitForLogs } from '../helpers/wait.js'
import { APP_SUBSETS, GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'

// Istio's defaults where a field is left out, observed over HTTP (docs/architecture.md#weights, docs/architecture.md#istio-defaults).

/** An evenly spread, repeating sequence in [0, 1): deterministic weighted picks. */
function evenRandom (n: number): () => number {
  let i = 0
  return () => { const v = (i % n + 0.5) / n; i++; return v }
}

t.test('weights are relative; a single destination takes 100 %; weight 0 gets nothing', async t => {
  const v1 = await startUpstream('v1')
  const v2 = await startUpstream('v2')
  const v3 = await startUpstream('v3')
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match: [{ uri: { prefix: /rel } }]
    # Weights need not total 100 (validation_test.go accepts 550+500 and 49+50).
    route:
    - { destination: { host: app, subset: v1 }, weight: 1 }
    - { destination: { host: app, subset: v2 }, weight: 3 }
    - { destination: { host: app, subset: v3 }, weight: 0 }
  - match: [{ uri: { prefix: /single } }]
    # route.go: one destination gets all traffic whatever its weight.
    route:
    - { destination: { host: app, subset: v3 }, weight: 10 }`)}
---
${APP_SUBSETS}
---
${serviceEntry('app', { v1: v1.port, v2: v2.port, v3: v3.port })}`, { random: evenRandom(8) })
  t.teardown(async () => { await gw.close(); await v1.close(); await v2.close(); await v3.close() })
  const count: Record<string, number> = {}
  for (let i = 0; i < 40; i++) {
    const r = await rawRequest(gw.ingress, '/rel')
    const u = JSON.parse(r.body).upstream as string
    count[u] = (count[u] ?? 0) + 1
  }
  t.equal(count.v3, undefined, 'weight 0 beside others: no traffic')
  t.ok(count.v1 >= 6 && count.v1 <= 14, `1:3 split gives v1 about a quarter (${count.v1}/40)`)
  t.equal(count.v1 + count.v2, 40)
  for (let i = 0; i < 5; i++) t.equal(JSON.parse((await rawRequest(gw.ingress, '/single')).body).upstream, 'v3')
})

t.test('no route timeout by default; retries: 2 on 503 and connect-failure, none on 500, attempts 0 disables', async t => {
  let calls503 = 0
  let calls500 = 0
  let callsOff = 0
  const up = await startUpstream('v1', (req, res) => {
    if (req.url === '/slow') { setTimeout(() => { res.writeHead(200); res.end('late') }, 1200); return }
    if (req.url === '/503') { calls503++; res.writeHead(503); res.end('busy'); return }
    if (req.url === '/500') { calls500++; res.writeHead(500); res.end('bug'); return }
    if (req.url === '/off') { callsOff++; res.writeHead(503); res.end('busy'); return }
    res.writeHead(200); res.end('ok')
  })
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match: [{ uri: { exact: /off } }]
    retries: { attempts: 0 }
    route: [{ destination: { host: app } }]
  - route: [{ destination: { host: app } }]`)}
---
${serviceEntry('app', { v1: up.port })}`)
  t.teardown(async () => { await gw.close(); await up.close() })
  // Istio sets no route timeout (route.go setTimeout: Notimeout); Envoy's own default is 15 s.
  const slow = await rawRequest(gw.ingress, '/slow')
  t.equal(slow.status, 200, 'a slow upstream is waited for')
  t.equal(slow.body, 'late')
  // Default policy (retry.go DefaultPolicy): attempts 2, retriable-status-codes 503.
  const r503 = await rawRequest(gw.ingress, '/503')
  t.equal(r503.status, 503, 'the last upstream answer is passed on')
  t.equal(r503.body, 'busy')
  t.equal(calls503, 3, 'one try plus two retries')
  const r500 = await rawRequest(gw.ingress, '/500')
  t.equal(r500.status, 500)
  t.equal(calls500, 1, '500 is not in the default retryOn')
  const off = await rawRequest(gw.ingress, '/off')
  t.equal(off.status, 503)
  t.equal(callsOff, 1, 'attempts: 0 disables retries')
  await waitForLogs(gw.logs, 4, 5000)
  t.equal(gw.logs.find(l => l.path === '/503')?.response_flags, 'URX', 'retries exhausted on a retriable status: URX')
  t.equal(gw.logs.find(l => l.path === '/off')?.response_flags, '-', 'no retry policy: no flag')
})

t.test('mirror: missing percentage = 100 %, explicit 0 = none, Host gets -shadow', async t => {
  const main = await startUpstream('main')
  const shadow = await startUpstream('shadow')
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match: [{ uri: { prefix: /all } }]
    route: [{ destination: { host: app, subset: v1 } }]
    mirror: { host: app, subset: v2 }
  - match: [{ uri: { prefix: /none } }]
    route: [{ destination: { host: app, subset: v1 } }]
    mirror: { host: app, subset: v2 }
    mirrorPercentage: { value: 0 }`)}
---
${APP_SUBSETS}
---
${serviceEntry('app', { v1: main.port, v2: shadow.port })}`)
  t.teardown(async () => { await gw.close(); await main.close(); await shadow.close() })
  for (let i = 0; i < 5; i++) t.equal((await rawRequest(gw.ingress, '/none')).status, 200)
  for (let i = 0; i < 5; i++) t.equal((await rawRequest(gw.ingress, '/all', { headers: { host: 'shop.example.com:8080' } })).status, 200)
  const start = Date.now()
  while (shadow.seen.length < 5 && Date.now() - start < 5000) await new Promise(resolve => setTimeout(resolve, 10))
  // Give a wrongly mirrored /none request time to arrive before counting.
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(shadow.seen.filter(s => s.url === '/all').length, 5, 'every request mirrored without a percentage (MirrorPercent default 100)')
  t.equal(shadow.seen.filter(s => s.url === '/none').length, 0, 'mirrorPercentage 0: never')
  t.equal(shadow.seen[0]?.headers.host, 'shop.example.com-shadow:8080', 'Envoy ShadowPolicy appends -shadow to the host')
})

t.test('fault: a missing percentage injects nothing; 100 % always', async t => {
  const up = await startUpstream('v1')
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match: [{ uri: { prefix: /nopct } }]
    # virtual_service.proto: "If left unspecified, no request will be aborted/delayed."
    fault:
      abort: { httpStatus: 500 }
      delay: { fixedDelay: 5s }
    route: [{ destination: { host: app } }]
  - match: [{ uri: { prefix: /always } }]
    fault:
      abort: { httpStatus: 503, percentage: { value: 100 } }
    route: [{ destination: { host: app } }]`)}
---
${serviceEntry('app', { v1: up.port })}`)
  t.teardown(async () => { await gw.close(); await up.close() })
  for (let i = 0; i < 5; i++) {
    const started = Date.now()
    const r = await rawRequest(gw.ingress, '/nopct')
    t.equal(r.status, 200, 'no abort without a percentage')
    t.ok(Date.now() - started < 4000, 'no 5 s delay without a percentage')
  }
  for (let i = 0; i < 3; i++) t.equal((await rawRequest(gw.ingress, '/always')).status, 503)
})

t.test('perTryTimeout: retried only when retryOn covers a reset (5xx, gateway-error, reset)', async t => {
  const up = await startUpstream('v1', (_req, res) => { setTimeout(() => { res.writeHead(200); res.end('late') }, 1000) })
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match: [{ uri: { prefix: /default } }]
    retries: { attempts: 2, perTryTimeout: 0.2s }
    route: [{ destination: { host: app } }]
  - match: [{ uri: { prefix: /5xx } }]
    retries: { attempts: 2, perTryTimeout: 0.2s, retryOn: 5xx }
    route: [{ destination: { host: app } }]`)}
---
${serviceEntry('app', { v1: up.port })}`)
  t.teardown(async () => { await gw.close(); await up.close() })
  // Envoy onPerTryTimeout retries as a local reset: Istio's default retryOn (connect-failure,
  // refused-stream, unavailable, cancelled, retriable-status-codes) does not cover it.
  const expectTries = async (path: string, tries: number): Promise<void> => {
    const before = up.seen.length
    const r = await rawRequest(gw.ingress, path)
    t.equal(r.status, 504, `${path}: 504`)
    t.equal(r.body, 'upstream request timeout')
    const start = Date.now()
    // The upstream records a request when its (slow) answer is written: wait for the stragglers.
    while (up.seen.length - before < tries && Date.now() - start < 5000) await new Promise(resolve => setTimeout(resolve, 20))
    await new Promise(resolve => setTimeout(resolve, 300))
    t.equal(up.seen.length - before, tries, `${path}: ${tries} tries`)
  }
  await expectTries('/default', 1)
  await expectTries('/5xx', 3)
  await waitForLogs(gw.logs, 2, 5000)
  t.same(gw.logs.map(l => l.response_flags), ['UT', 'UT,URX'], 'UT, and URX once the retries are used up')
})
