import t from 'tap'
import { parse } from 'yaml'
import type { HTTPMatchRequest } from '../../src/config/model.js'
import { loadConfig } from '../../src/config/load.js'
import { compile } from '../../src/compile/compile.js'
import { buildFacts, queryParams } from '../../src/routing/facts.js'
import { compileMatch } from '../../src/routing/match.js'
import { selectRoute } from '../../src/routing/select.js'
import { staticService, virtualService } from '../helpers/yaml.js'

// Every matching rule of Istio's HTTPMatchRequest (docs/configuration.md#matching, docs/architecture.md#first-match), one table.
// Each row: a match block in YAML, a request, and whether the block applies.

interface Req { path: string; method?: string; headers?: Record<string, string | string[]>; authority?: string; scheme?: string; port?: number }

const facts = (r: Req) => buildFacts(r.method ?? 'GET', r.scheme ?? 'http', r.authority ?? 'bookinfo.example.com', r.path, r.headers ?? {}, r.port ?? 8080)

const rows: Array<[string, string, Req, boolean]> = [
  // ---- uri exact: the path without the query, case-sensitive
  ['exact equal', '{uri: {exact: /productpage}}', { path: '/productpage' }, true],
  ['exact ignores the query', '{uri: {exact: /productpage}}', { path: '/productpage?u=normal' }, true],
  ['exact with an empty query', '{uri: {exact: /productpage}}', { path: '/productpage?' }, true],
  ['exact: trailing slash differs', '{uri: {exact: /productpage}}', { path: '/productpage/' }, false],
  ['exact is case-sensitive', '{uri: {exact: /productpage}}', { path: '/ProductPage' }, false],
  ['exact: longer path', '{uri: {exact: /login}}', { path: '/login/x' }, false],
  // ---- uri prefix: a raw string prefix of the whole target, query included, not segment-aware
  ['prefix', '{uri: {prefix: /static}}', { path: '/static/img.png' }, true],
  ['prefix is not segment-aware: /foo matches /foobar', '{uri: {prefix: /foo}}', { path: '/foobar' }, true],
  ['prefix is not segment-aware: /foo matches /foo-bar', '{uri: {prefix: /foo}}', { path: '/foo-bar' }, true],
  ['prefix: shorter path', '{uri: {prefix: /foo}}', { path: '/fo' }, false],
  ['prefix compares the query too', '{uri: {prefix: "/api?v=1"}}', { path: '/api?v=1&x=2' }, true],
  ['prefix with a query: another query', '{uri: {prefix: "/api?v=1"}}', { path: '/api?v=2' }, false],
  ['prefix /api/ does not match /api?x', '{uri: {prefix: /api/}}', { path: '/api?x=/' }, false],
  ['prefix /a matches /a?x (raw target)', '{uri: {prefix: /a}}', { path: '/a?x' }, true],
  ['prefix is case-sensitive', '{uri: {prefix: /Static}}', { path: '/static/x' }, false],
  ['prefix / matches everything', '{uri: {prefix: /}}', { path: '/anything?at=all' }, true],
  // ---- uri regex: RE2, full match, path without the query
  ['regex full match', "{uri: {regex: '/v[0-9]+'}}", { path: '/v12' }, true],
  ['regex must match the whole path (suffix left over)', "{uri: {regex: '/v[0-9]+'}}", { path: '/v1/x' }, false],
  ['regex must match the whole path (prefix left over)', "{uri: {regex: '/v[0-9]+'}}", { path: '/x/v1' }, false],
  ['regex ignores the query', "{uri: {regex: '/v[0-9]+'}}", { path: '/v1?debug=true' }, true],
  ['regex cannot see the query', "{uri: {regex: '/v1\\?debug=true'}}", { path: '/v1?debug=true' }, false],
  ['regex alternation is anchored as a whole', "{uri: {regex: '/a|/b'}}", { path: '/bx' }, false],
  ['regex alternation', "{uri: {regex: '/a|/b'}}", { path: '/b' }, true],
  ['regex .*', "{uri: {regex: '.*'}}", { path: '/x/y?z' }, true],
  ['regex with its own anchors', "{uri: {regex: '^/a$'}}", { path: '/a' }, true],
  ['RE2 inline flag (?i) is honoured', "{uri: {regex: '(?i)/abc'}}", { path: '/ABC' }, true],
  ['regex [^/]+ is one segment and must cover the whole path', "{uri: {regex: '/[^/]+'}}", { path: '/a/b' }, false],
  // ---- ignoreUriCase: exact and prefix only, never regex
  ['ignoreUriCase exact', '{uri: {exact: /Login}, ignoreUriCase: true}', { path: '/LOGIN' }, true],
  ['ignoreUriCase prefix', '{uri: {prefix: /API/}, ignoreUriCase: true}', { path: '/api/v1' }, true],
  ['ignoreUriCase does not affect regex', "{uri: {regex: '/abc'}, ignoreUriCase: true}", { path: '/ABC' }, false],
  ['ignoreUriCase regex still matches its own case', "{uri: {regex: '/abc'}, ignoreUriCase: true}", { path: '/abc' }, true],
  ['ignoreUriCase does not affect headers', '{headers: {x: {exact: A}}, ignoreUriCase: true}', { path: '/', headers: { x: 'a' } }, false],
  // ---- scheme
  ['scheme exact', '{scheme: {exact: https}}', { path: '/', scheme: 'https' }, true],
  ['scheme exact, other scheme', '{scheme: {exact: https}}', { path: '/', scheme: 'http' }, false],
  ['scheme prefix', '{scheme: {prefix: http}}', { path: '/', scheme: 'https' }, true],
  ['scheme regex', "{scheme: {regex: 'https?'}}", { path: '/', scheme: 'http' }, true],
  // ---- method
  ['method exact', '{method: {exact: POST}}', { path: '/', method: 'POST' }, true],
  ['method exact is case-sensitive', '{method: {exact: post}}', { path: '/', method: 'POST' }, false],
  ['method prefix', '{method: {prefix: PU}}', { path: '/', method: 'PUT' }, true],
  ['method regex', "{method: {regex: 'GET|HEAD'}}", { path: '/', method: 'HEAD' }, true],
  ['method regex full match', "{method: {regex: 'GET|HEAD'}}", { path: '/', method: 'GETX' }, false],
  // ---- authority: as received, port included
  ['authority exact', '{authority: {exact: bookinfo.example.com}}', { path: '/' }, true],
  ['authority exact includes the port', '{authority: {exact: bookinfo.example.com}}', { path: '/', authority: 'bookinfo.example.com:8080' }, false],
  ['authority prefix', '{authority: {prefix: bookinfo.}}', { path: '/', authority: 'bookinfo.example.com:8080' }, true],
  ['authority regex', "{authority: {regex: '[a-z]+\\.example\\.com(:[0-9]+)?'}}", { path: '/', authority: 'api.example.com:8080' }, true],
  ['authority regex full match', "{authority: {regex: 'example\\.com'}}", { path: '/', authority: 'api.example.com' }, false],
  // ---- headers
  ['header exact', '{headers: {end-user: {exact: jason}}}', { path: '/', headers: { 'end-user': 'jason' } }, true],
  ['header exact: other value', '{headers: {end-user: {exact: jason}}}', { path: '/', headers: { 'end-user': 'Jason' } }, false],
  ['header exact: missing', '{headers: {end-user: {exact: jason}}}', { path: '/' }, false],
  ['header prefix', '{headers: {user-agent: {prefix: Mozilla}}}', { path: '/', headers: { 'user-agent': 'Mozilla/5.0' } }, true],
  ['header regex full match', "{headers: {cookie: {regex: '.*user=jason.*'}}}", { path: '/', headers: { cookie: 'a=1; user=jason; b=2' } }, true],
  ['header regex partial is no match', "{headers: {cookie: {regex: 'user=jason'}}}", { path: '/', headers: { cookie: 'a=1; user=jason' } }, false],
  ['header presence {}', '{headers: {x-canary: {}}}', { path: '/', headers: { 'x-canary': '' } }, true],
  ['header presence {}: missing', '{headers: {x-canary: {}}}', { path: '/' }, false],
  ['header regex "*" is presence', "{headers: {x-canary: {regex: '*'}}}", { path: '/', headers: { 'x-canary': 'anything' } }, true],
  ['header regex "*": missing', "{headers: {x-canary: {regex: '*'}}}", { path: '/' }, false],
  ['repeated header values are joined with a comma', "{headers: {x-v: {exact: 'a,b'}}}", { path: '/', headers: { 'x-v': ['a', 'b'] } }, true],
  ['header keys uri/scheme/method/authority are ignored', '{headers: {method: {exact: POST}, uri: {exact: /x}}}', { path: '/y', method: 'GET' }, true],
  ['header exact empty value', "{headers: {x-e: {exact: ''}}}", { path: '/', headers: { 'x-e': '' } }, true],
  ['header exact empty value: missing header', "{headers: {x-e: {exact: ''}}}", { path: '/' }, false],
  // ---- withoutHeaders: inverted, a missing header counts as ''
  ['withoutHeaders exact: header absent', "{withoutHeaders: {x-debug: {exact: '1'}}}", { path: '/' }, true],
  ['withoutHeaders exact: header with the value', "{withoutHeaders: {x-debug: {exact: '1'}}}", { path: '/', headers: { 'x-debug': '1' } }, false],
  ['withoutHeaders exact: header with another value', "{withoutHeaders: {x-debug: {exact: '1'}}}", { path: '/', headers: { 'x-debug': '2' } }, true],
  ['withoutHeaders presence {}: absent', '{withoutHeaders: {x-debug: {}}}', { path: '/' }, true],
  ['withoutHeaders presence {}: present', '{withoutHeaders: {x-debug: {}}}', { path: '/', headers: { 'x-debug': '' } }, false],
  ['withoutHeaders exact "": a missing header is empty, so it does not apply', "{withoutHeaders: {x-e: {exact: ''}}}", { path: '/' }, false],
  ['withoutHeaders regex .*: a missing header is empty and matches', "{withoutHeaders: {x-e: {regex: '.*'}}}", { path: '/' }, false],
  ['withoutHeaders prefix: absent', '{withoutHeaders: {user-agent: {prefix: curl}}}', { path: '/' }, true],
  ['withoutHeaders prefix: present', '{withoutHeaders: {user-agent: {prefix: curl}}}', { path: '/', headers: { 'user-agent': 'curl/8' } }, false],
  // ---- queryParams
  ['query exact', "{queryParams: {id: {exact: '5'}}}", { path: '/p?id=5' }, true],
  ['query exact: other value', "{queryParams: {id: {exact: '5'}}}", { path: '/p?id=55' }, false],
  ['query exact: absent', "{queryParams: {id: {exact: '5'}}}", { path: '/p' }, false],
  ['query exact "" matches ?key', "{queryParams: {debug: {exact: ''}}}", { path: '/p?debug' }, true],
  ['query exact "" matches ?key=', "{queryParams: {debug: {exact: ''}}}", { path: '/p?a=1&debug=' }, true],
  ['query exact "": absent', "{queryParams: {debug: {exact: ''}}}", { path: '/p?a=1' }, false],
  ['query exact "": has a value', "{queryParams: {debug: {exact: ''}}}", { path: '/p?debug=1' }, false],
  ['query prefix', '{queryParams: {u: {prefix: nor}}}', { path: '/p?u=normal' }, true],
  ['query regex full match', "{queryParams: {n: {regex: '\\d+'}}}", { path: '/p?n=123' }, true],
  ['query regex: \\d+$ does not match a123', "{queryParams: {n: {regex: '\\d+$'}}}", { path: '/p?n=a123' }, false],
  ['query values are percent-decoded', "{queryParams: {q: {exact: 'a b/c'}}}", { path: '/p?q=a%20b%2Fc' }, true],
  ['query: + is a space', "{queryParams: {q: {exact: 'a b'}}}", { path: '/p?q=a+b' }, true],
  ['query: the first occurrence counts', "{queryParams: {id: {exact: '1'}}}", { path: '/p?id=1&id=2' }, true],
  ['query: a later occurrence does not', "{queryParams: {id: {exact: '2'}}}", { path: '/p?id=1&id=2' }, false],
  ['query presence {}: ?key', '{queryParams: {debug: {}}}', { path: '/p?debug' }, true],
  ['query presence {}: ?key=value', '{queryParams: {debug: {}}}', { path: '/p?a=1&debug=1' }, true],
  ['query presence {}: absent', '{queryParams: {debug: {}}}', { path: '/p?a=1' }, false],
  ['query regex "*" is presence', "{queryParams: {debug: {regex: '*'}}}", { path: '/p?debug=x' }, true],
  ['query names are case-sensitive', "{queryParams: {ID: {exact: '1'}}}", { path: '/p?id=1' }, false],
  // ---- port
  ['port equal', '{port: 8080}', { path: '/', port: 8080 }, true],
  ['port differs', '{port: 8080}', { path: '/', port: 9090 }, false],
  // ---- fields are ANDed
  ['AND: all hold', "{uri: {prefix: /api}, method: {exact: GET}, headers: {end-user: {exact: jason}}, queryParams: {v: {exact: '2'}}}", { path: '/api/x?v=2', headers: { 'end-user': 'jason' } }, true],
  ['AND: one header fails', "{uri: {prefix: /api}, method: {exact: GET}, headers: {end-user: {exact: jason}}, queryParams: {v: {exact: '2'}}}", { path: '/api/x?v=2', headers: { 'end-user': 'bob' } }, false],
  ['AND: method fails', "{uri: {prefix: /api}, method: {exact: GET}, headers: {end-user: {exact: jason}}, queryParams: {v: {exact: '2'}}}", { path: '/api/x?v=2', method: 'POST', headers: { 'end-user': 'jason' } }, false],
  ['AND: two headers', '{headers: {a: {exact: "1"}, b: {exact: "2"}}}', { path: '/', headers: { a: '1' } }, false],
  ['no conditions matches everything', '{name: just-a-name}', { path: '/whatever', method: 'DELETE' }, true]
]

