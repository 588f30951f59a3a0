// Hardening table F, loader side (docs/testing.md#f-configuration-and-reload, F1–F3, F5, F6, F8, F9): hostile or broken
// YAML is rejected with a located problem, in bounded time, and never throws.
import t from 'tap'
import { compile } from '../../src/compile/compile.js'
import { MAX_ALIASES, MAX_TEXT_BYTES, MAX_TOTAL_BYTES, loadConfig } from '../../src/config/load.js'
import { type Problem } from '../../src/config/problem.js'
import { MAX_REGEX_LENGTH } from '../../src/config/validate.js'
import { subsetService, virtualService } from '../helpers/yaml.js'

const load = (text: string, strict = false): ReturnType<typeof loadConfig> => loadConfig([{ file: 'f.yaml', text }], { strict })
const errors = (ps: Problem[]): Problem[] => ps.filter(p => p.severity === 'Error')
const warnings = (ps: Problem[]): Problem[] => ps.filter(p => p.severity === 'Warning')

const DR = `${subsetService('reviews', { v1: 1, v2: 2 })}---
`
const vs = (http: string): string => `${DR}${virtualService(http, { hosts: ['reviews'] })}`

t.test('the base configuration used below is valid and warning-free', async t => {
  const r = load(vs('  - route: [{ destination: { host: reviews, subset: v1 } }]\n'))
  t.ok(r.ok)
  t.same(r.problems, [])
})

t.test('F1: syntax error, tab indentation and a truncated file are rejected with a position', async t => {
  let r = load('apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: x\nspec: {}\n')
  t.notOk(r.ok)
  t.equal(errors(r.problems)[0].code, 'MG0001', 'a YAML syntax error')
  t.ok(errors(r.problems)[0].line >= 3, `line given (${errors(r.problems)[0].line})`)

  r = load('apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n\tname: x\n')
  t.notOk(r.ok)
  t.match(errors(r.problems)[0], { code: 'MG0001', line: 4, message: /tab/i }, 'tab indentation: line 4')

  // Cut mid-write inside a flow mapping, and inside a quoted string.
  const full = vs('  - route: [{ destination: { host: reviews, subset: v1 } }]\n')
  for (const cut of [full.length - 12, full.indexOf('subset: v1 }') + 4]) {
    r = load(full.slice(0, cut))
    t.notOk(r.ok, `truncated at ${cut} of ${full.length}: rejected`)
    t.ok(errors(r.problems).every(p => p.line >= 1 && p.column >= 1))
  }
  r = load('apiVersion: "networking.istio.io/v1\nkind: Gateway\n')
  t.notOk(r.ok, 'unterminated quoted string')
})

t.test('F2: alias bomb under 1 KB is refused in bounded time', async t => {
  const levels = 'abcdefghi'.split('')
  let bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
  for (let i = 1; i < levels.length; i++) bomb += `${levels[i]}: &${levels[i]} [${Array(9).fill(`*${levels[i - 1]}`).join(',')}]\n`
  t.ok(bomb.length < 1024, `bomb is ${bomb.length} bytes; fully expanded it would hold 9^9 strings`)
  const heapBefore = process.memoryUsage().heapUsed
  const start = process.hrtime.bigint()
  const r = load(bomb)
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  t.notOk(r.ok)
  t.match(errors(r.problems)[0], { code: 'MG0001', message: /alias/i })
  t.ok(ms < 2000, `refused in ${ms.toFixed(1)} ms`)
  t.ok(process.memoryUsage().heapUsed - heapBefore < 64 * 1024 * 1024, 'heap did not balloon')
  t.equal(MAX_ALIASES, 100)

  // A handful of aliases, as hand-written YAML uses them, still loads.
  const ok = load(`${DR}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - match: [{ uri: &p { prefix: /a } }]
    route: [{ destination: &d { host: reviews, subset: v1 } }]
  - match: [{ uri: *p, headers: { x: { exact: "1" } } }]
    route: [{ destination: *d }]
  - route: [{ destination: *d }]
`)
  t.ok(ok.ok, 'ordinary aliases are fine')
})

