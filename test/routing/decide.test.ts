import { readFileSync } from 'node:fs'
import t from 'tap'
import { compile } from '../../src/compile/compile.js'
import type { Snapshot } from '../../src/compile/snapshot.js'
import { loadConfig } from '../../src/config/load.js'
import { formatProblem } from '../../src/config/problem.js'
import { type DecisionContext, type ForwardPlan, type Plan, type RequestInput, decide, fallbackFields } from '../../src/routing/decide.js'
import { DEFAULT_PATH_POLICY } from '../../src/routing/path.js'

// The routing decision as a table: the real Bookinfo ServiceEntries and DestinationRules of
// gateway-config/, the ASM fallback scenarios as shipped, and a health view per row.

const root = new URL('../../gateway-config/', import.meta.url)
const read = (p: string): { file: string; text: string } => ({ file: p, text: readFileSync(new URL(p, root), 'utf8') })

function build (...extra: Array<{ file: string; text: string }>): Snapshot {
  const loaded = loadConfig([read('local/services.yaml'), read('destination-rule-all.yaml'), read('bookinfo-gateway.yaml'), ...extra])
  const errors = loaded.problems.filter(p => p.severity === 'Error')
  if (errors.length > 0) throw new Error(errors.map(formatProblem).join('\n'))
  return compile(loaded.set, {}).snapshot
}

const R = (subset: string): string => `outbound|9080|${subset}|reviews.default.svc.cluster.local`

/** A decision context over the mesh listener with the given clusters down. */
function ctx (snap: Snapshot, down: string[], random: () => number = () => 0): DecisionContext {
  return { listener: snap.mesh, clusters: snap.clusters, health: { hasHealthy: n => !down.includes(n) }, pathPolicy: DEFAULT_PATH_POLICY, random }
}

const reviewsRequest = (headers: Record<string, string> = {}): RequestInput => ({
  method: 'GET', scheme: 'http', authority: 'reviews:9080', target: '/reviews/0', headers: { host: 'reviews:9080', ...headers }, listenerPort: undefined, localPort: undefined
})

function fwd (p: Plan): ForwardPlan {
  if (p.kind !== 'forward') throw new Error(`expected a forward plan, got ${p.kind}`)
  return p
}

t.test('ASM fallback walkthrough, sample 1 (v3 → v2)', async t => {
  const snap = build(read('scenarios/fallback-v3-to-v2.yaml'))
  const rows: Array<{ name: string; down: string[]; want: ReturnType<typeof fallbackFields>; serves: string | undefined; failure?: 'UH' | 'NC' }> = [
    { name: 'primary healthy', down: [], serves: R('v3'), want: { upstreamCluster: R('v3'), fallbackPath: '-', fallbackResult: '-', fallbackFinalCluster: '-' } },
    { name: 'primary down → fallback', down: [R('v3')], serves: R('v2'), want: { upstreamCluster: R('v2'), fallbackPath: `${R('v3')}:${R('v2')}`, fallbackResult: 'fallback cluster is healthy', fallbackFinalCluster: R('v2') } },
    { name: 'primary and fallback down → 503 UH', down: [R('v3'), R('v2')], serves: undefined, failure: 'UH', want: { upstreamCluster: R('v3'), fallbackPath: `${R('v3')}:${R('v2')}`, fallbackResult: 'fallback cluster is unhealthy', fallbackFinalCluster: '-' } },
    { name: 'no cascade to a third subset (v1 healthy is never used)', down: [R('v3'), R('v2')], serves: undefined, failure: 'UH', want: { upstreamCluster: R('v3'), fallbackPath: `${R('v3')}:${R('v2')}`, fallbackResult: 'fallback cluster is unhealthy', fallbackFinalCluster: '-' } }
  ]
  for (const row of rows) {
    const p = fwd(decide(reviewsRequest(), ctx(snap, row.down)))
    t.equal(p.resolution.cluster, row.serves, `${row.name}: serving cluster`)
    t.equal(p.resolution.failure, row.failure, `${row.name}: failure`)
    t.same(fallbackFields(p.resolution), row.want, `${row.name}: access-log fields`)
  }
})

