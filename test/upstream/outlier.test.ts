import t from 'tap'
import { OutlierDetector, outlierConfig, type Outcome, type OutlierConfig } from '../../src/upstream/outlier.js'
import { EndpointState, Flag, HostHealth } from '../../src/upstream/endpoint.js'
import type { OutlierDetection } from '../../src/config/model.js'

// Outlier detection (Envoy consecutive-error ejection, Istio defaults) with a fake clock.

function ep (key: string): EndpointState {
  const [address, port] = key.split(':')
  return new EndpointState({ key, address, port: Number(port), labels: {}, weight: 1 }, new HostHealth(key))
}

const ejected = (e: EndpointState): boolean => (e.flags & Flag.Ejected) !== 0
const status = (s: number): Outcome => ({ kind: 'response', status: s })
const local = (error: 'connect' | 'timeout' | 'reset'): Outcome => ({ kind: 'local', error })

/** A detector over `n` endpoints with a mutable clock. */
function setup (od: OutlierDetection, n = 3): { det: OutlierDetector; eps: EndpointState[]; clock: { now: number } } {
  const clock = { now: 1_000_000 }
  const cfg = outlierConfig(od)
  if (cfg === undefined) throw new Error('expected a config')
  const eps = Array.from({ length: n }, (_, i) => ep(`10.0.0.${i + 1}:80`))
  return { det: new OutlierDetector(cfg, () => clock.now), eps, clock }
}

/** Record outcomes in order; returns the ejection result of each. */
function feed (det: OutlierDetector, e: EndpointState, members: readonly EndpointState[], outcomes: Outcome[]): boolean[] {
  return outcomes.map(o => det.record(e, o, members))
}

t.test('outlierConfig: no outlierDetection means no detection', async t => {
  t.equal(outlierConfig(undefined), undefined)
})

t.test('outlierConfig: Istio/Envoy defaults', async t => {
  const want: OutlierConfig = {
    consecutive5xx: 5,
    consecutiveGateway: 0,
    consecutiveLocal: 5,
    split: false,
    intervalMs: 10_000,
    baseEjectionMs: 30_000,
    maxEjectionMs: 300_000,
    maxEjectionPercent: 10,
    minHealthPercent: 0
  }
  t.strictSame(outlierConfig({}), want)
})

t.test('outlierConfig: explicit values', async t => {
  const c = outlierConfig({
    consecutive5xxErrors: 3,
    consecutiveGatewayErrors: 2,
    splitExternalLocalOriginErrors: true,
    consecutiveLocalOriginFailures: 4,
    interval: '1s',
    baseEjectionTime: '2m',
    maxEjectionPercent: 50,
    minHealthPercent: 30
  })!
  t.equal(c.consecutive5xx, 3)
  t.equal(c.consecutiveGateway, 2)
  t.equal(c.split, true)
  t.equal(c.consecutiveLocal, 4)
  t.equal(c.intervalMs, 1000)
  t.equal(c.baseEjectionMs, 120_000)
  t.equal(c.maxEjectionMs, 300_000, 'Envoy max_ejection_time default 300 s')
  t.equal(c.maxEjectionPercent, 50)
  t.equal(c.minHealthPercent, 30)
  t.equal(outlierConfig({ baseEjectionTime: '10m' })!.maxEjectionMs, 600_000, 'max ejection time is never below the base')
  t.equal(outlierConfig({ consecutive5xxErrors: 0 })!.consecutive5xx, 0, 'consecutive5xxErrors 0 disables')
  t.equal(outlierConfig({ consecutiveErrors: 4 })!.consecutiveGateway, 4, 'deprecated consecutiveErrors → gateway errors')
  t.equal(outlierConfig({ consecutiveErrors: 4 })!.consecutive5xx, 0, '... and turns the 5xx counter off')
  // Istio only passes these when > 0 (cluster_traffic_policy.go): 0 leaves Envoy's defaults.
  t.equal(outlierConfig({ maxEjectionPercent: 0 })!.maxEjectionPercent, 10, 'maxEjectionPercent 0 → 10')
  t.equal(outlierConfig({ splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 0 })!.consecutiveLocal, 5,
    'consecutiveLocalOriginFailures 0 → 5')
})

