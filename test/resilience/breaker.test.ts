import t from 'tap'
import { type BreakerConfig, breakerConfig, type BreakerState, EndpointBreaker } from '../../src/resilience/breaker.js'
import { holdsWithin, sleep } from '../helpers/wait.js'

// The per-endpoint error-rate breaker over opossum, with real (short) timers.

const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

const fast: BreakerConfig = { enabled: true, errorThresholdPercentage: 50, volumeThreshold: 4, resetTimeoutMs: 50, rollingCountTimeoutMs: 10_000 }

function make (t: { teardown: (fn: () => void) => void }, cfg: BreakerConfig = fast): { b: EndpointBreaker; states: BreakerState[] } {
  const states: BreakerState[] = []
  const b = new EndpointBreaker(cfg, s => { states.push(s) })
  t.teardown(() => { b.shutdown() })
  return { b, states }
}

/** Run one request through the breaker with the given outcome; false when it was refused. */
async function run (b: EndpointBreaker, ok: boolean): Promise<boolean> {
  const settle = b.begin()
  if (settle === undefined) return false
  settle(ok)
  await tick()
  return true
}

t.test('breakerConfig: defaults and outlier-derived timings', async t => {
  t.strictSame(breakerConfig(undefined, undefined), {
    enabled: false, errorThresholdPercentage: 50, volumeThreshold: 20, resetTimeoutMs: 30_000, rollingCountTimeoutMs: 10_000
  }, 'no outlierDetection and no annotation: no breaker (Istio never ejects without outlierDetection)')
  t.equal(breakerConfig(undefined, { consecutive5xxErrors: 5 }).enabled, true, 'outlierDetection turns it on')
  t.equal(breakerConfig({}, undefined).enabled, true, 'so does the annotation')
  const fromOutlier = breakerConfig(undefined, { baseEjectionTime: '5s', interval: '2s' })
  t.equal(fromOutlier.resetTimeoutMs, 5000, 'resetTimeout follows baseEjectionTime')
  t.equal(fromOutlier.rollingCountTimeoutMs, 2000, 'rolling window follows interval')
  t.strictSame(breakerConfig({ errorThresholdPercentage: 25, volumeThreshold: 4, resetTimeout: '50ms', rollingCountTimeout: 1000, enabled: false },
    { baseEjectionTime: '5s' }), {
    enabled: false, errorThresholdPercentage: 25, volumeThreshold: 4, resetTimeoutMs: 50, rollingCountTimeoutMs: 1000
  }, 'the annotation wins')
  const bad = breakerConfig({ errorThresholdPercentage: 'x', volumeThreshold: Number.NaN, resetTimeout: 'soon' }, undefined)
  t.equal(bad.errorThresholdPercentage, 50, 'non-numbers fall back')
  t.equal(bad.volumeThreshold, 20)
  t.equal(bad.resetTimeoutMs, 30_000, 'a bad duration falls back')
  t.equal(breakerConfig({ enabled: 'no' }, undefined).enabled, true, 'only enabled: false disables')
})

t.test('closed: stays closed below volumeThreshold, even at 100% errors', async t => {
  const { b, states } = make(t)
  t.equal(b.state, 'closed')
  t.ok(b.admits)
  for (let i = 0; i < 3; i++) t.ok(await run(b, false), `failure ${i + 1} admitted`)
  t.equal(b.state, 'closed', '3 requests < volumeThreshold 4')
  t.strictSame(states, [])
})

t.test('closed: at the threshold rate (not above) it stays closed', async t => {
  const { b } = make(t)
  await run(b, true)
  await run(b, true)
  await run(b, false)
  await run(b, false)
  t.equal(b.state, 'closed', '2 of 4 = 50% is not above 50%')
  await run(b, false)
  t.equal(b.state, 'open', '3 of 5 = 60% opens')
})

t.test('open after the error rate exceeds the threshold over volumeThreshold; refuses while open', async t => {
  const { b, states } = make(t)
  for (let i = 0; i < 4; i++) await run(b, false)
  t.equal(b.state, 'open', '4 of 4 failed')
  t.strictSame(states, ['open'])
  t.notOk(b.admits)
  t.equal(b.begin(), undefined, 'refused while open')
  t.equal(b.stats().fires, 4)
  t.equal(b.stats().failures, 4)
})

t.test('half-open after resetTimeout: exactly one trial; success closes', async t => {
  const { b, states } = make(t)
  for (let i = 0; i < 4; i++) await run(b, false)
  t.equal(b.state, 'open')
  t.ok(await holdsWithin(() => b.state === 'halfOpen'), 'half-open after resetTimeout (50 ms)')
  t.strictSame(states, ['open', 'halfOpen'])
  t.ok(b.admits, 'half-open admits the trial')
  const trial = b.begin()
  t.type(trial, 'function', 'the first request is the trial')
  t.equal(b.state, 'halfOpen', 'still half-open while the trial runs')
  t.notOk(b.admits)
  t.equal(b.begin(), undefined, 'a second concurrent request is refused')
  t.equal(b.begin(), undefined, 'and a third')
  trial!(true)
  await tick()
  t.equal(b.state, 'closed', 'trial success closes')
  t.strictSame(states, ['open', 'halfOpen', 'closed'])
  t.ok(b.admits)
  const a1 = b.begin()
  const a2 = b.begin()
  t.ok(a1 !== undefined && a2 !== undefined, 'closed again: concurrent requests go through')
  a1!(true)
  a2!(true)
  await tick()
})

t.test('half-open trial failure reopens, and the cycle repeats', async t => {
  const { b, states } = make(t)
  for (let i = 0; i < 4; i++) await run(b, false)
  t.ok(await holdsWithin(() => b.state === 'halfOpen'))
  t.ok(await run(b, false), 'trial admitted')
  t.equal(b.state, 'open', 'trial failure reopens')
  t.equal(b.begin(), undefined)
  t.strictSame(states, ['open', 'halfOpen', 'open'])
  t.ok(await holdsWithin(() => b.state === 'halfOpen'), 'half-open again after another resetTimeout')
  t.ok(await run(b, true))
  t.equal(b.state, 'closed')
  t.strictSame(states, ['open', 'halfOpen', 'open', 'halfOpen', 'closed'])
})

t.test('the open period lasts resetTimeout', async t => {
  const { b } = make(t, { ...fast, resetTimeoutMs: 150 })
  for (let i = 0; i < 4; i++) await run(b, false)
  const opened = Date.now()
  await sleep(60)
  t.equal(b.state, 'open', 'still open well before resetTimeout')
  t.ok(await holdsWithin(() => b.state === 'halfOpen'))
  t.ok(Date.now() - opened >= 140, `half-open after ≈ resetTimeout (${Date.now() - opened} ms)`)
})

t.test('disabled: never opens', async t => {
  const { b, states } = make(t, { ...fast, enabled: false })
  for (let i = 0; i < 20; i++) t.ok(await run(b, false))
  t.equal(b.state, 'closed')
  t.strictSame(states, [])
})

t.test('opossum\'s own timeout is off: a slow outcome is not failed by the breaker', async t => {
  const { b } = make(t, { ...fast, volumeThreshold: 1 })
  const settle = b.begin()!
  await sleep(30)
  settle(true)
  await tick()
  t.equal(b.stats().failures, 0)
  t.equal(b.stats().successes, 1)
  t.equal(b.state, 'closed')
})