t.test('ASM fallback walkthrough, sample 2: weighted destinations, each with its own fallback', async t => {
  const snap = build(read('scenarios/fallback-50-50.yaml'))
  // random < 0.5 draws the v3 half, ≥ 0.5 the v2 half.
  const rows: Array<[string, number, string[], string | undefined]> = [
    ['v3 half, all healthy', 0.1, [], R('v3')],
    ['v2 half, all healthy', 0.9, [], R('v2')],
    ['v3 half, v3 down → v2', 0.1, [R('v3')], R('v2')],
    ['v2 half, v2 down → v1', 0.9, [R('v2')], R('v1')],
    ['v3 half, v3 and v2 down → 503 UH (no cascade to v1)', 0.1, [R('v3'), R('v2')], undefined],
    ['v2 half, v3 and v2 down → v1', 0.9, [R('v3'), R('v2')], R('v1')]
  ]
  for (const [name, r, down, serves] of rows) {
    const p = fwd(decide(reviewsRequest(), ctx(snap, down, () => r)))
    t.equal(p.resolution.cluster, serves, name)
    if (serves === undefined) t.equal(p.resolution.failure, 'UH', `${name}: UH`)
    t.equal(p.retry.attempts, 0, `${name}: retries off as the scenario says`)
  }
})

t.test('routes, rewrite, authority, retries and local replies', async t => {
  const snap = build(read('scenarios/reviews-jason-v2.yaml'))
  let p = fwd(decide(reviewsRequest({ 'end-user': 'jason' }), ctx(snap, [])))
  t.equal(p.resolution.cluster, R('v2'), 'jason → v2')
  t.equal(p.authority, 'reviews:9080', 'authority as sent')
  t.equal(p.path, '/reviews/0')
  t.equal(p.retry.attempts, 2, "Istio's default retries")
  p = fwd(decide(reviewsRequest(), ctx(snap, [])))
  t.equal(p.resolution.cluster, R('v1'), 'anyone else → v1')

  const ingress = build()
  const gw = ingress.gateways[0]
  const req = (target: string): RequestInput => ({ method: 'GET', scheme: 'http', authority: 'localhost:8080', target, headers: { host: 'localhost:8080' }, listenerPort: gw.port, localPort: 8080 })
  const ing: DecisionContext = { listener: gw, clusters: ingress.clusters, health: { hasHealthy: () => true }, pathPolicy: DEFAULT_PATH_POLICY, random: () => 0 }
  t.equal(fwd(decide(req('/productpage'), ing)).resolution.cluster, 'outbound|9080||productpage.default.svc.cluster.local', '/productpage → productpage')
  const nr = decide(req('/nothing-here'), ing)
  t.match(nr, { kind: 'error', error: { status: 404, flag: 'NR' } }, 'unmatched path: NR')
  // Normalization happens in the decision: dot segments are resolved before matching.
  t.equal(fwd(decide(req('/static/../productpage'), ing)).path, '/productpage', 'matched and forwarded on the normalized path')
  t.match(decide(req('/a%2Fb'), ing), { kind: 'reject', error: { status: 400 } }, 'escaped slash rejected by default')
  t.match(decide(req('/x'), { ...ing, pathPolicy: { normalization: 'BASE', escapedSlashes: 'UNESCAPE_AND_REDIRECT' } }), { kind: 'error' }, 'policy read from the context')
  t.match(decide(req('/a%2Fb'), { ...ing, pathPolicy: { normalization: 'BASE', escapedSlashes: 'UNESCAPE_AND_REDIRECT' } }), { kind: 'redirect', status: 307, location: '/a/b' }, 'UNESCAPE_AND_REDIRECT')
})

t.test('a cluster exists only if the request\'s own snapshot has it (NC)', async t => {
  const snap = build(read('scenarios/fallback-v3-to-v2.yaml'))
  const without = new Map(snap.clusters)
  without.delete(R('v3'))
  without.delete(R('v2'))
  const p = fwd(decide(reviewsRequest(), { ...ctx(snap, []), clusters: without }))
  t.equal(p.resolution.cluster, undefined)
  t.equal(p.resolution.failure, 'UH', 'with a fallback that is missing too: UH')
  t.same(fallbackFields(p.resolution).upstreamCluster, R('v3'))
})

t.test('fault abort: a local reply that logs the route\'s cluster; never drawn when not configured', async t => {
  const snap = build(read('scenarios/ratings-test-abort.yaml'))
  const ratings = (user: string): RequestInput => ({ method: 'GET', scheme: 'http', authority: 'ratings:9080', target: '/ratings/0', headers: { host: 'ratings:9080', 'end-user': user }, listenerPort: undefined, localPort: undefined })
  let draws = 0
  const random = (): number => { draws++; return 0.5 }
  t.match(decide(ratings('jason'), { ...ctx(snap, []), random }), { kind: 'local', status: 500, flags: 'FI', upstreamCluster: 'outbound|9080|v1|ratings.default.svc.cluster.local' })
  t.equal(draws, 1, 'one draw: the abort (no delay configured, one destination)')
  draws = 0
  t.equal(fwd(decide(ratings('alice'), { ...ctx(snap, []), random })).resolution.cluster, 'outbound|9080|v1|ratings.default.svc.cluster.local')
  t.equal(draws, 0, 'no fault on that route: nothing drawn')
})
