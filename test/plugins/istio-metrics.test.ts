import t from 'tap'
import { Counter, Histogram, Registry } from 'prom-client'
import { RequestMetrics } from '../../plugins/istio-metrics.js'

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
