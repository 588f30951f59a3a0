import t from 'tap'
import { ClusterState } from '../../src/runtime/cluster-state.js'
import type { ClusterSpec, EndpointSpec } from '../../src/compile/snapshot.js'
import type { TrafficPolicy } from '../../src/config/model.js'
import { type BreakerConfig, breakerConfig } from '../../src/resilience/breaker.js'
import { DEFAULT_PROBE } from '../../src/upstream/probe.js'
import { Flag, HostHealth, type EndpointState } from '../../src/upstream/endpoint.js'
import { holdsWithin } from '../helpers/wait.js'

// The mutable cluster: healthy-set maintenance, outlier ejection, panic mode, reloads, breakers.

const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

function endpoint (key: string, labels: Record<string, string> = {}, weight = 1): EndpointSpec {
  const [address, port] = key.split(':')
  return { key, address, port: Number(port), labels, weight }
}

function spec (endpoints: EndpointSpec[], policy: TrafficPolicy = {}, breaker: BreakerConfig = breakerConfig(undefined, undefined)): ClusterSpec {
  return {
    name: 'outbound|80|v1|app.default.svc.cluster.local',
    host: 'app.default.svc.cluster.local',
    port: 80,
    subset: 'v1',
    resolution: 'STATIC',
    endpoints,
    policy,
    breaker,
    probe: DEFAULT_PROBE
  }
}

/** A shared host-health registry (as the runtime keeps one per address:port) and a fake clock. */
function world (): { hosts: (key: string) => HostHealth; registry: Map<string, HostHealth>; clock: { now: number }; now: () => number } {
  const registry = new Map<string, HostHealth>()
  const hosts = (key: string): HostHealth => {
    let h = registry.get(key)
    if (h === undefined) { h = new HostHealth(key); registry.set(key, h) }
    return h
  }
  const clock = { now: 1_000_000 }
  return { hosts, registry, clock, now: () => clock.now }
}

const keys = (eps: readonly EndpointState[]): string[] => eps.map(e => e.key)
const E = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80']
const noRandom = (): number => { throw new Error('random() must not be called') }

t.test('a new cluster: every endpoint healthy; default balancer LEAST_REQUEST; no outlier detection', async t => {
  const w = world()
  const c = new ClusterState(spec(E.slice(0, 3).map(k => endpoint(k))), w.hosts, w.now)
  t.strictSame(keys(c.endpoints), E.slice(0, 3))
  t.strictSame(keys(c.healthy), E.slice(0, 3))
  t.ok(c.hasHealthy())
  t.equal(c.lb.kind, 'LEAST_REQUEST')
  t.equal(c.outlier, undefined, 'no outlierDetection → no detector')
  t.equal(c.limits.maxConnections, Infinity)
  for (const k of E.slice(0, 3)) t.ok(w.registry.get(k)!.watchers.has(c), `${k}: the cluster watches its host health`)
  t.equal(c.breaker(c.endpoints[0]), undefined, 'no outlierDetection → no breaker (Istio ejects nothing without it)')
  c.dispose()
})

t.test('healthy set follows HostHealth flags (shared by every cluster of the address)', async t => {
  const w = world()
  const base = new ClusterState(spec(E.slice(0, 3).map(k => endpoint(k)), { loadBalancer: { simple: 'ROUND_ROBIN' } }), w.hosts, w.now)
  const subset = new ClusterState({ ...spec([endpoint(E[1])]), name: 'outbound|80|v2|app.default.svc.cluster.local' }, w.hosts, w.now)
  const before = base.healthy
  w.registry.get(E[1])!.set(Flag.FailedProbe, true)
  t.strictSame(keys(base.healthy), [E[0], E[2]], 'the failing host leaves the base cluster')
  t.not(base.healthy, before, 'a new array (hash tables are keyed on its identity)')
  t.strictSame(keys(subset.healthy), [], '... and the subset cluster that shares it')
  t.notOk(subset.hasHealthy())
  const seen = new Set<string>()
  for (let i = 0; i < 6; i++) seen.add(base.pick({ random: noRandom })!.key)
  t.strictSame([...seen].sort(), [E[0], E[2]], 'picks only use the healthy set')
  t.equal(subset.pick({ random: noRandom }), undefined, 'no healthy host → undefined')

  w.registry.get(E[1])!.set(Flag.FailedProbe, false)
  t.strictSame(keys(base.healthy), E.slice(0, 3), 'back when the flag clears')
  t.strictSame(keys(subset.healthy), [E[1]])
  for (const f of [Flag.FailedConnect, Flag.Drained, Flag.Unresolved]) {
    w.registry.get(E[0])!.set(f, true)
    t.notOk(base.healthy.some(e => e.key === E[0]), `flag ${f} removes the host`)
    w.registry.get(E[0])!.set(f, false)
  }
  t.strictSame(keys(base.healthy), E.slice(0, 3))
  base.dispose()
  subset.dispose()
})

