import t from 'tap'
import type { ClusterSpec, Snapshot } from '../../src/compile/snapshot.js'
import { RETIRE_GRACE_MS, RuntimeState } from '../../src/runtime/state.js'
import { breakerConfig } from '../../src/resilience/breaker.js'
import { DEFAULT_PROBE } from '../../src/upstream/probe.js'

// Reload reconciliation: a cluster that leaves the configuration retires. Requests of the
// older snapshot (a retry, a delayed request) still find it; it is released only once
// nothing is in flight to it and the grace period has passed.

function spec (name: string): ClusterSpec {
  return {
    name,
    host: 'app.default.svc.cluster.local',
    port: 80,
    subset: name.split('|')[2],
    resolution: 'STATIC',
    endpoints: [{ key: '10.0.0.1:80', address: '10.0.0.1', port: 80, labels: {}, weight: 1 }],
    policy: {},
    breaker: breakerConfig(undefined, undefined),
    probe: DEFAULT_PROBE
  }
}
const snap = (...names: string[]): Snapshot => ({ clusters: new Map(names.map(n => [n, spec(n)])) }) as unknown as Snapshot
const V1 = 'outbound|80|v1|app.default.svc.cluster.local'
const V2 = 'outbound|80|v2|app.default.svc.cluster.local'

t.test('a removed cluster stays reachable until drained and past the grace period', async t => {
  const clock = { now: 1_000_000 }
  const rt = new RuntimeState(snap(V1, V2), () => clock.now)
  const removed: string[][] = []
  rt.onRemoved(names => removed.push(names))
  const v2 = rt.cluster(V2)!
  v2.active = 1 // a request in flight on the old snapshot

  rt.reconcile(snap(V1))
  t.equal(rt.cluster(V2), v2, 'still found by name after the reload')
  t.same([...rt.allClusters()].map(c => c.spec.name), [V1], 'but not part of the configuration')
  t.same(rt.retiringClusters(), [V2])

  clock.now += RETIRE_GRACE_MS
  rt.collect()
  t.same(removed, [], 'not released while a request is in flight')
  v2.active = 0
  rt.collect()
  t.same(removed, [[V2]], 'released once drained and past the grace period')
  t.equal(rt.cluster(V2), undefined)
})

t.test('a cluster that comes back within the grace period keeps its state', async t => {
  const clock = { now: 1_000_000 }
  const rt = new RuntimeState(snap(V1, V2), () => clock.now)
  const removed: string[][] = []
  rt.onRemoved(names => removed.push(names))
  const v2 = rt.cluster(V2)!
  v2.stats.requests = 7
  rt.reconcile(snap(V1))
  clock.now += 1000
  rt.reconcile(snap(V1, V2))
  t.equal(rt.cluster(V2), v2, 'the same state object')
  t.equal(rt.cluster(V2)!.stats.requests, 7)
  t.same(rt.retiringClusters(), [])
  clock.now += RETIRE_GRACE_MS
  rt.collect()
  t.same(removed, [], 'never released')
})

t.test('collect(true) releases every retiring cluster at once (shutdown)', async t => {
  const rt = new RuntimeState(snap(V1, V2))
  const removed: string[][] = []
  rt.onRemoved(names => removed.push(names))
  rt.cluster(V2)!.active = 3
  rt.reconcile(snap(V1))
  rt.collect(true)
  t.same(removed, [[V2]])
})
