import t from 'tap'
import { canonicalize, canonicalTarget, removeDotSegments, type CanonicalResult, type PathPolicy } from '../../src/routing/path.js'

// The pure canonicalizer behind table B (src/routing/path.ts), case by case and per policy.

const BASE: PathPolicy = { normalization: 'BASE', escapedSlashes: 'REJECT' }
const ok = (target: string): CanonicalResult => ({ kind: 'ok', target })

t.test('RFC 3986 §5.2.4 examples and edge cases', async t => {
  const cases: Array<[string, string]> = [
    ['/a/b/c/./../../g', '/a/g'],
    ['/mid/content=5/../6', '/mid/6'],
    ['/..', '/'],
    ['/../..', '/'],
    ['/a/..', '/'],
    ['/a/.', '/a/'],
    ['/a/./', '/a/'],
    ['/a/b/..', '/a/'],
    ['/a/...', '/a/...'],
    ['/a/..b/.c', '/a/..b/.c'],
    ['/a//../b', '/a/b']
  ]
  for (const [input, want] of cases) t.equal(removeDotSegments(input), want, input)
})

t.test('BASE: decode unreserved, backslash to slash, dots removed, everything else escaped', async t => {
  const cases: Array<[string, CanonicalResult['kind'], string?]> = [
    ['/', 'ok', '/'],
    ['/plain/path-1_~.x', 'ok', '/plain/path-1_~.x'],
    ['/a%2e%2E/../b', 'ok', '/b'],
    ['/%61%62c', 'ok', '/abc'],
    ['/a%20b', 'ok', '/a%20b'],
    ['/a%3f', 'ok', '/a%3F'],
    ['/a b', 'ok', '/a%20b'],
    ['/a"<>`{}|^[]', 'ok', '/a%22%3C%3E%60%7B%7D%7C%5E%5B%5D'],
    ['/caf\u00e9', 'ok', '/caf%E9'],
    ['/\u20ac', 'ok', '/%E2%82%AC'],
    ['/a\\b\\..\\c', 'ok', '/a/c'],
    ['//x//y', 'ok', '//x//y'],
    ['/a?b=../%zz#', 'reject'],
    ['/a?b=../%zz', 'ok', '/a?b=../%zz'],
    ['/a%2Fb', 'reject'],
    ['/a%5cb', 'reject'],
    ['/a%', 'reject'],
    ['/a%1', 'reject'],
    ['/a%x1', 'reject'],
    ['a/b', 'reject'],
    ['*', 'reject'],
    ['', 'reject'],
    ['http://x/y', 'reject']
  ]
  for (const [input, kind, target] of cases) {
    const r = canonicalize(input, BASE)
    t.equal(r.kind, kind, `${JSON.stringify(input)}: ${kind}`)
    if (target !== undefined && r.kind === 'ok') t.equal(r.target, target, `${JSON.stringify(input)} → ${target}`)
  }
})

t.test('policies: NONE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES, and each escaped-slash action', async t => {
  t.same(canonicalize('/a/../b\\c', { normalization: 'NONE', escapedSlashes: 'REJECT' }), ok('/a/../b\\c'), 'NONE forwards as received (still validated)')
  t.same(canonicalize('/a%zz', { normalization: 'NONE', escapedSlashes: 'REJECT' }).kind, 'reject', 'NONE still refuses malformed escapes')
  t.same(canonicalize('//a//./b', { normalization: 'MERGE_SLASHES', escapedSlashes: 'REJECT' }), ok('/a/b'))
  t.same(canonicalize('/a%2F%2Fb', { normalization: 'DECODE_AND_MERGE_SLASHES', escapedSlashes: 'REJECT' }), ok('/a/b'), 'DECODE_AND_MERGE_SLASHES decodes %2F even when the action is REJECT (Istio)')
  t.same(canonicalize('/a%2F..%2Fb', { normalization: 'DECODE_AND_MERGE_SLASHES', escapedSlashes: 'UNESCAPE_AND_REDIRECT' }), { kind: 'redirect', target: '/b' })
  t.same(canonicalize('/a%2f..%5Cb', { normalization: 'BASE', escapedSlashes: 'KEEP_UNCHANGED' }), ok('/a%2F..%5Cb'), 'KEEP_UNCHANGED keeps the escape (hex uppercased)')
  t.same(canonicalize('/a%2f..%5Cb', { normalization: 'BASE', escapedSlashes: 'UNESCAPE_AND_FORWARD' }), ok('/b'))
  t.same(canonicalize('/a%2Fb?x=%2F', { normalization: 'BASE', escapedSlashes: 'UNESCAPE_AND_REDIRECT' }), { kind: 'redirect', target: '/a/b?x=%2F' }, 'the query is never unescaped')
  t.same(canonicalize('/a/b', { normalization: 'BASE', escapedSlashes: 'UNESCAPE_AND_REDIRECT' }), ok('/a/b'), 'nothing to unescape: no redirect')
  t.equal(canonicalTarget('/x/../y'), '/y', 'canonicalTarget: the default policy')
  t.equal(canonicalTarget('/x%2Fy'), undefined)
})

t.test('idempotent: an accepted canonical path canonicalizes to itself under every policy', async t => {
  const inputs = ['/a/./b/../c', '/%2e%2e/%2E/x', '/a\\..\\b', '//a///b', '/a%2Fb%5C..', '/x%20y%41%7e', '/caf\u00e9/\u20ac', '/a/b/..?q=/../', '/.well-known/x', '/a..b/...']
  const policies: PathPolicy[] = []
  for (const normalization of ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'] as const) {
    for (const escapedSlashes of ['REJECT', 'KEEP_UNCHANGED', 'UNESCAPE_AND_FORWARD', 'UNESCAPE_AND_REDIRECT'] as const) policies.push({ normalization, escapedSlashes })
  }
  for (const p of policies) {
    for (const input of inputs) {
      const once = canonicalize(input, p)
      if (once.kind === 'reject') continue
      const twice = canonicalize(once.target, p)
      t.same(twice, ok(once.target), `${p.normalization}/${p.escapedSlashes}: ${JSON.stringify(input)}`)
      if (p.normalization !== 'NONE') t.notOk(once.target.split('?')[0].split('/').some(s => s === '..' || s === '.'), 'no dot segment survives')
    }
  }
})