t.test('F2: a 50 MB file is refused before parsing, quickly', async t => {
  const line = '# padding padding padding padding padding padding padding padding padding\n'
  const big = line.repeat(Math.ceil(50 * 1024 * 1024 / line.length))
  t.ok(big.length >= 50 * 1024 * 1024)
  const start = process.hrtime.bigint()
  const r = load(big)
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  t.notOk(r.ok)
  t.match(errors(r.problems)[0], { code: 'MG0006', message: new RegExp(`larger than ${MAX_TEXT_BYTES}`) })
  t.ok(ms < 1000, `refused in ${ms.toFixed(1)} ms (the parser never saw it)`)

  // Multi-byte characters count as bytes: 3 bytes each, just over the cap in bytes.
  const wide = `# ${'€'.repeat(Math.ceil(MAX_TEXT_BYTES / 3) + 1)}\n`
  t.ok(wide.length < MAX_TEXT_BYTES)
  t.notOk(load(wide).ok, 'the cap counts UTF-8 bytes, not characters')

  // Several files under the per-file cap, over the total cap.
  const seven = line.repeat(Math.floor(7 * 1024 * 1024 / line.length))
  const files = Array.from({ length: Math.ceil(MAX_TOTAL_BYTES / seven.length) + 1 }, (_, i) => ({ file: `part-${i}.yaml`, text: seven }))
  const rt = loadConfig(files)
  t.notOk(rt.ok)
  t.match(errors(rt.problems)[0].message, /in total/)
})

t.test('F2: duplicate keys are rejected, at the duplicate', async t => {
  const r = load('apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\n  name: b\nspec: { hosts: [x], http: [] }\n')
  t.notOk(r.ok)
  t.match(errors(r.problems)[0], { code: 'MG0001', line: 5, message: /unique/i })
  const nested = load(vs('  - route: [{ destination: { host: reviews, host: ratings } }]\n'))
  t.notOk(nested.ok, 'a duplicate key inside a flow mapping')
})

t.test('F3: schema errors name the path and position', async t => {
  const cases: Array<[string, string, RegExp, string]> = [
    [vs('  - route: [{ destination: { host: reviews } }]\n    retires: { attempts: 3 }\n'), 'spec.http[0].retires', /unknown field "retires"/, 'unknown field (a typo)'],
    [vs('  - route: [{ destination: { host: reviews } }]\n    timeout: 5\n'), 'spec.http[0].timeout', /string/i, 'wrong type'],
    [vs('  - route: [{ destination: { subset: v1 } }]\n'), 'spec.http[0].route[0].destination.host', /required field "host"/, 'missing host'],
    [`${DR}apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: reviews }\nspec:\n  hosts: [reviews]\n  http: []\n`, 'spec.http', /at least one http, tcp or tls route/, 'empty http list']
  ]
  for (const [text, path, message, what] of cases) {
    const r = load(text)
    t.notOk(r.ok, `${what}: rejected`)
    const e = errors(r.problems).find(p => p.path === path)
    t.ok(e !== undefined, `${what}: an error at ${path} (${errors(r.problems).map(p => `${p.path}: ${p.message}`).join('; ')})`)
    t.match(e?.message, message)
    t.ok((e?.line ?? 0) > 10, `${what}: a line inside the VirtualService (${e?.line})`)
  }
})

t.test('F5: weights are relative; negative and all-zero lists are rejected; a lone destination gets all', async t => {
  const weights = (list: Array<number | undefined>): string => `  - route:\n${list.map((w, i) => `    - destination: { host: reviews, subset: v${i + 1} }${w === undefined ? '' : `\n      weight: ${w}`}`).join('\n')}\n`
  const shares = (text: string): number[] => {
    const r = load(text)
    t.ok(r.ok, JSON.stringify(errors(r.problems)))
    const snap = compile(r.set, { generation: 1 }).snapshot
    const route = snap.mesh.hosts.all.find(v => v.domains.some(d => d.startsWith('reviews')))!.routes[0]
    return route.destinations.map(d => d.weight / route.totalWeight)
  }
  t.same(shares(vs(weights([50, 30]))), [0.625, 0.375], '[50, 30] → 62.5 / 37.5')
  let r = load(vs(weights([-10, 110])))
  t.notOk(r.ok)
  t.match(errors(r.problems)[0], { path: 'spec.http[0].route[0].weight', message: /must be >= 0/ })
  r = load(vs(weights([0, 0])))
  t.notOk(r.ok)
  t.match(errors(r.problems)[0], { path: 'spec.http[0].route', message: /total destination weight = 0/ })
  t.same(shares(vs(weights([0]))), [1], 'a single destination with weight 0 gets 100 %')
  t.same(shares(vs(weights([undefined]))), [1], 'a single destination without weight gets 100 %')
})

