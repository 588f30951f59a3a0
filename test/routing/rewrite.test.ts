import t from 'tap'
import { parse } from 'yaml'
import type { HTTPMatchRequest, HTTPRewrite } from '../../src/config/model.js'
import { loadConfig } from '../../src/config/load.js'
import { compile } from '../../src/compile/compile.js'
import { buildFacts } from '../../src/routing/facts.js'
import { compileMatch } from '../../src/routing/match.js'
import { compileRewrite, rewritePath, toJsSubstitution } from '../../src/routing/rewrite.js'
import { selectRoute } from '../../src/routing/select.js'
import { compileHeaders } from '../../src/routing/headers.js'
import { virtualService } from '../helpers/yaml.js'

// rewrite.uri replaces the matched prefix for a prefix match and the whole path for exact and
// regex matches (query kept); uriRegexRewrite is an RE2 global replace with \1 groups on the
// path without the query; authority comes from rewrite.authority or headers.request.set.host.

const rows: Array<[string, string | undefined, string, string, string]> = [
  // [name, match YAML (undefined = no match block), rewrite YAML, request target, forwarded target]
  ['prefix replaced', '{uri: {prefix: /reviews}}', '{uri: /r}', '/reviews/0', '/r/0'],
  ['prefix: the query is kept', '{uri: {prefix: /reviews}}', '{uri: /r}', '/reviews/0?a=1', '/r/0?a=1'],
  ['prefix is not segment-aware', '{uri: {prefix: /reviews}}', '{uri: /r}', '/reviewsX', '/rX'],
  ['prefix /api/ to /', '{uri: {prefix: /api/}}', '{uri: /}', '/api/v1/x', '/v1/x'],
  ['prefix /foo to / gives //baz (Envoy prefix_rewrite)', '{uri: {prefix: /foo}}', '{uri: /}', '/foo/baz', '//baz'],
  ['prefix with ignoreUriCase: the matched length is replaced', '{uri: {prefix: /API}, ignoreUriCase: true}', '{uri: /v2}', '/api/x', '/v2/x'],
  ['prefix whole path', '{uri: {prefix: /login}}', '{uri: /auth}', '/login', '/auth'],
  ['exact: the whole path is replaced', '{uri: {exact: /login}}', '{uri: /auth/login}', '/login', '/auth/login'],
  ['exact: the query is kept', '{uri: {exact: /login}}', '{uri: /auth/login}', '/login?next=/x', '/auth/login?next=/x'],
  ['regex: the whole path is replaced', "{uri: {regex: '/v[0-9]+/.*'}}", '{uri: /new}', '/v1/a/b', '/new'],
  ['regex: the query is kept', "{uri: {regex: '/v[0-9]+/.*'}}", '{uri: /new}', '/v1/a?q=1', '/new?q=1'],
  ['no URI condition: Istio matches prefix /, so / is replaced', '{headers: {x: {}}}', '{uri: /x}', '/a', '/xa'],
  ['no match block at all', undefined, '{uri: /x/}', '/a/b', '/x/a/b'],
  ['uriRegexRewrite with groups (Envoy regex_rewrite example)', undefined, "{uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1'}}", '/service/foo/v1/api', '/v1/api/instance/foo'],
  ['uriRegexRewrite: a group keeps its own slash', undefined, "{uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '/customprefix/\\2/\\1'}}", '/service/foo/bar', '/customprefix//bar/foo'],
  ['uriRegexRewrite keeps the query and does not see it', undefined, "{uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '\\2/instance/\\1'}}", '/service/foo/bar?x=/service/a/b', '/bar/instance/foo?x=/service/a/b'],
  ['uriRegexRewrite: \\1 followed by a digit is group 1 then the digit (regression)', undefined, "{uriRegexRewrite: {match: '^/(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)$', rewrite: '/\\10'}}", '/abcdefghij', '/a0'],
  ['uriRegexRewrite replaces every occurrence (RE2::GlobalReplace)', undefined, "{uriRegexRewrite: {match: 'a', rewrite: 'b'}}", '/aXa/a', '/bXb/b'],
  ['uriRegexRewrite no match leaves the path', undefined, "{uriRegexRewrite: {match: '^/nomatch', rewrite: '/x'}}", '/keep?q', '/keep?q'],
  ['uriRegexRewrite: \\0 is the whole match (regression)', undefined, "{uriRegexRewrite: {match: '^/v1', rewrite: '/api\\0'}}", '/v1/x', '/api/v1/x'],
  ['uriRegexRewrite: a literal $ stays literal', undefined, "{uriRegexRewrite: {match: '^/a', rewrite: '/$1'}}", '/a/b', '/$1/b'],
  ['authority only: the path is unchanged', '{uri: {prefix: /a}}', '{authority: other.example.com}', '/a/b?c', '/a/b?c']
]

