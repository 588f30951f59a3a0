import t from 'tap'
import { backoffMs, DEFAULT_RETRY_ON, isRetriable, retryPolicy, type RetryPolicy, type TryFailure } from '../../src/resilience/retry.js'

// Route retry policy: Istio's defaults (retry.go DefaultPolicy / ConvertPolicy) and Envoy's retry-on semantics.

const sorted = (s: ReadonlySet<string | number>): Array<string | number> => [...s].sort()

const connect: TryFailure = { kind: 'connect' }
const reset: TryFailure = { kind: 'reset' }
const refused: TryFailure = { kind: 'reset', refused: true }
const timeout: TryFailure = { kind: 'timeout' }
const st = (status: number, grpcStatus?: number): TryFailure => ({ kind: 'status', status, grpcStatus })

t.test('no retries block: Istio default policy', async t => {
  const p = retryPolicy(undefined)
  t.equal(p.attempts, 2, 'attempts 2')
  t.strictSame(sorted(p.on), ['cancelled', 'connect-failure', 'refused-stream', 'retriable-status-codes', 'unavailable'])
  t.equal(DEFAULT_RETRY_ON, 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes')
  t.strictSame(sorted(p.statusCodes), [503], 'retriable status code 503')
  t.equal(p.ignorePreviousHosts, true, 'previous-hosts predicate')
  t.equal(p.perTryTimeoutMs, 0, 'no per-try timeout')
  t.equal(p.backoffBaseMs, 25, 'Envoy base interval 25 ms')
})

t.test('attempts', async t => {
  t.equal(retryPolicy({ attempts: 0 }).attempts, 0, 'attempts 0 disables')
  t.equal(retryPolicy({ attempts: 5 }).attempts, 5)
  t.equal(retryPolicy({ attempts: -1 }).attempts, 0, 'negative → disabled')
  // proto3: a retries block without attempts has attempts 0, which Istio reads as "disabled".
  t.equal(retryPolicy({ retryOn: '5xx' }).attempts, 0, 'retries block without attempts → no retries (Istio ConvertPolicy)')
  t.equal(retryPolicy({}).attempts, 0, 'empty retries block → no retries')
})

t.test('retryOn: the user list replaces the default, including its 503', async t => {
  const p = retryPolicy({ attempts: 3, retryOn: 'gateway-error,connect-failure' })
  t.strictSame(sorted(p.on), ['connect-failure', 'gateway-error'])
  t.strictSame(sorted(p.statusCodes), [], 'no implicit 503')
  const keep = retryPolicy({ attempts: 3 })
  t.strictSame(sorted(keep.on), sorted(retryPolicy(undefined).on), 'attempts only: default retryOn kept')
  t.strictSame(sorted(keep.statusCodes), [503], '... and its 503')
  t.strictSame(sorted(retryPolicy({ attempts: 1, retryOn: '' }).on), sorted(retryPolicy(undefined).on), 'empty retryOn = default (Istio)')
  t.strictSame(sorted(retryPolicy({ attempts: 1, retryOn: '' }).statusCodes), [503])
})

t.test('retryOn: bare status codes turn on retriable-status-codes', async t => {
  const p = retryPolicy({ attempts: 2, retryOn: '503,reset' })
  t.strictSame(sorted(p.on), ['reset', 'retriable-status-codes'])
  t.strictSame(sorted(p.statusCodes), [503])
  const q = retryPolicy({ attempts: 2, retryOn: ' 502 , 504,gateway-error, ' })
  t.strictSame(sorted(q.on), ['gateway-error', 'retriable-status-codes'], 'items are trimmed, empty ones skipped')
  t.strictSame(sorted(q.statusCodes), [502, 504])
  const only = retryPolicy({ attempts: 2, retryOn: '409' })
  t.strictSame(sorted(only.on), ['retriable-status-codes'])
  t.ok(isRetriable(only, st(409)))
  t.notOk(isRetriable(only, st(503)), 'only the listed code')
})

t.test('other fields', async t => {
  const p = retryPolicy({ attempts: 1, perTryTimeout: '2s', backoff: '100ms', retryIgnorePreviousHosts: false })
  t.equal(p.perTryTimeoutMs, 2000)
  t.equal(p.backoffBaseMs, 100)
  t.equal(p.ignorePreviousHosts, false)
  t.equal(retryPolicy({ attempts: 1 }).ignorePreviousHosts, true, 'previous hosts avoided unless turned off')
  t.equal(retryPolicy({ attempts: 1, perTryTimeout: 'bogus' }).perTryTimeoutMs, 0, 'a bad duration → none')
})

t.test('isRetriable: Istio default policy', async t => {
  const p = retryPolicy(undefined)
  t.ok(isRetriable(p, connect), 'connect failure')
  t.ok(isRetriable(p, reset), 'reset before a response (stopped workload) is treated as a connect failure')
  t.notOk(isRetriable(p, timeout), 'per-try timeout: needs 5xx, gateway-error or reset')
  t.ok(isRetriable(p, st(503)), '503 (retriable-status-codes)')
  t.notOk(isRetriable(p, st(500)))
  t.notOk(isRetriable(p, st(502)))
  t.notOk(isRetriable(p, st(504)))
  t.notOk(isRetriable(p, st(409)))
  t.ok(isRetriable(p, st(200, 14)), 'gRPC UNAVAILABLE (unavailable)')
  t.ok(isRetriable(p, st(200, 1)), 'gRPC CANCELLED (cancelled)')
  t.notOk(isRetriable(p, st(200, 4)), 'gRPC DEADLINE_EXCEEDED is not in the default list')
  t.notOk(isRetriable(p, st(200, 13)), 'gRPC INTERNAL either')
})

t.test('isRetriable per retry-on name', async t => {
  const on = (spec: string): RetryPolicy => retryPolicy({ attempts: 1, retryOn: spec })
  const table: Array<[string, TryFailure, boolean]> = [
    ['5xx', st(500), true], ['5xx', st(504), true], ['5xx', st(404), false], ['5xx', timeout, true], ['5xx', connect, true], ['5xx', reset, true],
    ['gateway-error', st(502), true], ['gateway-error', st(503), true], ['gateway-error', st(504), true], ['gateway-error', st(500), false],
    ['gateway-error', timeout, true], ['gateway-error', connect, true],
    ['reset', connect, true], ['reset', reset, true], ['reset', timeout, true], ['reset', st(503), false],
    ['connect-failure', connect, true], ['connect-failure', timeout, false], ['connect-failure', st(503), false],
    ['reset-before-request', connect, true],
    ['retriable-4xx', st(409), true], ['retriable-4xx', st(404), false], ['retriable-4xx', st(429), false],
    ['retriable-status-codes', st(503), false],
    ['deadline-exceeded', st(200, 4), true], ['resource-exhausted', st(200, 8), true], ['internal', st(200, 13), true],
    ['unavailable', st(200, 14), true], ['unavailable', st(503), false], ['cancelled', st(200, 14), false],
    ['refused-stream', connect, false], ['refused-stream', reset, false], ['refused-stream', refused, true],
    ['refused-stream', timeout, false], ['refused-stream', st(503), false],
    // Envoy: every reset condition covers a refused stream; connect-failure and
    // reset-before-request do not (its headers went out).
    ['reset', refused, true], ['5xx', refused, true], ['gateway-error', refused, true],
    ['connect-failure', refused, false], ['reset-before-request', refused, false], ['retriable-status-codes', refused, false],
    ['connect-failure', reset, true]
  ]
  for (const [spec, f, want] of table) {
    t.equal(isRetriable(on(spec), f), want, `${spec} × ${f.kind === 'status' ? `${f.status}${f.grpcStatus !== undefined ? `/grpc ${f.grpcStatus}` : ''}` : f.kind === 'reset' && f.refused === true ? 'refused stream' : f.kind} → ${want}`)
  }
})

t.test('backoffMs: Envoy full-jitter back-off, [0, base × 2^n) capped at 10 × base', async t => {
  const p = retryPolicy(undefined)
  const max = (n: number): number => backoffMs(p, n, () => 0.999999)
  t.equal(backoffMs(p, 0, () => 0), 0, 'random 0 → no wait')
  t.equal(max(0), 24, 'first retry: [0, 25)')
  t.equal(max(1), 49, 'second: [0, 50)')
  t.equal(max(2), 99)
  t.equal(max(3), 199)
  t.equal(max(4), 249, 'capped at 250 (10 × base)')
  t.equal(max(20), 249)
  t.equal(backoffMs(p, 1, () => 0.5), 25)
  const custom = retryPolicy({ attempts: 5, backoff: '100ms' })
  t.equal(backoffMs(custom, 0, () => 0.999999), 99)
  t.equal(backoffMs(custom, 10, () => 0.999999), 999, 'cap 1000 ms')
  let ok = true
  let r = 1
  const lcg = (): number => { r = (r * 48271) % 2147483647; return r / 2147483647 }
  for (let n = 0; n < 8; n++) {
    for (let i = 0; i < 500; i++) {
      const v = backoffMs(p, n, lcg)
      if (!Number.isInteger(v) || v < 0 || v >= Math.min(25 * 2 ** n, 250)) ok = false
    }
  }
  t.ok(ok, '4000 random back-offs are whole milliseconds inside their bounds')
})
