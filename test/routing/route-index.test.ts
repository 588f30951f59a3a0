import t from 'tap'
import fc from 'fast-check'
import RE2 from 're2'
import type { HTTPMatchRequest, StringMatch } from '../../src/config/model.js'
import type { CompiledRoute, VirtualHost } from '../../src/compile/snapshot.js'
import { compile, indexVirtualHosts } from '../../src/compile/compile.js'
import { loadConfig } from '../../src/config/load.js'
import { buildFacts, type RequestFacts } from '../../src/routing/facts.js'
import { compileMatch } from '../../src/routing/match.js'
import { buildRouteIndex, candidates, regexLiteralPrefix } from '../../src/routing/route-index.js'
import { firstMatch, firstMatchLinear, selectRoute } from '../../src/routing/select.js'
import { gateway, staticService, virtualService } from '../helpers/yaml.js'

/** A route as compile() makes it, reduced to what matching reads. */
function route (i: number, m: HTTPMatchRequest | undefined): CompiledRoute {
  return {
    name: `r${i}`,
    virtualService: 'ns/vs',
    httpIndex: i,
    matchIndex: 0,
    match: compileMatch(m),
    ...(m !== undefined ? { matchSpec: m } : {}),
    destinations: [],
    totalWeight: 0
  }
}

function vhostOf (routes: CompiledRoute[]): VirtualHost {
  return { name: 'h', domains: ['h'], routes, routeIndex: buildRouteIndex(routes) }
}

function facts (target: string, headers: Record<string, string> = {}, method = 'GET'): RequestFacts {
  return buildFacts(method, 'http', 'h', target, headers, 80)
}

