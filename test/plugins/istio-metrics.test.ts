import t from 'tap'
import { Counter, Histogram, Registry } from 'prom-client'
import { NO_ENDPOINT, RequestMetrics, type SeriesPair, UNKNOWN_WORKLOAD, workloadNames } from '../../plugins/istio-metrics.js'

// The aggregated request metrics must render exactly what prom-client's own Counter and
// Histogram render for the same observations (dashboards and scrapers see no difference).
t.test('same exposition text as prom-client Counter/Histogram', async t => {
  const buckets = [0.5, 1, 5, 10, 25, 50, 100]
  const bytes = [1, 10, 100, 1000]
  const names = {
    requests: { name: 'x_requests_total', help: 'Requests.' },
    duration: { name: 'x_duration_ms', help: 'Duration.', buckets },
    requestBytes: { name: 'x_request_bytes', help: 'Request bytes.', buckets: bytes },
    responseBytes: { name: 'x_response_bytes', help: 'Response bytes.', buckets: bytes }
  }
  const ours = new Registry()
  const m = new RequestMetrics(ours, names)
  const ref = new Registry()
  const labelNames = ['code', 'flags', 'svc']
  const c = new Counter({ name: names.requests.name, help: names.requests.help, labelNames, registers: [ref] })
  const d = new Histogram({ name: names.duration.name, help: names.duration.help, labelNames, buckets, registers: [ref] })
  const rq = new Histogram({ name: names.requestBytes.name, help: names.requestBytes.help, labelNames, buckets: bytes, registers: [ref] })
  const rs = new Histogram({ name: names.responseBytes.name, help: names.responseBytes.help, labelNames, buckets: bytes, registers: [ref] })
  const obs: Array<[string, string, string, number, number, number]> = [
    ['200', '-', 'a', 0.2, 0, 344], ['200', '-', 'a', 7, 12, 344], ['503', 'UH', 'b', 120, 0, 19],
    ['200', '-', 'a', 1, 1, 1000], ['200', '-', 'b', 50, 5000, 2], ['503', 'UH', 'b', 0, 0, 0]
  ]
  for (const [code, flags, svc, ms, inB, outB] of obs) {
    const labels = { code, flags, svc }
    m.record(m.seriesFor(`${code}|${flags}|${svc}`, () => labels), ms, inB, outB)
    c.inc(labels); d.observe(labels, ms); rq.observe(labels, inB); rs.observe(labels, outB)
  }
  t.equal(await ours.metrics(), await ref.metrics())
  t.equal(m.total, obs.length)
  ours.resetMetrics()
  t.equal(m.total, 0, 'a registry reset clears the series')
})

// The per-request lookup: the same combination finds the same series pair without building a
// key; a new combination (another status, endpoint or source) gets its own; a reset forgets them.
t.test('SeriesIndex: one pair per combination, cleared with the registry', async t => {
  const names = {
    requests: { name: 'y_requests_total', help: 'Requests.' },
    duration: { name: 'y_duration_ms', help: 'Duration.', buckets: [1] },
    requestBytes: { name: 'y_request_bytes', help: 'Request bytes.', buckets: [1] },
    responseBytes: { name: 'y_response_bytes', help: 'Response bytes.', buckets: [1] }
  }
  const reg = new Registry()
  const m = new RequestMetrics(reg, names)
  let made = 0
  const make = (code: string) => (): SeriesPair => { made++; return { source: m.seriesFor(code, () => ({ code })), destination: undefined } }
  const src = workloadNames({ app: 'productpage', version: 'v1' }, 'default', 'cluster.local/ns/default/sa/bookinfo-productpage')
  const ep = Object.freeze({ app: 'reviews', version: 'v2' })
  const a = m.index.get(src, 'outbound|9080||reviews.default.svc.cluster.local', ep, 200, '-', make('200'))
  t.equal(m.index.get(src, 'outbound|9080||reviews.default.svc.cluster.local', ep, 200, '-', make('200')), a, 'same combination, same pair')
  t.not(m.index.get(src, 'outbound|9080||reviews.default.svc.cluster.local', ep, 503, '-', make('503')), a, 'another status')
  t.not(m.index.get(src, 'outbound|9080||reviews.default.svc.cluster.local', NO_ENDPOINT, 200, '-', make('200')), a, 'another endpoint')
  t.not(m.index.get(UNKNOWN_WORKLOAD, 'outbound|9080||reviews.default.svc.cluster.local', ep, 200, '-', make('200')), a, 'another source')
  t.equal(made, 4)
  t.equal(m.index.find(src, 'outbound|9080||reviews.default.svc.cluster.local', ep, 200, '-'), a, 'find: the pair of a combination seen before')
  t.equal(m.index.find(src, 'outbound|9080||reviews.default.svc.cluster.local', ep, 200, 'UF'), undefined, 'find: nothing for a combination not seen')
  t.equal(made, 4, 'find makes nothing')
  reg.resetMetrics()
  t.equal(m.index.find(src, 'outbound|9080||reviews.default.svc.cluster.local', ep, 200, '-'), undefined, 'find: nothing after a reset')
  t.not(m.index.get(src, 'outbound|9080||reviews.default.svc.cluster.local', ep, 200, '-', make('200')), a, 'a reset forgets the pairs with the series')
})

t.test('workloadNames: Istio names from the labels', async t => {
  t.same(workloadNames({ app: 'reviews', version: 'v2' }, 'default', 'cluster.local/ns/default/sa/bookinfo-reviews'), {
    workload: 'reviews-v2', namespace: 'default', principal: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews', app: 'reviews', version: 'v2',
    canonicalService: 'reviews', canonicalRevision: 'v2'
  })
  t.same(workloadNames({ app: 'istio-ingressgateway', istio: 'ingressgateway' }, 'istio-system', undefined), {
    workload: 'istio-ingressgateway', namespace: 'istio-system', principal: 'unknown', app: 'istio-ingressgateway', version: 'unknown',
    canonicalService: 'istio-ingressgateway', canonicalRevision: 'latest'
  }, 'no version label: the app names the workload, the revision is latest')
  t.match(workloadNames({ app: 'a', version: 'v1', 'service.istio.io/canonical-name': 'shop', 'app.kubernetes.io/version': '1.2' }, 'ns', undefined),
    { canonicalService: 'shop', canonicalRevision: '1.2' }, "Istio's canonical label precedence")
  t.equal(workloadNames(undefined, 'unknown', undefined), UNKNOWN_WORKLOAD)
  t.match(workloadNames(undefined, 'default', undefined), { workload: 'unknown', namespace: 'default' }, 'several workloads at one address: only the namespace')
})
