import t from 'tap'
import { admit, poolLimits } from '../../src/resilience/pool.js'

// Connection-pool limits (Istio connectionPool → Envoy circuit-breaker thresholds) and admission.

t.test('poolLimits: Istio leaves every limit unlimited unless set', async t => {
  t.strictSame(poolLimits(undefined), {
    maxConnections: Infinity,
    connectTimeoutMs: 10_000,
    maxPending: Infinity,
    maxRequests: Infinity,
    maxRequestsPerConnection: 0,
    maxRetries: Infinity,
    idleTimeoutMs: 3_600_000
  })
  t.strictSame(poolLimits({}), poolLimits(undefined), 'an empty connectionPool is the same')
  const zeros = poolLimits({ tcp: { maxConnections: 0 }, http: { http1MaxPendingRequests: 0, http2MaxRequests: 0, maxRetries: 0 } })
  t.equal(zeros.maxConnections, Infinity, '0 is unset (Istio only applies values > 0)')
  t.equal(zeros.maxPending, Infinity)
  t.equal(zeros.maxRequests, Infinity)
  t.equal(zeros.maxRetries, Infinity)
})

t.test('poolLimits: explicit values', async t => {
  const l = poolLimits({
    tcp: { maxConnections: 1, connectTimeout: '250ms', idleTimeout: '30s' },
    http: { http1MaxPendingRequests: 2, http2MaxRequests: 10, maxRequestsPerConnection: 1, maxRetries: 3, idleTimeout: '5s' }
  })
  t.strictSame(l, {
    maxConnections: 1,
    connectTimeoutMs: 250,
    maxPending: 2,
    maxRequests: 10,
    maxRequestsPerConnection: 1,
    maxRetries: 3,
    idleTimeoutMs: 5000
  }, 'http.idleTimeout wins over tcp.idleTimeout')
  t.equal(poolLimits({ tcp: { idleTimeout: '30s' } }).idleTimeoutMs, 30_000, 'tcp.idleTimeout when http has none')
})

t.test('admit: unlimited never overflows', async t => {
  const l = poolLimits(undefined)
  for (const n of [0, 1, 1000, 1_000_000]) t.equal(admit(l, n), 'go', `${n} active`)
})

t.test('admit: http2MaxRequests caps requests in flight', async t => {
  const l = poolLimits({ http: { http2MaxRequests: 2 } })
  t.strictSame([0, 1, 2, 3].map(n => admit(l, n)), ['go', 'go', 'overflow', 'overflow'])
})

t.test('admit: maxConnections 1 + http1MaxPendingRequests 1 → one in flight, one pending, the third overflows', async t => {
  const l = poolLimits({ tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } })
  t.equal(admit(l, 0), 'go', 'active 0: gets the connection')
  t.equal(admit(l, 1), 'go', 'active 1: waits as the one pending request')
  t.equal(admit(l, 2), 'overflow', 'active 2: pending queue full → 503 UO')
  t.equal(admit(l, 5), 'overflow')
})

t.test('admit: maxConnections 2 + pending 3 → five in total', async t => {
  const l = poolLimits({ tcp: { maxConnections: 2 }, http: { http1MaxPendingRequests: 3 } })
  t.strictSame([0, 1, 2, 3, 4, 5, 6].map(n => admit(l, n)), ['go', 'go', 'go', 'go', 'go', 'overflow', 'overflow'])
})

t.test('admit: maxConnections alone queues without bound (pending unlimited)', async t => {
  const l = poolLimits({ tcp: { maxConnections: 1 } })
  t.equal(admit(l, 1000), 'go')
})

t.test('admit: pending limit alone never bites (no connection limit → nothing waits)', async t => {
  const l = poolLimits({ http: { http1MaxPendingRequests: 1 } })
  t.equal(admit(l, 1000), 'go')
})

t.test('admit: the tighter of the two limits wins', async t => {
  const l = poolLimits({ tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 10, http2MaxRequests: 3 } })
  t.strictSame([0, 1, 2, 3].map(n => admit(l, n)), ['go', 'go', 'go', 'overflow'], 'http2MaxRequests 3 before the pending limit')
})
