import t from 'tap'
import { gatewayFor } from '../../helpers/gateway.js'
import { appRequest } from '../../helpers/raw-http.js'
import { startUpstream, upstreamFor } from '../../helpers/upstream.js'
import { sleep, waitForLogs } from '../../helpers/wait.js'
import { HTTP_9080, meshRoute, portService, routeTo, serviceEntry, versionSubsets, virtualService } from '../../helpers/yaml.js'

// Resilience through the real proxy: pool overflow, timeouts, retries, outlier ejection feeding
// fallback, breakers. Upstreams are real HTTP servers on loopback.

/** Subsets v1–v3 of `app` with the given trafficPolicy (indented YAML) and annotations. */
const dr = (trafficPolicy?: string, annotations?: Record<string, string>): string => versionSubsets('app', ['v1', 'v2', 'v3'], trafficPolicy, annotations)

/** The mesh route of the fallback tests: v3, falling back to v2, no retries; endpoints `{ version: port }`. */
function v3FallingBackToV2 (endpoints: Record<string, number>): string {
  return `${virtualService(`  - route:
    - destination: { host: app, subset: v3 }
      fallback:
        target: { host: app, subset: v2 }
    retries: { attempts: 0 }
`)}---
${serviceEntry('app', endpoints)}`
}

t.test('connection-pool overflow answers 503 UO at once', async t => {
  const slow = await upstreamFor(t, 'slow', (_req, res) => { setTimeout(() => { res.end('ok') }, 300) })
  const gw = await gatewayFor(t, `${dr(`    connectionPool:
      tcp: { maxConnections: 1 }
      http: { http1MaxPendingRequests: 1 }
`)}---
${meshRoute()}
---
${serviceEntry('app', { v1: slow.port })}`, { gatewayPorts: [] })
  const started = Date.now()
  const results = await Promise.all(Array.from({ length: 5 }, () => appRequest(gw)))
  const codes = results.map(r => r.status).sort()
  t.same(codes, [200, 200, 503, 503, 503], '1 connection + 1 pending admitted, the rest overflow')
  await waitForLogs(gw.logs, 5)
  const uo = gw.logs.filter(l => l.response_flags === 'UO')
  t.equal(uo.length, 3, 'overflow flagged UO')
  t.ok(uo.every(l => Number(l.duration) < 100), 'overflow answered at once, not queued')
  t.ok(Date.now() - started < 2000)
})

t.test('route timeout answers 504 UT; no timeout by default', async t => {
  const slow = await upstreamFor(t, 'slow', (_req, res) => { setTimeout(() => { res.end('late') }, 600) })
  const gw = await gatewayFor(t, `${virtualService(`  - match: [{ uri: { prefix: /timeout } }]
    timeout: 0.2s
    route:
    - destination: { host: app }
${routeTo()}`)}---
${serviceEntry('app', { v1: slow.port })}`, { gatewayPorts: [] })
  const start = Date.now()
  const res = await appRequest(gw, '/timeout')
  t.equal(res.status, 504)
  t.equal(res.body, 'upstream request timeout')
  t.ok(Date.now() - start < 550, 'answered at the route timeout')
  const ok = await appRequest(gw, '/other')
  t.equal(ok.body, 'late', 'a route without timeout waits for the upstream')
  await waitForLogs(gw.logs, 2)
  t.equal(gw.logs.find(l => l.path === '/timeout')?.response_flags, 'UT')
})