// ---- generators: a small alphabet so that random routes and random requests collide often
const segment = fc.constantFrom('', 'a', 'ab', 'abc', 'api', 'API', 'v1', 'v10', 'x', 'ü', '😀', 'a.b', 'a?b')
const pathArb = fc.array(segment, { minLength: 0, maxLength: 4 }).map(s => '/' + s.join('/'))
const targetArb = fc.tuple(pathArb, fc.option(fc.constantFrom('q=1', 'a=/b', '', 'x=/api/v1'), { nil: undefined }), fc.boolean())
  .map(([p, q, weird]) => (weird ? p.replace(/^\//, '') : p) + (q === undefined ? '' : `?${q}`))
const literalArb = fc.tuple(pathArb, fc.option(fc.constantFrom('a', 'ap', 'v', '😀', 'A', '?'), { nil: undefined }))
  .map(([p, tail]) => tail === undefined ? p : p + tail)
/** Regexes: a literal start (sometimes) and a tail with the metacharacters that matter. */
const regexArb = fc.tuple(
  fc.option(literalArb, { nil: undefined }),
  fc.constantFrom('', '.*', '[a-z]+', 'x?', 'b*', 'c{0,2}', '(/.*)?', '|/x', '/v[0-9]+', '\\d*', '😀?', '.', '(?i)api', '/?')
).map(([lit, tail]) => (lit ?? '') + tail).filter(r => r !== '')
const stringMatchArb: fc.Arbitrary<StringMatch> = fc.oneof(
  literalArb.map(exact => ({ exact })),
  literalArb.map(prefix => ({ prefix })),
  regexArb.map(regex => ({ regex })),
  fc.constant({}),
  fc.constant({ regex: '*' })
)
const matchArb: fc.Arbitrary<HTTPMatchRequest | undefined> = fc.option(fc.record({
  uri: fc.option(stringMatchArb, { nil: undefined }),
  ignoreUriCase: fc.option(fc.boolean(), { nil: undefined }),
  headers: fc.option(fc.constantFrom<Record<string, StringMatch>>({ 'x-v': { exact: '1' } }, { 'x-v': { prefix: '2' } }), { nil: undefined }),
  method: fc.option(fc.constantFrom<StringMatch>({ exact: 'POST' }), { nil: undefined })
}, { requiredKeys: [] }).map(m => {
  // Drop undefined keys: a spec as the YAML loader would produce it.
  const out: HTTPMatchRequest = {}
  for (const [k, v] of Object.entries(m)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}), { nil: undefined, freq: 8 })
const requestArb = fc.record({
  target: targetArb,
  header: fc.constantFrom<Record<string, string>>({}, { 'x-v': '1' }, { 'x-v': '22' }),
  method: fc.constantFrom('GET', 'POST')
})

t.test('the indexed selection equals a linear first-match scan on random tables', async t => {
  let nonTrivial = 0
  fc.assert(fc.property(fc.array(matchArb, { minLength: 0, maxLength: 40 }), fc.array(requestArb, { minLength: 1, maxLength: 30 }), (specs, reqs) => {
    const routes = specs.map((m, i) => route(i, m))
    const vh = vhostOf(routes)
    for (const r of reqs) {
      const f = facts(r.target, r.header, r.method)
      const want = firstMatchLinear(routes, f)
      const got = firstMatch(vh, f)
      if (got !== want) return false
      const cand = candidates(vh.routeIndex!, f.pathOnly)
      // Candidates keep the original order and never repeat a route.
      const pos = cand.map(c => routes.indexOf(c))
      for (let i = 1; i < pos.length; i++) if (pos[i] <= pos[i - 1]) return false
      // Every route that matches at all is a candidate (not only the first).
      for (const rt of routes) if (rt.match.test(f) && !cand.includes(rt)) return false
      if (cand.length < routes.length) nonTrivial++
    }
    return true
  }), { numRuns: 1500, seed: 20261201 })
  // The index did narrow something (the property above would hold for "every route, always").
  t.ok(nonTrivial > 1000, `candidate lists narrower than the table in ${nonTrivial} requests`)
})

t.test('a regex literal prefix is a prefix of every full match', async t => {
  fc.assert(fc.property(regexArb, targetArb, (src, target) => {
    const lit = regexLiteralPrefix(src)
    if (lit === undefined) return true
    const path = target.split('?')[0]
    const re = new RE2(`^(?:${src})$`)
    return !re.test(path) || path.startsWith(lit)
  }), { numRuns: 5000, seed: 7 })
  t.equal(regexLiteralPrefix('/api/v[0-9]+/x'), '/api/v')
  t.equal(regexLiteralPrefix('/api/vx?'), '/api/v', 'an optional character is not part of the literal')
  t.equal(regexLiteralPrefix('/a😀*'), '/a', 'a quantified surrogate pair is dropped whole')
  t.equal(regexLiteralPrefix('/a+'), '/a', 'one-or-more keeps its character')
  t.equal(regexLiteralPrefix('/a/b|/c'), undefined, 'an alternation can bypass the literal')
  t.equal(regexLiteralPrefix('(?i)/api'), undefined)
  t.equal(regexLiteralPrefix('.*'), undefined)
})

t.test('targeted cases keep first-match-wins', async t => {
  const routes = [
    route(0, { uri: { prefix: '/api/v1/' }, headers: { 'x-v': { exact: '1' } } }),
    route(1, { uri: { regex: '/api/v[0-9]+/.*' } }),
    route(2, { uri: { exact: '/api/v1/users' } }),
    route(3, { uri: { prefix: '/API' }, ignoreUriCase: true }),
    route(4, { headers: { 'x-v': { exact: '2' } } }),
    route(5, { uri: { prefix: '/ap' } }),
    route(6, { uri: { prefix: '/static?x' } }),
    route(7, { uri: { exact: '/' } }),
    route(8, { uri: { regex: '/a|/b' } }),
    route(9, { uri: { prefix: '/' } })
  ]
  const vh = vhostOf(routes)
  const pick = (target: string, h: Record<string, string> = {}): string | undefined => firstMatch(vh, facts(target, h))?.name
  t.equal(pick('/api/v1/users', { 'x-v': '1' }), 'r0', 'an earlier, broader route wins over a later exact one')
  t.equal(pick('/api/v1/users'), 'r1', 'the regex before the exact route wins')
  t.equal(pick('/api/v1'), 'r3', 'ignoreUriCase prefix (a generic candidate) matches')
  t.equal(pick('/Api/zzz'), 'r3')
  t.equal(pick('/other', { 'x-v': '2' }), 'r4', 'a route without a URI condition is a candidate everywhere')
  t.equal(pick('/apx/y'), 'r5', 'an open prefix covers a longer first segment')
  t.equal(pick('/static?xyz'), 'r6', 'a prefix with ? is compared with the raw path, query included')
  t.equal(pick('/'), 'r7')
  t.equal(pick('/b'), 'r8')
  t.equal(pick('/zzz'), 'r9', 'the catch-all is last')
  t.equal(pick('*', { 'x-v': '2' }), 'r4', 'a target without a leading slash still reaches generic routes')
  t.notOk(pick('*'), 'prefix / does not match "*"')
  t.ok(candidates(vh.routeIndex!, '/zzz').length < routes.length, 'the index narrows the candidates')
})

t.test('compile attaches indexes to large hosts and selection is unchanged', async t => {
  const n = 300
  const http = Array.from({ length: n }, (_, i) => {
    const kind = i % 4
    const match = kind === 0
      ? `[{ uri: { exact: /svc${i}/items } }]`
      : kind === 1
        ? `[{ uri: { prefix: /svc${i}/ } }]`
        : kind === 2
          ? `[{ uri: { prefix: /hdr${i} }, headers: { x-tenant: { exact: t${i} } } }]`
          : `[{ uri: { regex: "/re${i}/[a-z]+/[0-9]+" } }]`
    return `  - match: ${match}\n    route: [{ destination: { host: b${i % 3}.example.com } }]`
  }).join('\n')
  const yaml = `${gateway({ namespace: 'default', selector: { istio: 'ingressgateway' } })}---
${virtualService(`${http}\n  - route: [{ destination: { host: b0.example.com } }]\n`, { name: 'vs', hosts: ['*'], gateways: ['gw'] })}` +
    [0, 1, 2].map(i => `---\n${staticService(`b${i}.example.com`, { name: `b${i}`, namespace: 'default', ports: { http: 80 } })}`).join('')
  const loaded = loadConfig([{ file: 'big.yaml', text: yaml }])
  t.same(loaded.problems.filter(p => p.severity === 'Error'), [])
  const { snapshot } = compile(loaded.set)
  const l = snapshot.gateways[0]
  const vh = l.hosts.all[0]
  t.ok(vh.routeIndex !== undefined, 'a host with many routes is indexed at compile time')
  t.equal(vh.routes.length, n + 1)
  const reqs: Array<[string, Record<string, string>]> = [
    [`/svc${n - 4}/items`, {}], ['/svc1/zz', {}], [`/hdr${n - 2}/a`, { 'x-tenant': `t${n - 2}` }], [`/hdr${n - 2}/a`, {}],
    [`/re${n - 1}/abc/42`, {}], [`/re${n - 1}/abc/x`, {}], ['/nothing', {}]
  ]
  for (const [target, h] of reqs) {
    const f = buildFacts('GET', 'http', 'x.example', target, h, 8080)
    t.equal(selectRoute(l, f).route, firstMatchLinear(vh.routes, f), target)
  }
  const f = buildFacts('GET', 'http', 'x.example', `/re${n - 1}/abc/42`, {}, 8080)
  t.equal(selectRoute(l, f).route?.httpIndex, n - 1)
  t.ok(candidates(vh.routeIndex!, f.pathOnly).length <= 3, 'the last route is reached through a short candidate list')
  // Small hosts keep the linear scan.
  const small: VirtualHost = { name: 's', domains: ['s'], routes: [route(0, { uri: { prefix: '/' } })] }
  indexVirtualHosts([small])
  t.equal(small.routeIndex, undefined)
})
