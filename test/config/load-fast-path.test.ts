// The loader reads YAML with js-yaml when it can (about ten times faster than `yaml`, and no
// syntax tree kept), and with `yaml` otherwise; positions inside a js-yaml document are found
// by `yaml` when first asked. These tests hold both paths to the same answer: the same
// resources, the same problems, and the same line and column for every field path.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import t from 'tap'
import { stringify } from 'yaml'
import { parseDocuments } from '../../src/config/load.js'
import type { Resource } from '../../src/config/model.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
type Path = Array<string | number>

/** Every path inside a value, plus a few that do not exist (they answer the nearest ancestor). */
function paths (v: unknown, base: Path = []): Path[] {
  const out: Path[] = [base, [...base, 'no-such-field']]
  if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...base, Array.isArray(v) ? Number(k) : k]))
  }
  return out
}

const plain = (r: Resource): Omit<Resource, 'locate'> => { const { locate: _l, ...rest } = r; return rest }

/** The differences between the fast path and the `yaml`-only path for one text ([] when none). */
function differences (text: string, file = 'f.yaml'): string[] {
  const fast = parseDocuments(text, file)
  const ref = parseDocuments(text, file, true)
  const out: string[] = []
  if (!isDeepStrictEqual(fast.problems, ref.problems)) out.push(`problems: ${JSON.stringify(fast.problems)} vs ${JSON.stringify(ref.problems)}`)
  if (!isDeepStrictEqual(fast.resources.map(plain), ref.resources.map(plain))) out.push(`resources: ${JSON.stringify(fast.resources.map(plain))} vs ${JSON.stringify(ref.resources.map(plain))}`)
  else {
    fast.resources.forEach((r, i) => {
      for (const p of paths(plain(r).spec, ['spec']).concat(paths(plain(r).metadata, ['metadata']), [['kind'], ['apiVersion'], []])) {
        const a = r.locate(p)
        const b = ref.resources[i].locate(p)
        if (a.line !== b.line || a.column !== b.column) { out.push(`position of ${p.join('.')}: ${a.line}:${a.column} vs ${b.line}:${b.column}`); return }
      }
    })
  }
  return out
}

t.test('every YAML file of the repository: same resources, problems and positions on both paths', async t => {
  const files = execFileSync('git', ['ls-files', '*.yaml', '*.yml'], { cwd: ROOT }).toString().trim().split('\n')
  t.ok(files.length > 50, `${files.length} files`)
  for (const f of files) t.same(differences(readFileSync(ROOT + f, 'utf8'), f), [], f)
})

// A resource with room for every kind of scalar and layout below.
const doc = (body: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: v, namespace: default, labels: ${body.includes('\n') ? '{}' : body} }
spec:
  hosts: [a]
  http:
  - route: [{ destination: { host: a } }]