t.test('match table', async t => {
  for (const [name, yaml, req, want] of rows) {
    const m = compileMatch(parse(yaml) as HTTPMatchRequest)
    t.equal(m.test(facts(req)), want, `${name}: ${yaml} ~ ${req.method ?? 'GET'} ${req.path}`)
  }
})

t.test('regexes run in linear time (RE2): a catastrophic-backtracking pattern answers at once', async t => {
  const m = compileMatch({ headers: { 'x-a': { regex: '(a+)+$' } } })
  const start = Date.now()
  t.equal(m.test(facts({ path: '/', headers: { 'x-a': 'a'.repeat(5000) + 'b' } })), false)
  t.ok(Date.now() - start < 2000, 'a backtracking engine would take far longer than the age of the universe here')
})

t.test('a missing match block matches every request', async t => {
  const m = compileMatch(undefined)
  t.equal(m.test(facts({ path: '/x', method: 'PATCH' })), true)
  t.match(m, { uriKind: 'none', prefix: '/', catchAll: true })
})

t.test('uriKind, prefix and catch-all classification (Istio IsCatchAllRoute)', async t => {
  const cases: Array<[string, { uriKind: string; prefix: string; catchAll: boolean }]> = [
    ['{uri: {prefix: /}}', { uriKind: 'prefix', prefix: '/', catchAll: true }],
    ["{uri: {regex: '.*'}}", { uriKind: 'regex', prefix: '/', catchAll: true }],
    ['{}', { uriKind: 'none', prefix: '/', catchAll: true }],
    ['{name: n}', { uriKind: 'none', prefix: '/', catchAll: true }],
    ['{uri: {prefix: /api}}', { uriKind: 'prefix', prefix: '/api', catchAll: false }],
    ['{uri: {exact: /}}', { uriKind: 'exact', prefix: '/', catchAll: false }],
    ["{uri: {regex: '/.*'}}", { uriKind: 'regex', prefix: '/', catchAll: false }],
    ['{uri: {prefix: /}, headers: {x: {}}}', { uriKind: 'prefix', prefix: '/', catchAll: false }],
    ['{headers: {x: {}}}', { uriKind: 'none', prefix: '/', catchAll: false }],
    ["{uri: {prefix: /}, queryParams: {a: {exact: '1'}}}", { uriKind: 'prefix', prefix: '/', catchAll: false }],
    ['{port: 8080}', { uriKind: 'none', prefix: '/', catchAll: false }],
    ['{method: {exact: GET}}', { uriKind: 'none', prefix: '/', catchAll: false }]
  ]
  for (const [yaml, want] of cases) {
    const m = compileMatch(parse(yaml) as HTTPMatchRequest)
    t.same({ uriKind: m.uriKind, prefix: m.prefix, catchAll: m.catchAll }, want, yaml)
  }
  t.equal(compileMatch({ name: 'api' }).name, 'api')
})