t.test('F6: invalid, oversized and non-RE2 regexes are rejected with the RE2 error', async t => {
  const withRegex = (re: string): string => vs(`  - match: [{ uri: { regex: ${JSON.stringify(re)} } }]\n    route: [{ destination: { host: reviews } }]\n`)
  const cases: Array<[string, RegExp]> = [
    ['([a-z', /not valid RE2: missing \]/],
    ['(a)\\1', /not valid RE2: invalid escape sequence/],
    ['(?=x)abc', /not valid RE2: invalid perl operator/],
    ['(?<!x)abc', /not valid RE2/],
    ['a'.repeat(MAX_REGEX_LENGTH + 1), /limit is 1024/]
  ]
  for (const [re, message] of cases) {
    const r = load(withRegex(re))
    t.notOk(r.ok, `${re.slice(0, 20)}: rejected`)
    t.match(errors(r.problems)[0], { path: 'spec.http[0].match[0].uri.regex', message }, re.slice(0, 20))
  }
  t.equal(MAX_REGEX_LENGTH, 1024, 'Istio\'s cap')
  t.ok(load(withRegex('a'.repeat(MAX_REGEX_LENGTH))).ok, 'exactly 1024 characters is accepted')
  t.ok(load(withRegex('^(a+)+$')).ok, 'a catastrophic pattern for backtracking engines is valid RE2')
  // Header and query regexes and the rewrite regex go through the same check.
  let r = load(vs('  - match: [{ headers: { x-a: { regex: "(?=x)" } } }]\n    route: [{ destination: { host: reviews } }]\n'))
  t.match(errors(r.problems)[0], { path: 'spec.http[0].match[0].headers.x-a.regex', message: /RE2/ })
  r = load(vs('  - match: [{ queryParams: { q: { regex: "(a)\\\\1" } } }]\n    route: [{ destination: { host: reviews } }]\n'))
  t.match(errors(r.problems)[0], { path: 'spec.http[0].match[0].queryParams.q.regex', message: /RE2/ })
  r = load(vs('  - rewrite: { uriRegexRewrite: { match: "([a-z", rewrite: "/" } }\n    route: [{ destination: { host: reviews } }]\n'))
  t.match(errors(r.problems)[0], { path: 'spec.http[0].rewrite.uriRegexRewrite.match', message: /RE2/ })
})

t.test('F8: mutual fallback is valid; unknown fallback subset, duplicate names, shadowed routes warn', async t => {
  let r = load(vs(`  - match: [{ uri: { prefix: /a } }]
    route:
    - destination: { host: reviews, subset: v1 }
      fallback: { target: { host: reviews, subset: v2 } }
  - route:
    - destination: { host: reviews, subset: v2 }
      fallback: { target: { host: reviews, subset: v1 } }
`))
  t.ok(r.ok, 'v1→v2 on one route, v2→v1 on another')
  t.same(r.problems, [], 'no warning: fallback does not cascade, so there is no loop')

  r = load(vs('  - route:\n    - destination: { host: reviews, subset: v1 }\n      fallback: { target: { host: reviews, subset: v9 } }\n'))
  t.ok(r.ok, 'an unknown fallback subset is a warning, not an error')
  t.match(warnings(r.problems), [{ code: 'IST0101', path: 'spec.http[0].route[0].fallback.target.subset', message: /reviews\+v9/ }])
  t.notOk(load(vs('  - route:\n    - destination: { host: reviews, subset: v1 }\n      fallback: { target: { host: reviews, subset: v9 } }\n'), true).ok, '--strict rejects it')

  r = load(vs(`  - name: same
    match: [{ uri: { prefix: /a } }]
    route: [{ destination: { host: reviews, subset: v1 } }]
  - name: same
    route: [{ destination: { host: reviews, subset: v2 } }]
`))
  t.ok(r.ok)
  t.match(warnings(r.problems), [{ code: 'MG0005', path: 'spec.http[1].name', message: /route name "same" is also used by spec\.http\[0\]/ }], 'duplicate route names: both named')

  r = load(vs(`  - name: first
    match: [{ uri: { prefix: /a } }]
    route: [{ destination: { host: reviews, subset: v1 } }]
  - name: everything
    match: [{ uri: { prefix: / } }]
    route: [{ destination: { host: reviews, subset: v1 } }]
  - name: late
    match: [{ uri: { prefix: /b } }]
    route: [{ destination: { host: reviews, subset: v2 } }]
  - route: [{ destination: { host: reviews, subset: v2 } }]
`))
  t.ok(r.ok)
  const shadowed = warnings(r.problems).filter(p => p.code === 'MG0009')
  t.equal(shadowed.length, 2, 'both routes after the catch-all')
  t.match(shadowed[0], { path: 'spec.http[2]', message: /spec\.http\[2\] \("late"\) is never used: spec\.http\[1\] \("everything"\) before it matches every request/ })
  t.match(shadowed[1], { path: 'spec.http[3]', message: /spec\.http\[3\] is never used: spec\.http\[1\] \("everything"\)/ })

  // Conditions on port, headers or gateways do not make a catch-all; a final default route is fine.
  r = load(vs(`  - match: [{ port: 9080 }]
    route: [{ destination: { host: reviews, subset: v1 } }]
  - match: [{ headers: { end-user: { exact: jason } } }]
    route: [{ destination: { host: reviews, subset: v2 } }]
  - route: [{ destination: { host: reviews, subset: v1 } }]
`))
  t.same(r.problems, [], 'no shadowing warning for conditional routes and a last default')
})