t.test('rewrite table', async t => {
  for (const [name, matchYaml, rwYaml, target, want] of rows) {
    const match = compileMatch(matchYaml === undefined ? undefined : parse(matchYaml) as HTTPMatchRequest)
    const rw = compileRewrite(parse(rwYaml) as HTTPRewrite, undefined)
    const facts = buildFacts('GET', 'http', 'h', target, { x: '1' }, 8080)
    t.equal(match.test(facts), true, `${name}: the match applies`)
    t.equal(rewritePath(rw, match, facts), want, `${name}: ${target} -> ${want}`)
  }
})

t.test('no rewrite forwards the target unchanged', async t => {
  const facts = buildFacts('GET', 'http', 'h', '/a/../b?x', {}, 8080)
  t.equal(rewritePath(undefined, compileMatch(undefined), facts), '/a/../b?x')
  t.equal(compileRewrite(undefined, undefined), undefined)
})

t.test('authority: rewrite.authority, or headers.request.set.host; rewrite.authority wins', async t => {
  t.same(compileRewrite({ authority: 'a.example.com' }, undefined), { authority: 'a.example.com' })
  const hdrs = compileHeaders({ request: { set: { Host: 'h.example.com', 'x-a': '1' } } })
  t.equal(hdrs?.hostRewrite, 'h.example.com')
  t.same(hdrs?.request?.set, [['x-a', '1']], 'host is never set as a plain header')
  t.same(compileRewrite(undefined, hdrs?.hostRewrite), { authority: 'h.example.com' })
  t.same(compileRewrite({ authority: 'a.example.com' }, 'h.example.com'), { authority: 'a.example.com' })
  t.equal(compileHeaders({ request: { set: { ':authority': 'p.example.com' } } })?.hostRewrite, 'p.example.com')
})

t.test('RE2 substitution syntax to JS replace patterns', async t => {
  const cases: Array<[string, string]> = [
    ['/x/\\1', '/x/$01'],
    ['\\2\\1', '$02$01'],
    ['\\0', '$&'],
    ['\\10', '$010'],
    ['$1', '$$1'],
    ['a\\\\b', 'a\\b'],
    ['\\x', '\\x'],
    ['plain', 'plain']
  ]
  for (const [rw, want] of cases) t.equal(toJsSubstitution(rw), want, rw)
})

t.test('compiled from a VirtualService: each match block rewrites relative to itself', async t => {
  const text = virtualService(`  - match:
    - uri: {exact: /productpage}
    - uri: {prefix: /static}
    rewrite: {uri: /v2}
    route: [{destination: {host: front}}]
  - match: [{uri: {prefix: /ratings}}]
    rewrite:
      uriRegexRewrite: {match: '^/ratings/([0-9]+)$', rewrite: '/v1/ratings/\\1'}
    headers:
      request:
        set: {host: ratings.internal}
    route: [{destination: {host: front}}]
`, { hosts: ['front'] })
  const loaded = loadConfig([{ file: 'r.yaml', text }])
  t.equal(loaded.problems.filter(p => p.severity === 'Error').length, 0)
  const mesh = compile(loaded.set).snapshot.mesh
  const forward = (target: string): [string, string | undefined] => {
    const facts = buildFacts('GET', 'http', 'front', target, {}, undefined)
    const route = selectRoute(mesh, facts).route!
    return [rewritePath(route.rewrite, route.match, facts), route.rewrite?.authority]
  }
  t.same(forward('/productpage?u=1'), ['/v2?u=1', undefined], 'exact block: whole path')
  t.same(forward('/static/app.css'), ['/v2/app.css', undefined], 'prefix block: prefix only')
  t.same(forward('/ratings/7'), ['/v1/ratings/7', 'ratings.internal'])
})