t.test('consecutive 5xx: ejection exactly at the 5th; a success in between resets the count', async t => {
  const { det, eps, clock } = setup({})
  const [a] = eps
  t.strictSame(feed(det, a, eps, [status(500), status(503), status(500), status(502)]), [false, false, false, false])
  t.notOk(ejected(a), 'four 5xx: still in')
  t.equal(a.consecutive5xx, 4)
  t.equal(det.record(a, status(500), eps), true, 'the fifth 5xx ejects')
  t.ok(ejected(a))
  t.equal(a.ejections, 1)
  t.equal(a.ejectedUntil, clock.now + 30_000, 'for the base ejection time')
  t.equal(a.consecutive5xx, 0, 'counters reset on ejection')

  const b = eps[1]
  t.strictSame(feed(det, b, eps, [status(500), status(500), status(500), status(500), status(200)]), [false, false, false, false, false])
  t.equal(b.consecutive5xx, 0, '2xx resets')
  t.strictSame(feed(det, b, eps, [status(500), status(500), status(500), status(500)]), [false, false, false, false])
  t.notOk(ejected(b), 'four after the reset: still in')
  const c = eps[2]
  feed(det, c, eps, [status(500), status(500), status(404), status(500), status(500), status(500), status(500)])
  t.notOk(ejected(c), 'a 4xx is not an error and resets the count too')
})

t.test('consecutive5xxErrors 0 disables 5xx ejection', async t => {
  const { det, eps } = setup({ consecutive5xxErrors: 0 })
  feed(det, eps[0], eps, Array.from({ length: 50 }, () => status(500)))
  t.notOk(ejected(eps[0]))
})

t.test('consecutiveGatewayErrors counts only 502/503/504', async t => {
  const { det, eps } = setup({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 3, maxEjectionPercent: 100 })
  const [a, b, c] = eps
  feed(det, a, eps, [status(500), status(500), status(500), status(500), status(500)])
  t.notOk(ejected(a), '500s are not gateway errors')
  t.strictSame(feed(det, b, eps, [status(502), status(503), status(500), status(504), status(502)]), [false, false, false, false, false])
  t.notOk(ejected(b), 'a non-gateway 5xx resets the gateway count')
  t.equal(det.record(b, status(503), eps), true, 'third consecutive gateway error after the reset ejects')
  t.strictSame(feed(det, c, eps, [status(504), status(504), status(504)]), [false, false, true], '504 504 504 → ejected at the third')
})

t.test('gateway errors and 5xx both enabled: whichever reaches its threshold first ejects', async t => {
  const { det, eps } = setup({ consecutive5xxErrors: 5, consecutiveGatewayErrors: 2 })
  t.strictSame(feed(det, eps[0], eps, [status(502), status(503)]), [false, true])
})

t.test('local-origin failures count as 5xx (503, timeout 504) unless split', async t => {
  const { det, eps } = setup({ maxEjectionPercent: 100 })
  const [a, b] = eps
  t.strictSame(feed(det, a, eps, [local('connect'), local('reset'), local('timeout'), local('connect'), local('connect')]),
    [false, false, false, false, true], 'five local failures eject')
  feed(det, b, eps, [local('connect'), local('connect'), status(200), local('connect'), local('connect'), local('connect'), local('connect')])
  t.notOk(ejected(b), 'a success resets the count')

  const g = setup({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2 })
  t.strictSame(feed(g.det, g.eps[0], g.eps, [local('timeout'), local('reset')]), [false, true],
    'timeouts (504) and resets (503) are gateway errors')
})

t.test('split local-origin errors count against consecutiveLocalOriginFailures only', async t => {
  const { det, eps } = setup({ splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 3, maxEjectionPercent: 100 })
  const [a, b, c] = eps
  t.strictSame(feed(det, a, eps, [local('connect'), local('timeout'), local('reset')]), [false, false, true], 'third local failure ejects')
  t.equal(a.consecutive5xx, 0, 'local failures did not touch the 5xx count')

  feed(det, b, eps, [status(500), status(500), status(500), status(500), local('connect'), local('connect')])
  t.notOk(ejected(b))
  t.equal(b.consecutive5xx, 4, 'local failures do not reset the 5xx count either')
  t.equal(det.record(b, status(500), eps), true, 'fifth 5xx response ejects')

  // Any response means the connection worked (Envoy LocalOriginConnectSuccess): local count resets.
  feed(det, c, eps, [local('connect'), local('connect'), status(503), local('connect'), local('connect')])
  t.notOk(ejected(c), 'the 503 response reset the local count')
  t.equal(det.record(c, local('connect'), eps), true, 'three in a row after it eject')
})