`

t.test('YAML features the two parsers could read differently give the same answer', async t => {
  const cases: Record<string, string> = {
    'anchors and aliases': 'a: &x {b: 1}\nc: *x\n',
    'an alias bomb': 'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n',
    'a merge key (a plain key in YAML 1.2)': 'a: {x: 1}\nb: {<<: {y: 2}}\n',
    'explicit tags': 'a: !!str 12\nb: !!int "7"\nc: !custom x\nd: !!binary aGk=\ne: ! 12\n',
    '%YAML 1.1 (yes and no are booleans there)': '%YAML 1.1\n---\na: yes\nb: no\nc: 0777\n',
    '%TAG': '%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n',
    'null, empty and tilde keys': '~: a\nnull: b\n',
    'an empty key': ': a\n',
    'an explicit complex key': '? [a, b]\n: c\n',
    'a flow collection as a key': '[a, b]: c\n{x: 1}: d\n',
    'a long implicit key': `${'k'.repeat(1100)}: v\n`,
    'a byte-order mark': '\uFEFFa: 1\n',
    'CR line breaks': 'a: 1\rb: 2\r',
    'CRLF line breaks': 'a: 1\r\nb: "x\r\n  y"\r\n',
    'duplicate keys': 'a: 1\na: 2\n',
    'duplicate keys that differ only in type': '1: a\n"1": b\n',
    'deep nesting': 'a: ' + '['.repeat(150) + ']'.repeat(150) + '\n',
    'a tab in indentation': 'a:\n\tb: 1\n',
    'numbers of the core schema': 'a: [0o17, 0x1F, 017, 1e3, .5, +12, -0, 1_000, 0b101, .inf, -.Inf, .NaN, 12., 1.50, 0x, 1e, 3:25]\n',
    'booleans and nulls': 'a: [true, True, TRUE, tRue, yes, on, ~, null, Null, NULL, nUll, ""]\n',
    'block scalars': 'a: |\n  x\n   y\n\n  z\nb: >-\n  p\n  q\n\n  r\nc: |+\n  k\n\nd: |2\n    i\n',
    'quoted escapes': 'a: "\\x41\\u00e9\\t\\"\\\\ \\U0001F600"\nb: \'it\'\'s\'\nc: "multi\n  line"\n',
    'plain multi-line scalars': 'a: one\n  two\n\n  three\n',
    'comments everywhere': '# c\na: 1 # c\n# c\nb: [1, # c\n  2]\n',
    'prototype keys': '__proto__: {a: 1}\nconstructor: x\ntoString: y\n',
    'document markers': '---\na: 1\n...\n---\n# nothing\n---\n--- {b: 2}\n...\n',
    // Texts the fuzzing below found read differently before the loader sent them to `yaml`.
    'a quoted scalar continued at the margin': 'a: "kind: VirtualService\n"\nb: \'x\n\'\n',
    'a flow collection continued at the margin': 'a: {d: 1,\nb: 2}\n- [\n]- :3\n',
    'a comment right after a quote or bracket': "a: ''#\nb: [#x\n]\n",
    'text after ... and right after ---': '... x\n---x\n',
    'a block mapping on the --- line': '--- d: 1\n',
    'an indented document': '   -\n- 1\n',
    'white-space lines opening a block scalar': 'a: >\n    \n  x\n',
    'an empty list item before a less indented one': 'c:\n -\n- a\n',
    'a directive-like line': '%x\n ---\n'
  }
  for (const [name, yaml] of Object.entries(cases)) {
    t.same(differences(yaml), [], `${name}: as a document`)
    t.same(differences(doc(yaml.trimEnd().split('\n').length === 1 && !yaml.startsWith('%') ? `{ ${yaml.trim()} }` : '{}') + '---\n' + yaml), [], `${name}: after a resource`)
  }
})

t.test('resources: every field has the same position on both paths, whatever the layout', async t => {
  const value = fc.letrec(tie => ({
    scalar: fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.double({ noNaN: false }), fc.boolean(), fc.constant(null), fc.constantFrom('~', 'yes', '0x1F', '1e3', 'a: b', '- x', '#', '"', "'", '*x', '&y', '!t', '? k', '%')),
    node: fc.oneof({ depthSize: 'small' }, tie('scalar'), tie('list'), tie('map')),
    list: fc.array(tie('node'), { maxLength: 4 }),
    map: fc.dictionary(fc.string({ maxLength: 6 }), tie('node'), { maxKeys: 4 })
  })).node
  const options = fc.record({
    flow: fc.boolean(),
    indent: fc.integer({ min: 1, max: 4 }),
    quote: fc.boolean(),
    block: fc.constantFrom('PLAIN', 'QUOTE_DOUBLE', 'QUOTE_SINGLE', 'BLOCK_LITERAL', 'BLOCK_FOLDED')
  })
  fc.assert(fc.property(value, value, options, (labels, spec, o) => {
    const text = [
      { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'v', labels }, spec: { hosts: ['a'], extra: spec } },
      { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'd' }, spec }
    ].map(d => stringify(d, { indent: o.indent, collectionStyle: o.flow ? 'flow' : 'any', singleQuote: o.quote, defaultStringType: o.block as 'PLAIN' })).join('---\n')
    const d = differences(text)
    if (d.length > 0) throw new Error(d.join('\n'))
    return true
  }), { numRuns: 300, interruptAfterTimeLimit: 30_000 })
  t.pass('same answer for every generated document')
})

t.test('text built from YAML punctuation: the same answer on both paths', async t => {
  // Two alphabets: YAML's punctuation, and pieces of block layout (indentation, block scalars,
  // list items, quotes that may or may not close on their line).
  const alphabets = [
    ['a', 'b', ':', ' ', '  ', '\t', '\n', '- ', '[', ']', '{', '}', ',', '&x ', '*x', '!!str ', '!t ', '? ', '|', '>', '"', "'", '#', '---\n', '...\n', '%YAML 1.2\n', '<<: ', '\r', '\uFEFF', '~', '0x1', '1e3', 'kind: VirtualService\n', 'spec:\n', '\n  ', 'x: ', '  - ', '\\'],
    ['a', 'b: ', 'c:', ' ', '  ', '   ', '\n', '\n  ', '\n   ', '\n    ', '- ', '-', '[', ']', '{', '}', ', ', '|', '|2', '>-', '"x"', "'y'", "it's", '"', "'", ' # c', '#', '---', '---\n', '...', '1', '0x1', '-1.5', 'null', 'true', 'kind: Gateway\n', '\\', ':', '?', ',']
  ]
  for (const alphabet of alphabets) {
    const text = fc.array(fc.constantFrom(...alphabet), { maxLength: 60 }).map(a => a.join(''))
    fc.assert(fc.property(text, s => {
      const d = differences(s)
      if (d.length > 0) throw new Error(`${JSON.stringify(s)}\n${d.join('\n')}`)
      return true
    }), { numRuns: Number(process.env.FUZZ_RUNS ?? 3000), interruptAfterTimeLimit: Number(process.env.FUZZ_MS ?? 30_000) })
  }
  t.pass('same answer for every generated text')
})
