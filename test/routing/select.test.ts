import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { compile } from '../../src/compile/compile.js'
import type { CompiledRoute } from '../../src/compile/snapshot.js'
import { buildFacts } from '../../src/routing/facts.js'
import { pickDestination, selectRoute } from '../../src/routing/select.js'
import { destinationRule, staticService, virtualService } from '../helpers/yaml.js'

// Weighted destination picks with an injected random(): relative weights, 0 drops a destination,
// a single destination takes everything whatever its weight.

const SERVICES = `${staticService('reviews')}---
${destinationRule('reviews', '  subsets: [{name: v1, labels: {}}, {name: v2, labels: {}}, {name: v3, labels: {}}]\n')}`

/** The mesh route for reviews compiled from a route list written in YAML. */
function routeFor (route: string): CompiledRoute {
  const loaded = loadConfig([{ file: 's.yaml', text: `${SERVICES}---
${virtualService(`  - route:\n${route}`, { hosts: ['reviews'] })}` }])
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems))
  const mesh = compile(loaded.set).snapshot.mesh
  return selectRoute(mesh, buildFacts('GET', 'http', 'reviews:9080', '/', {}, undefined)).route!
}

/** Subset picked for each random value. */
const picks = (r: CompiledRoute, values: number[]): string[] => values.map(v => pickDestination(r, () => v)?.subset ?? 'none')

/** Exact counts over N evenly spaced random values in [0, 1). */
function sweep (r: CompiledRoute, n: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const s = pickDestination(r, () => i / n)?.subset ?? 'none'
    out[s] = (out[s] ?? 0) + 1
  }
  return out
}

t.test('90/10: boundaries of the random interval', async t => {
  const r = routeFor(`    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
`)
  t.same(picks(r, [0, 0.5, 0.8999, 0.9, 0.95, 0.99999]), ['v1', 'v1', 'v1', 'v2', 'v2', 'v2'])
  t.same(sweep(r, 1000), { v1: 900, v2: 100 })
})

t.test('weights are relative: 550/500 need not sum to 100', async t => {
  const r = routeFor(`    - {destination: {host: reviews, subset: v1}, weight: 550}
    - {destination: {host: reviews, subset: v2}, weight: 500}
`)
  t.equal(r.totalWeight, 1050)
  // i/1000 * 1050 < 550  <=>  i <= 523
  t.same(sweep(r, 1000), { v1: 524, v2: 476 })
})

t.test('a zero weight gets no traffic', async t => {
  const r = routeFor(`    - {destination: {host: reviews, subset: v1}, weight: 0}
    - {destination: {host: reviews, subset: v2}, weight: 30}
    - {destination: {host: reviews, subset: v3}, weight: 70}
`)
  t.same(r.destinations.map(d => d.subset), ['v2', 'v3'])
  t.same(sweep(r, 1000), { v2: 300, v3: 700 })
  t.same(picks(r, [0]), ['v2'], 'random 0 never lands on the dropped destination')
})

t.test('a single destination takes all traffic whatever its weight, without drawing', async t => {
  for (const w of ['', ', weight: 0', ', weight: 7', ', weight: 100']) {
    const r = routeFor(`    - {destination: {host: reviews, subset: v3}${w}}\n`)
    let drawn = 0
    const d = pickDestination(r, () => { drawn++; return 0.99 })
    t.equal(d?.subset, 'v3', `weight "${w}"`)
    t.equal(drawn, 0, 'random() is not consulted')
  }
})

t.test('50/50 v1/v3 and 50/50 v2/v3 (the traffic-shifting samples)', async t => {
  const a = routeFor(`    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v3}, weight: 50}
`)
  t.same(sweep(a, 400), { v1: 200, v3: 200 })
  t.same(picks(a, [0.4999, 0.5]), ['v1', 'v3'])
  const b = routeFor(`    - {destination: {host: reviews, subset: v2}, weight: 50}
    - {destination: {host: reviews, subset: v3}, weight: 50}
`)
  t.same(sweep(b, 400), { v2: 200, v3: 200 })
})

t.test('three destinations in written order', async t => {
  const r = routeFor(`    - {destination: {host: reviews, subset: v1}, weight: 1}
    - {destination: {host: reviews, subset: v2}, weight: 2}
    - {destination: {host: reviews, subset: v3}, weight: 1}
`)
  t.same(picks(r, [0, 0.249, 0.25, 0.74, 0.75, 0.999]), ['v1', 'v1', 'v2', 'v2', 'v3', 'v3'])
})

t.test('a random() of exactly 1 (out of contract) still returns a destination', async t => {
  const r = routeFor(`    - {destination: {host: reviews, subset: v1}, weight: 1}
    - {destination: {host: reviews, subset: v2}, weight: 1}
`)
  t.equal(pickDestination(r, () => 1)?.subset, 'v2')
})
