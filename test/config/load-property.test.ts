// Property-based tests of the config loader (issue #8 item 8): whatever the input — arbitrary
// text, arbitrary data serialised as YAML, resource-shaped junk, mutated Bookinfo samples —
// loadConfig never throws, returns problems with a position instead, `ok` agrees with the
// problems, and whatever it accepts compiles without throwing.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import t from 'tap'
import { stringify } from 'yaml'
import { compile } from '../../src/compile/compile.js'
import { loadConfig, type LoadResult } from '../../src/config/load.js'
import { API_VERSIONS, KINDS } from '../../src/config/model.js'

const SAMPLES_DIR = fileURLToPath(new URL('../fixtures/istio-samples/', import.meta.url))
const SAMPLES = readdirSync(SAMPLES_DIR).filter(f => f.endsWith('.yaml')).sort().map(f => readFileSync(join(SAMPLES_DIR, f), 'utf8'))
// Bookinfo as the gateway would run it: every sample plus the services they name.
const SERVICES = ['productpage', 'reviews', 'ratings', 'details'].map(h => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${h} }
spec:
  hosts: [${h}]
  location: MESH_INTERNAL
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: 9 }, labels: { app: ${h}, version: v1 } }]
`).join('---\n')

const RUNS = { numRuns: 150, interruptAfterTimeLimit: 20_000 }

/** The loader's contract, checked on one result; compile runs on whatever was accepted. */
function wellFormed (r: LoadResult): boolean {
  if (!Array.isArray(r.problems)) return false
  for (const p of r.problems) {
    if (!['Error', 'Warning', 'Info'].includes(p.severity)) return false
    if (typeof p.message !== 'string' || p.message === '' || typeof p.code !== 'string') return false
    if (!Number.isInteger(p.line) || p.line < 1 || !Number.isInteger(p.column) || p.column < 1) return false
    if (typeof p.file !== 'string') return false
  }
  if (r.ok !== !r.problems.some(p => p.severity === 'Error')) return false
  if (r.ok) {
    const c = compile(r.set, { generation: 1 })
    if (c.snapshot === undefined || !Array.isArray(c.problems)) return false
  }
  return true
}

const load = (text: string, strict = false): LoadResult => loadConfig([{ file: 'p.yaml', text }], { strict })

t.test('arbitrary text never throws and yields well-formed problems', async t => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 400 }), s => wellFormed(load(s))), RUNS)
  // Text built from YAML's own punctuation reaches the parser's corners faster.
  const yamlish = fc.array(fc.constantFrom('a', 'b', ':', ' ', '  ', '\t', '\n', '- ', '[', ']', '{', '}', ',', '&x ', '*x', '!!str ', '!t ', '? ', '|', '>', '"', "'", '#', '---\n', '...\n', '%YAML 1.2\n', '<<: ', '\r', '\u0000', '\uFEFF', 'kind: VirtualService\n', 'spec:\n'), { maxLength: 120 }).map(a => a.join(''))
  fc.assert(fc.property(yamlish, fc.boolean(), (s, strict) => wellFormed(load(s, strict))), RUNS)
  t.pass('loadConfig returned for every generated text')
})

t.test('arbitrary data serialised as YAML never throws, and never writes process warnings', async t => {
  const warnings: string[] = []
  const onWarning = (w: Error): void => { warnings.push(w.message) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 5 }), v => wellFormed(load(stringify(v)))), RUNS)
  fc.assert(fc.property(fc.array(fc.anything({ maxDepth: 4, withNullPrototype: true, withMap: true, withSet: true, withBigInt: true, withDate: true }), { maxLength: 3 }), docs => {
    let text: string
    try {
      text = docs.map(d => stringify(d)).join('---\n')
    } catch {
      return true // not every JS value has a YAML form; the property is about the loader
    }
    return wellFormed(load(text))
  }), RUNS)
  t.pass('loadConfig returned for every generated document')
  // A collection as a map key, which yaml would warn about on the process.
  t.ok(wellFormed(load('? [a, b]\n: 1\n? {x: 1}\n: 2\n')))
  await new Promise(resolve => setImmediate(resolve))
  t.same(warnings, [], 'the loader never emits process warnings')
})

t.test('resource-shaped junk (right kind and apiVersion, arbitrary spec) never throws', async t => {
  const leaf = fc.oneof(fc.string({ maxLength: 12 }), fc.integer({ min: -5, max: 70000 }), fc.double(), fc.boolean(), fc.constant(null),
    fc.constantFrom('reviews', 'v1', '/', '^(a+)+$', '([a-z', '5s', '-1s', '*', 'mesh', 'a\r\nb', 'HTTP', 'HTTPS', 'SIMPLE', '0.0.0.0', '127.0.0.1', 'foo/bar'))
  const fields = fc.constantFrom('hosts', 'http', 'route', 'destination', 'host', 'subset', 'weight', 'match', 'uri', 'prefix', 'exact', 'regex', 'headers',
    'gateways', 'servers', 'port', 'number', 'protocol', 'name', 'subsets', 'labels', 'trafficPolicy', 'tls', 'mode', 'endpoints', 'address', 'ports',
    'resolution', 'fallback', 'target', 'timeout', 'retries', 'attempts', 'fault', 'abort', 'httpStatus', 'delay', 'fixedDelay', 'percentage', 'value',
    'rewrite', 'redirect', 'delegate', 'mirror', 'corsPolicy', 'set', 'add', 'remove', 'request', 'response', 'outlierDetection', 'loadBalancer', 'simple')
  const { tree } = fc.letrec(tie => ({
    tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, fc.array(tie('tree'), { maxLength: 3 }), fc.dictionary(fields, tie('tree'), { maxKeys: 4 }))
  }))
  const resource = fc.record({
    apiVersion: fc.constantFrom(...API_VERSIONS, 'v1', 'networking.istio.io/v2'),
    kind: fc.constantFrom(...KINDS, 'Sidecar'),
    metadata: fc.record({ name: fc.constantFrom('reviews', 'a', 'Bad_Name', ''), namespace: fc.constantFrom('default', 'bookinfo', '') }, { requiredKeys: ['name'] }),
    spec: tree
  })
  fc.assert(fc.property(fc.array(resource, { minLength: 1, maxLength: 4 }), fc.boolean(), (rs, strict) => wellFormed(load(rs.map(r => stringify(r)).join('---\n'), strict))), RUNS)
  t.pass('loadConfig and compile returned for every generated set')
})

t.test('mutated Bookinfo samples never throw; the unmutated set loads', async t => {
  t.ok(SAMPLES.length >= 15, `${SAMPLES.length} Istio samples`)
  const pristine = loadConfig([...SAMPLES.map((text, i) => ({ file: `s${i}.yaml`, text })), { file: 'services.yaml', text: SERVICES }])
  t.ok(wellFormed(pristine), 'the samples load and compile')
  t.ok(pristine.ok, `and are accepted (${pristine.problems.filter(p => p.severity === 'Error').map(p => p.message).join('; ')})`)
  const mutation = fc.oneof(
    fc.record({ op: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
    fc.record({ op: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(':', '-', '\t', '\n', '  ', '[', '{', '&a', '*a', '"', '\r\n')) }),
    fc.record({ op: fc.constant('dupLine' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('swapLines' as const), at: fc.nat(), other: fc.nat() }),
    fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('indent' as const), at: fc.nat(), by: fc.integer({ min: -4, max: 4 }) }),
    fc.record({ op: fc.constant('replaceValue' as const), at: fc.nat(), value: fc.constantFrom('-1', '0', '1e309', 'null', '~', '[]', '{}', '"x\\r\\ny"', '(?=x)', '99999', 'true', '*', '""') })
  )
  type Mutation = { op: 'delete'; at: number; len: number } | { op: 'insert'; at: number; text: string } | { op: 'dupLine'; at: number } | { op: 'swapLines'; at: number; other: number } | { op: 'truncate'; at: number } | { op: 'indent'; at: number; by: number } | { op: 'replaceValue'; at: number; value: string }
  const apply = (text: string, m: Mutation): string => {
    const lines = text.split('\n')
    const li = (n: number): number => n % Math.max(1, lines.length)
    switch (m.op) {
      case 'delete': { const at = m.at % Math.max(1, text.length); return text.slice(0, at) + text.slice(at + m.len) }
      case 'insert': { const at = m.at % (text.length + 1); return text.slice(0, at) + m.text + text.slice(at) }
      case 'truncate': return text.slice(0, m.at % (text.length + 1))
      case 'dupLine': lines.splice(li(m.at), 0, lines[li(m.at)]); return lines.join('\n')
      case 'swapLines': { const a = li(m.at); const b = li(m.other); [lines[a], lines[b]] = [lines[b], lines[a]]; return lines.join('\n') }
      case 'indent': { const i = li(m.at); lines[i] = m.by >= 0 ? ' '.repeat(m.by) + lines[i] : lines[i].slice(-m.by); return lines.join('\n') }
      case 'replaceValue': { const i = li(m.at); const c = lines[i].indexOf(': '); if (c >= 0) lines[i] = `${lines[i].slice(0, c + 2)}${m.value}`; return lines.join('\n') }
    }
  }
  fc.assert(fc.property(fc.nat({ max: SAMPLES.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.boolean(), (which, ms, strict) => {
    const text = ms.reduce((s, m) => apply(s, m as Mutation), SAMPLES[which])
    return wellFormed(loadConfig([{ file: 'sample.yaml', text }, { file: 'services.yaml', text: SERVICES }], { strict }))
  }), { numRuns: 300, interruptAfterTimeLimit: 30_000 })
  t.pass('loadConfig and compile returned for every mutated sample')
})