t.test('F9: header names and values meshgate sets cannot split a header', async t => {
  const hdr = (dir: 'request' | 'response', op: 'set' | 'add', name: string, value: string): string =>
    vs(`  - headers:\n      ${dir}:\n        ${op}: { ${JSON.stringify(name)}: ${JSON.stringify(value)} }\n    route: [{ destination: { host: reviews } }]\n`)
  for (const dir of ['request', 'response'] as const) {
    for (const op of ['set', 'add'] as const) {
      for (const [value, message] of [['a\r\nx-evil: 1', /CR, LF or NUL/], ['a\nb', /CR, LF or NUL/], ['a\u0000', /CR, LF or NUL/], ['a\u0007b', /control characters/], ['a\u007fb', /control characters/]] as const) {
        const r = load(hdr(dir, op, 'x-ok', value))
        t.notOk(r.ok, `${dir}.${op} value ${JSON.stringify(value)}`)
        t.match(errors(r.problems)[0], { path: `spec.http[0].headers.${dir}.${op}.x-ok`, message })
      }
      for (const name of ['x bad', 'x:y', 'x\r\ny', 'x(y)', 'x"y', '']) {
        const r = load(hdr(dir, op, name, 'v'))
        t.notOk(r.ok, `${dir}.${op} name ${JSON.stringify(name)}`)
        t.match(errors(r.problems)[0].message, /not a valid header name/)
      }
    }
  }
  t.ok(load(hdr('request', 'set', 'x-tab-ok', 'a\tb c ~é')).ok, 'tab, space and non-ASCII text are allowed in a value')
  // Per-destination headers, remove lists, and the other values copied into headers.
  const more: Array<[string, string]> = [
    ['  - route:\n    - destination: { host: reviews }\n      headers: { response: { set: { x-a: "1\\r\\n2" } } }\n', 'spec.http[0].route[0].headers.response.set.x-a'],
    ['  - headers: { request: { remove: ["bad header"] } }\n    route: [{ destination: { host: reviews } }]\n', 'spec.http[0].headers.request.remove[0]'],
    ['  - redirect: { uri: "/a\\r\\nset-cookie: x=1" }\n', 'spec.http[0].redirect.uri'],
    ['  - redirect: { authority: "a\\nb" }\n', 'spec.http[0].redirect.authority'],
    ['  - rewrite: { authority: "a\\r\\nb" }\n    route: [{ destination: { host: reviews } }]\n', 'spec.http[0].rewrite.authority'],
    ['  - corsPolicy: { allowOrigins: [{ exact: "https://a" }], allowMethods: ["GET\\r\\nx: 1"] }\n    route: [{ destination: { host: reviews } }]\n', 'spec.http[0].corsPolicy.allowMethods[0]']
  ]
  for (const [http, path] of more) {
    const r = load(vs(http))
    t.notOk(r.ok, path)
    t.ok(errors(r.problems).some(p => p.path === path), `${path} named (${errors(r.problems).map(p => p.path).join(', ')})`)
  }
})