t.test('outlier ejection removes the endpoint from the healthy set; the sweep brings it back', async t => {
  const w = world()
  const c = new ClusterState(spec(E.slice(0, 3).map(k => endpoint(k)), {
    outlierDetection: { consecutive5xxErrors: 2, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 }
  }), w.hosts, w.now)
  const a = c.endpoints[0]
  c.record(a, { kind: 'response', status: 500 })
  t.strictSame(keys(c.healthy), E.slice(0, 3), 'one 5xx: still in')
  c.record(a, { kind: 'response', status: 503 })
  t.strictSame(keys(c.healthy), [E[1], E[2]], 'second 5xx ejects')
  t.equal(c.stats.ejections, 1)
  t.equal(a.failures, 2)
  t.ok(a.present, 'ejected, but still present')
  w.clock.now += 29_999
  c.sweep()
  t.strictSame(keys(c.healthy), [E[1], E[2]], 'still out before base ejection time')
  w.clock.now += 1
  c.sweep()
  t.strictSame(keys(c.healthy), E.slice(0, 3), 'back after 30 s at the sweep')
  c.dispose()
})

t.test('without outlierDetection: failures are counted, nothing is ejected', async t => {
  const w = world()
  const c = new ClusterState(spec(E.slice(0, 2).map(k => endpoint(k))), w.hosts, w.now)
  const a = c.endpoints[0]
  for (let i = 0; i < 20; i++) c.record(a, { kind: 'response', status: 503 })
  c.record(a, { kind: 'local', error: 'connect' })
  c.record(a, { kind: 'response', status: 404 })
  t.equal(a.failures, 21, '5xx and local failures count, 4xx does not')
  t.strictSame(keys(c.healthy), E.slice(0, 2))
  t.equal(c.stats.ejections, 0)
  c.sweep()
  c.dispose()
})

t.test('minHealthPercent: panic mode routes to every present host below the threshold', async t => {
  const w = world()
  const c = new ClusterState(spec(E.map(k => endpoint(k)), {
    outlierDetection: { consecutive5xxErrors: 1, maxEjectionPercent: 100, minHealthPercent: 50 }
  }), w.hosts, w.now)
  const [a, b, cc, d] = c.endpoints
  c.record(a, { kind: 'response', status: 500 })
  t.strictSame(keys(c.healthy), [E[1], E[2], E[3]], '3/4 healthy = 75% ≥ 50%: normal')
  c.record(b, { kind: 'response', status: 500 })
  t.strictSame(keys(c.healthy), [E[2], E[3]], '2/4 = 50% is not below 50%: normal')
  c.record(cc, { kind: 'response', status: 500 })
  t.strictSame(keys(c.healthy), E, '1/4 = 25% < 50%: panic, all hosts')
  // A host that fails its probe is absent (like a pod gone from EDS): not part of the panic set.
  w.registry.get(E[3])!.set(Flag.FailedProbe, true)
  t.strictSame(keys(c.healthy), [E[0], E[1], E[2]], 'panic set = present hosts only')
  t.ok(c.hasHealthy())
  w.registry.get(E[3])!.set(Flag.FailedProbe, false)
  t.equal(d.healthy, true)
  c.dispose()
})

t.test('minHealthPercent 0 (Istio default): no panic, all ejected → no healthy upstream', async t => {
  const w = world()
  const c = new ClusterState(spec(E.slice(0, 2).map(k => endpoint(k)), {
    outlierDetection: { consecutive5xxErrors: 1, maxEjectionPercent: 100 }
  }), w.hosts, w.now)
  for (const e of c.endpoints) c.record(e, { kind: 'response', status: 500 })
  t.strictSame(keys(c.healthy), [])
  t.notOk(c.hasHealthy())
  t.equal(c.pick({ random: noRandom }), undefined)
  c.dispose()
})