t.test('retries: retryOn 5xx avoids the host that failed; attempts 0 disables; default retries connect failures', async t => {
  const bad = await upstreamFor(t, 'bad', (_req, res) => { res.writeHead(503); res.end('bad') })
  const good = await upstreamFor(t, 'good')
  const closed = await startUpstream('closed')
  await closed.close()
  const gw = await gatewayFor(t, `${dr('    loadBalancer: { simple: RANDOM }\n')}---
${virtualService(`  - match: [{ uri: { prefix: /none } }]
    retries: { attempts: 0 }
    route:
    - destination: { host: app, subset: v1 }
  - match: [{ uri: { prefix: /retry } }]
    retries: { attempts: 2, retryOn: 5xx }
    route:
    - destination: { host: app, subset: v1 }
  - match: [{ uri: { prefix: /default } }]
    route:
    - destination: { host: app, subset: v2 }
`)}---
${portService('app', HTTP_9080, [['v1', bad.port], ['v1', good.port], ['v2', closed.port], ['v2', good.port]])}`, { gatewayPorts: [], random: () => 0 })

  for (let i = 0; i < 6; i++) {
    const r = await appRequest(gw, '/retry')
    t.equal(r.status, 200, `retry ${i}: a 503 from one host is retried on the other`)
  }
  // random() is always 0, so every first pick is the failing host: the retry must avoid it.
  t.equal(bad.seen.length, 6, 'each request tried the failing host exactly once')
  t.equal(good.seen.length, 6, 'and was retried on the other host')

  let codes = new Set<number>()
  for (let i = 0; i < 6; i++) codes.add((await appRequest(gw, '/none')).status)
  t.same([...codes], [503], 'attempts: 0 passes the 503 through')

  codes = new Set<number>()
  for (let i = 0; i < 6; i++) codes.add((await appRequest(gw, '/default')).status)
  t.same([...codes], [200], 'Istio default retries a refused connection on another host')
})

t.test('a subset answering 500 while healthy does not fall back until outlier detection ejects it', async t => {
  const v3 = await upstreamFor(t, 'v3', (_req, res) => { res.writeHead(500); res.end('boom') })
  const v2 = await upstreamFor(t, 'v2')
  const gw = await gatewayFor(t, `${dr(`    outlierDetection:
      consecutive5xxErrors: 3
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
`)}---
${v3FallingBackToV2({ v3: v3.port, v2: v2.port })}`, { gatewayPorts: [] })
  for (let i = 0; i < 3; i++) {
    const r = await appRequest(gw)
    t.equal(r.status, 500, `request ${i + 1}: the 500 is passed through, no fallback`)
  }
  const r = await appRequest(gw)
  t.equal(r.status, 200, 'after 3 consecutive 5xx v3 is ejected and v2 serves')
  t.equal(JSON.parse(r.body).upstream, 'v2')
  await waitForLogs(gw.logs, 4)
  t.equal(gw.logs[2].fallback_path, '-', 'no fallback while healthy')
  t.match(gw.logs[3], { fallback_result: 'fallback cluster is healthy', fallback_final_cluster_name: 'outbound|9080|v2|app.default.svc.cluster.local' })
  const c = gw.runtime.cluster('outbound|9080|v3|app.default.svc.cluster.local')
  t.equal(c?.endpoints[0].ejections, 1, 'ejected once')
})

t.test('an open breaker takes its endpoint out; half-open lets a trial through', async t => {
  let fail = true
  const v3 = await upstreamFor(t, 'v3', (_req, res) => { res.writeHead(fail ? 500 : 200); res.end(fail ? 'boom' : 'ok') })
  const v2 = await upstreamFor(t, 'v2')
  const gw = await gatewayFor(t, `${dr(undefined, {
    'meshgate.io/circuit-breaker': '{"volumeThreshold": 4, "errorThresholdPercentage": 50, "resetTimeout": "300ms"}'
  })}---
${v3FallingBackToV2({ v3: v3.port, v2: v2.port })}`, { gatewayPorts: [] })
  const codes: number[] = []
  for (let i = 0; i < 6; i++) codes.push((await appRequest(gw)).status)
  t.same(codes.slice(0, 4), [500, 500, 500, 500], 'failures counted while closed')
  t.same(codes.slice(4), [200, 200], 'breaker open: v2 serves through fallback')
  const cluster = gw.runtime.cluster('outbound|9080|v3|app.default.svc.cluster.local')!
  t.equal(cluster.breaker(cluster.endpoints[0])?.state, 'open')
  fail = false
  await sleep(400)
  t.equal(cluster.breaker(cluster.endpoints[0])?.state, 'halfOpen', 'half-open after resetTimeout')
  const trial = await appRequest(gw)
  t.equal(trial.body, 'ok', 'the trial request goes to v3')
  t.equal(cluster.breaker(cluster.endpoints[0])?.state, 'closed', 'a successful trial closes the breaker')
})