t.test('request facts: path, query, port', async t => {
  const f = buildFacts('GET', 'http', 'Reviews:9080', '/reviews/0?a=1&b', {}, undefined)
  t.same({ host: f.host, port: f.port, path: f.path, pathOnly: f.pathOnly, query: f.query }, { host: 'reviews', port: 9080, path: '/reviews/0?a=1&b', pathOnly: '/reviews/0', query: 'a=1&b' })
  t.same([...queryParams(f)], [['a', '1'], ['b', '']])
  t.equal(buildFacts('GET', 'http', 'reviews', '/', {}, undefined).port, 80, 'mesh: no port in Host means 80')
  t.equal(buildFacts('GET', 'https', 'reviews', '/', {}, undefined).port, 443)
  t.equal(buildFacts('GET', 'http', 'reviews:9080', '/', {}, 8080).port, 8080, 'gateway: the listener port')
  t.same(buildFacts('GET', 'http', '[::1]:8080', '/', {}, undefined).host, '[::1]')
})

t.test('through a compiled VirtualService: blocks are ORed, first matching route wins, ports drop routes', async t => {
  const text = `${staticService('reviews', { ports: { http: 9080, alt: 9090 }, labels: { version: 'v1' } })}---
${virtualService(`  - name: jason
    match:
    - name: by-header
      headers: {end-user: {exact: jason}}
    - name: by-query
      queryParams: {user: {exact: jason}}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: api
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: api-shadowed
    match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: reviews, subset: v4}}]
  - name: alt-port
    match: [{port: 9090}]
    route: [{destination: {host: reviews, subset: alt}}]
  - name: rest
    route: [{destination: {host: reviews, subset: v1}}]