t.test('ejection time is base × times ejected; un-ejection only at a sweep at/after ejectedUntil', async t => {
  const { det, eps, clock } = setup({ consecutive5xxErrors: 1, interval: '10s', baseEjectionTime: '30s' })
  const [a] = eps
  const t0 = clock.now
  t.ok(det.record(a, status(500), eps))
  t.equal(a.ejectedUntil, t0 + 30_000, 'first ejection: 30 s')

  clock.now = t0 + 29_999
  t.equal(det.sweep(eps), false, 'sweep before the time is up: no change')
  t.ok(ejected(a))
  clock.now = t0 + 45_000
  t.ok(ejected(a), 'time passing alone un-ejects nothing')
  t.equal(det.sweep(eps), true, 'the next sweep after ejectedUntil releases it')
  t.notOk(ejected(a))
  t.equal(a.ejectedUntil, 0)
  t.equal(a.ejections, 1, 'the count survives the un-ejection')

  const t1 = clock.now
  t.ok(det.record(a, status(500), eps))
  t.equal(a.ejections, 2)
  t.equal(a.ejectedUntil, t1 + 60_000, 'second ejection lasts 2 × base')
  clock.now = t1 + 59_999
  det.sweep(eps)
  t.ok(ejected(a), 'still out just before 60 s')
  clock.now = t1 + 60_000
  t.equal(det.sweep(eps), true, 'a sweep exactly at ejectedUntil releases it')
  t.notOk(ejected(a))

  t.equal(det.record(a, status(500), eps), true)
  t.equal(a.ejectedUntil, clock.now + 90_000, 'third: 3 × base')
})

t.test('ejection count decays by one per sweep while healthy', async t => {
  const { det, eps, clock } = setup({ consecutive5xxErrors: 1, maxEjectionPercent: 100 })
  const [a] = eps
  det.record(a, status(500), eps)
  clock.now += 30_000
  det.sweep(eps)
  det.record(a, status(500), eps)
  t.equal(a.ejections, 2)
  clock.now += 60_000
  det.sweep(eps)
  t.notOk(ejected(a))
  t.equal(a.ejections, 2, 'the releasing sweep does not decay')
  clock.now += 10_000
  t.equal(det.sweep(eps), false, 'decay alone is not a health change')
  t.equal(a.ejections, 1, 'one sweep while healthy: 2 → 1')
  clock.now += 10_000
  det.sweep(eps)
  t.equal(a.ejections, 0, '1 → 0')
  det.sweep(eps)
  t.equal(a.ejections, 0, 'never below 0')
  const t2 = clock.now
  det.record(a, status(500), eps)
  t.equal(a.ejectedUntil, t2 + 30_000, 'after full decay the next ejection is 1 × base again')

  // An ejected host does not decay while out.
  const b = eps[1]
  det.record(b, status(500), eps)
  clock.now += 10_000
  det.sweep(eps)
  t.equal(b.ejections, 1, 'no decay while ejected')
})

t.test('ejection time is capped by max ejection time (300 s)', async t => {
  const { det, eps, clock } = setup({ consecutive5xxErrors: 1 })
  const [a] = eps
  for (let i = 1; i <= 11; i++) {
    det.record(a, status(500), eps)
    t.equal(a.ejections, i)
    if (i === 11) t.equal(a.ejectedUntil, clock.now + 300_000, '11 × 30 s capped at 300 s')
    clock.now = a.ejectedUntil
    det.sweep(eps)
  }
})

t.test('maxEjectionPercent: 10% of 3 hosts still ejects one (at least one always), not a second', async t => {
  const { det, eps, clock } = setup({})
  const [a, b, c] = eps
  feed(det, a, eps, Array.from({ length: 5 }, () => status(500)))
  t.ok(ejected(a), 'the first host is ejected although 1/3 > 10%')
  t.strictSame(feed(det, b, eps, Array.from({ length: 5 }, () => status(500))), [false, false, false, false, false])
  t.notOk(ejected(b), 'a second ejection is refused')
  t.equal(b.ejections, 0)
  feed(det, c, eps, Array.from({ length: 10 }, () => status(500)))
  t.notOk(ejected(c), 'and a third')

  // Envoy resets the counter that fired even when the ejection is refused.
  t.equal(b.consecutive5xx, 0, 'the refused host starts counting again')
  clock.now += 30_000
  det.sweep(eps)
  t.notOk(ejected(a), 'a released')
  t.equal(det.record(b, status(500), eps), false, 'one more 5xx is not enough once room frees up')
  t.strictSame(feed(det, b, eps, [status(500), status(500), status(500), status(500)]), [false, false, false, true],
    'a full run of five is')
})

t.test('maxEjectionPercent 100: every host can be ejected', async t => {
  const { det, eps } = setup({ maxEjectionPercent: 100, consecutive5xxErrors: 2 })
  for (const e of eps) t.strictSame(feed(det, e, eps, [status(500), status(500)]), [false, true], `${e.key} ejected`)
  t.ok(eps.every(ejected), 'all three out')
})

t.test('an ejected host that still sees errors is not ejected again', async t => {
  const { det, eps, clock } = setup({ consecutive5xxErrors: 1, maxEjectionPercent: 100 })
  const [a] = eps
  det.record(a, status(500), eps)
  const until = a.ejectedUntil
  clock.now += 1000
  t.equal(det.record(a, status(500), eps), false)
  t.equal(a.ejections, 1)
  t.equal(a.ejectedUntil, until, 'ejection end unchanged')
})
