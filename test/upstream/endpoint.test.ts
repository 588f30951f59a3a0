import t from 'tap'
import { ABSENT_FLAGS, EndpointState, Flag, HostHealth } from '../../src/upstream/endpoint.js'

// Host health flags (shared per address:port) and per-cluster endpoint state.

function ep (key: string, host = new HostHealth(key)): EndpointState {
  const [address, port] = key.split(':')
  return new EndpointState({ key, address, port: Number(port), labels: { version: 'v1' }, weight: 1 }, host)
}

t.test('Flag values are distinct bits; ABSENT_FLAGS are the ones that take a host out of its service', async t => {
  const values = Object.values(Flag)
  t.equal(new Set(values).size, values.length, 'distinct')
  for (const v of values) t.equal(v & (v - 1), 0, `${v} is a single bit`)
  t.equal(ABSENT_FLAGS, Flag.FailedProbe | Flag.FailedConnect | Flag.Drained | Flag.Unresolved)
  t.equal(ABSENT_FLAGS & Flag.Ejected, 0, 'an ejected host is still present (counts for panic)')
  t.equal(ABSENT_FLAGS & Flag.BreakerOpen, 0, 'so is one with an open breaker')
})

t.test('HostHealth.set: sets and clears one flag, notifies watchers only on a change', async t => {
  const h = new HostHealth('10.0.0.1:80')
  let refreshes = 0
  h.watchers.add({ refresh: () => { refreshes++ } })
  h.set(Flag.FailedProbe, true)
  t.equal(h.flags, Flag.FailedProbe)
  t.equal(refreshes, 1)
  h.set(Flag.FailedProbe, true)
  t.equal(refreshes, 1, 'setting an already set flag is no change')
  h.set(Flag.Drained, true)
  t.equal(h.flags, Flag.FailedProbe | Flag.Drained)
  t.equal(refreshes, 2)
  h.set(Flag.FailedProbe, false)
  t.equal(h.flags, Flag.Drained, 'clearing one flag leaves the others')
  t.equal(refreshes, 3)
  h.set(Flag.FailedConnect, false)
  t.equal(refreshes, 3, 'clearing an unset flag is no change')

  let second = 0
  h.watchers.add({ refresh: () => { second++ } })
  h.set(Flag.Drained, false)
  t.equal(refreshes, 4)
  t.equal(second, 1, 'every watcher is told')
})

t.test('EndpointState: healthy needs no flag anywhere; present ignores cluster-local flags', async t => {
  const e = ep('10.0.0.1:80')
  t.equal(e.key, '10.0.0.1:80', 'key comes from the spec')
  t.ok(e.healthy)
  t.ok(e.present)
  t.equal(e.active, 0)
  t.equal(e.ejections, 0)

  e.flags |= Flag.Ejected
  t.notOk(e.healthy, 'ejected → not healthy')
  t.ok(e.present, 'ejected → still present')
  e.flags = Flag.BreakerOpen
  t.notOk(e.healthy)
  t.ok(e.present)
  e.flags = 0

  for (const [name, f] of Object.entries(Flag)) {
    if (f === Flag.Ejected || f === Flag.BreakerOpen) continue
    e.host.set(f, true)
    t.notOk(e.healthy, `host flag ${name} → not healthy`)
    t.notOk(e.present, `host flag ${name} → absent`)
    e.host.set(f, false)
  }
  t.ok(e.healthy && e.present, 'all clear again')
})

t.test('two clusters sharing one HostHealth see the same host flags, but keep their own local flags', async t => {
  const host = new HostHealth('10.0.0.1:80')
  const inBase = ep('10.0.0.1:80', host)
  const inSubset = ep('10.0.0.1:80', host)
  inBase.flags |= Flag.Ejected
  t.notOk(inBase.healthy)
  t.ok(inSubset.healthy, 'ejection is per cluster')
  host.set(Flag.FailedProbe, true)
  t.notOk(inSubset.healthy, 'a failing probe is per workload')
  t.notOk(inBase.present)
  t.notOk(inSubset.present)
})

t.test('spec can be replaced (reload) and the key follows it', async t => {
  const e = ep('10.0.0.1:80')
  e.active = 3
  e.spec = { ...e.spec, weight: 5, labels: { version: 'v2' } }
  t.equal(e.spec.weight, 5)
  t.equal(e.active, 3, 'state kept')
  t.equal(e.key, '10.0.0.1:80')
})