t.test('default maxEjectionPercent (10%) with 3 hosts: one ejected, the second refused', async t => {
  const w = world()
  const c = new ClusterState(spec(E.slice(0, 3).map(k => endpoint(k)), { outlierDetection: { consecutive5xxErrors: 1 } }), w.hosts, w.now)
  c.record(c.endpoints[0], { kind: 'response', status: 500 })
  c.record(c.endpoints[1], { kind: 'response', status: 500 })
  t.strictSame(keys(c.healthy), [E[1], E[2]])
  t.equal(c.stats.ejections, 1)
  c.dispose()
})

t.test('update(): endpoints with the same key keep their state; removed ones are released', async t => {
  const w = world()
  const policy: TrafficPolicy = { outlierDetection: { consecutive5xxErrors: 1, maxEjectionPercent: 100 } }
  const c = new ClusterState(spec(E.slice(0, 3).map(k => endpoint(k, { version: 'v1' })), policy), w.hosts, w.now)
  const [a, b, gone] = c.endpoints
  a.active = 2
  c.record(b, { kind: 'response', status: 500 })
  t.ok((b.flags & Flag.Ejected) !== 0)
  const lb = c.lb
  const detector = c.outlier

  c.update(spec([endpoint(E[0], { version: 'v1', zone: 'a' }, 3), endpoint(E[1], { version: 'v1' }), endpoint(E[3], { version: 'v1' })], policy))
  t.equal(c.endpoints[0], a, 'same EndpointState object for the kept key')
  t.equal(c.endpoints[1], b)
  t.equal(a.active, 2, 'in-flight count kept')
  t.equal(a.spec.weight, 3, 'new spec applied')
  t.strictSame(a.spec.labels, { version: 'v1', zone: 'a' })
  t.ok((b.flags & Flag.Ejected) !== 0, 'ejection kept')
  t.equal(b.ejections, 1)
  t.strictSame(keys(c.healthy), [E[0], E[3]])
  t.equal(c.endpoints[2].key, E[3], 'new endpoint added')
  t.notOk(w.registry.get(E[2])!.watchers.has(c), 'removed endpoint: its host is no longer watched')
  t.notOk(c.endpoints.includes(gone))
  t.ok(w.registry.get(E[3])!.watchers.has(c))
  t.equal(c.lb, lb, 'same policy: same balancer')
  t.equal(c.outlier, detector, 'same policy: same detector')

  w.registry.get(E[2])!.set(Flag.FailedProbe, true)
  t.strictSame(keys(c.healthy), [E[0], E[3]], 'a removed host\'s flags no longer matter')

  c.update(spec([endpoint(E[0]), endpoint(E[1]), endpoint(E[3])], { ...policy, loadBalancer: { simple: 'ROUND_ROBIN' } }))
  t.equal(c.lb.kind, 'ROUND_ROBIN', 'policy change: new balancer')
  t.not(c.outlier, detector, '... and a new detector')
  t.equal(c.endpoints[1], b, 'endpoint state still kept')
  t.ok((b.flags & Flag.Ejected) !== 0, 'still ejected under the new detector')
  w.clock.now += 30_000
  c.sweep()
  t.ok(b.healthy, 'the new detector releases it')
  c.dispose()
})

t.test('update() removing outlierDetection releases ejected endpoints', async t => {
  const w = world()
  const c = new ClusterState(spec(E.slice(0, 2).map(k => endpoint(k)), {
    outlierDetection: { consecutive5xxErrors: 1, maxEjectionPercent: 100 }
  }), w.hosts, w.now)
  c.record(c.endpoints[0], { kind: 'response', status: 500 })
  t.strictSame(keys(c.healthy), [E[1]])
  c.update(spec(E.slice(0, 2).map(k => endpoint(k))))
  t.equal(c.outlier, undefined)
  t.strictSame(keys(c.healthy), E.slice(0, 2), 'nothing would ever sweep the ejection away: released at once')
  t.equal(c.endpoints[0].ejections, 0)
  c.dispose()
})

t.test('connection-pool limits follow the policy', async t => {
  const w = world()
  const c = new ClusterState(spec([endpoint(E[0])], { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } }), w.hosts, w.now)
  t.equal(c.limits.maxConnections, 1)
  t.equal(c.limits.maxPending, 1)
  c.update(spec([endpoint(E[0])]))
  t.equal(c.limits.maxConnections, Infinity, 'policy removed: unlimited again')
  c.dispose()
})