`, { hosts: ['reviews'] })}`
  const loaded = loadConfig([{ file: 'm.yaml', text }])
  t.equal(loaded.problems.filter(p => p.severity === 'Error').length, 0)
  const mesh = compile(loaded.set).snapshot.mesh
  const pick = (target: string, headers: Record<string, string> = {}, authority = 'reviews:9080'): string => {
    const r = selectRoute(mesh, buildFacts('GET', 'http', authority, target, headers, undefined)).route
    return r === undefined ? 'none' : `${r.name} -> ${r.destinations[0].subset}`
  }
  t.equal(pick('/reviews/0', { 'end-user': 'jason' }), 'jason.by-header -> v2')
  t.equal(pick('/reviews/0?user=jason'), 'jason.by-query -> v2', 'the second block of the same route')
  t.equal(pick('/api/v2/x', { 'end-user': 'jason' }), 'jason.by-header -> v2', 'first route wins over a more specific later one')
  t.equal(pick('/api/v2/x'), 'api -> v3', 'the earlier, shorter prefix wins: order, not specificity')
  t.equal(pick('/apix'), 'api -> v3')
  t.equal(pick('/reviews/0', {}, 'reviews:9090'), 'alt-port -> alt')
  t.equal(pick('/reviews/0'), 'rest -> v1')
  t.equal(pick('/reviews/0', {}, 'reviews'), 'rest -> v1', 'no port in Host: port 80, the port block does not apply')
})