t.test('breaker open → endpoint unhealthy; half-open and close → healthy again', async t => {
  const w = world()
  const cfg: BreakerConfig = { enabled: true, errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeoutMs: 50, rollingCountTimeoutMs: 10_000 }
  const c = new ClusterState(spec(E.slice(0, 2).map(k => endpoint(k)), {}, cfg), w.hosts, w.now)
  t.teardown(() => { c.dispose() })
  const a = c.endpoints[0]
  const br = c.breaker(a)!
  t.equal(c.breaker(a), br, 'one breaker per endpoint')
  br.begin()!(false)
  br.begin()!(false)
  await tick()
  t.equal(br.state, 'open')
  t.ok((a.flags & Flag.BreakerOpen) !== 0, 'BreakerOpen set')
  t.notOk(a.healthy)
  t.ok(a.present, 'an open breaker does not make the host absent')
  t.strictSame(keys(c.healthy), [E[1]], 'out of the healthy set')

  t.ok(await holdsWithin(() => br.state === 'halfOpen'), 'half-open after resetTimeout')
  t.strictSame(keys(c.healthy), E.slice(0, 2), 'half-open: back in the set for its trial')
  const trial = br.begin()
  t.ok(trial !== undefined)
  t.equal(br.begin(), undefined, 'only one trial')
  trial!(true)
  await tick()
  t.equal(br.state, 'closed')
  t.strictSame(keys(c.healthy), E.slice(0, 2))
})

t.test('breakers: disabled config → none; a policy change resets them and clears BreakerOpen', async t => {
  const w = world()
  const off = new ClusterState(spec([endpoint(E[0])], {}, { ...breakerConfig(undefined, undefined), enabled: false }), w.hosts, w.now)
  t.equal(off.breaker(off.endpoints[0]), undefined)
  off.dispose()

  const cfg: BreakerConfig = { enabled: true, errorThresholdPercentage: 50, volumeThreshold: 1, resetTimeoutMs: 10_000, rollingCountTimeoutMs: 10_000 }
  const c = new ClusterState(spec(E.slice(0, 2).map(k => endpoint(k)), {}, cfg), w.hosts, w.now)
  t.teardown(() => { c.dispose() })
  const a = c.endpoints[0]
  const br = c.breaker(a)!
  br.begin()!(false)
  await tick()
  t.strictSame(keys(c.healthy), [E[1]], 'open breaker')
  c.update(spec(E.slice(0, 2).map(k => endpoint(k)), {}, { ...cfg, volumeThreshold: 5 }))
  t.equal(c.breakers.size, 0, 'old breakers shut down')
  t.equal(a.flags & Flag.BreakerOpen, 0, 'BreakerOpen cleared')
  t.strictSame(keys(c.healthy), E.slice(0, 2))
  t.not(c.breaker(a), br, 'a fresh breaker')

  c.setBreakerOpen(a, true)
  t.strictSame(keys(c.healthy), [E[1]], 'setBreakerOpen(true) removes it')
  c.setBreakerOpen(a, false)
  t.strictSame(keys(c.healthy), E.slice(0, 2))
})

t.test('dispose(): stops watching host health and empties the cluster', async t => {
  const w = world()
  const c = new ClusterState(spec(E.slice(0, 2).map(k => endpoint(k))), w.hosts, w.now)
  c.dispose()
  for (const k of E.slice(0, 2)) t.notOk(w.registry.get(k)!.watchers.has(c))
  t.strictSame(c.endpoints, [])
  t.strictSame(c.healthy, [])
  t.notOk(c.hasHealthy())
})

t.test('pick passes the context through (exclude, hash key)', async t => {
  const w = world()
  const c = new ClusterState(spec(E.slice(0, 3).map(k => endpoint(k)), { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } }), w.hosts, w.now)
  const home = c.pick({ random: noRandom, hashKey: 'alice' })!
  t.equal(c.pick({ random: noRandom, hashKey: 'alice' }), home, 'sticky')
  t.not(c.pick({ random: noRandom, hashKey: 'alice', exclude: new Set([home]) }), home, 'exclude honoured')
  w.registry.get(home.key)!.set(Flag.FailedProbe, true)
  const moved = c.pick({ random: noRandom, hashKey: 'alice' })!
  t.not(moved, home, 'the key moves off an unhealthy host')
  w.registry.get(home.key)!.set(Flag.FailedProbe, false)
  t.equal(c.pick({ random: noRandom, hashKey: 'alice' }), home, 'and comes back with it')
  c.dispose()
})
