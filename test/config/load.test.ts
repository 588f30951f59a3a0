import t from 'tap'
import { addResource, loadConfig, parseDocuments } from '../../src/config/load.js'
import { formatProblem, type Problem } from '../../src/config/problem.js'
import { emptySet, type ResourceSet } from '../../src/config/model.js'

// Parsing: multi-document YAML with positions, kinds, apiVersions, namespace default, unknown
// kinds, schema errors (unknown fields, wrong types), YAML syntax and duplicate keys.

const lines = (text: string, file = 'a.yaml'): string[] => parseDocuments(text, file).problems.map(formatProblem)

const VS = (apiVersion: string, extra = ''): string => `apiVersion: ${apiVersion}
kind: VirtualService
metadata:
  name: reviews
${extra}spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
`

t.test('multi-document YAML: every kind, document index and position', async t => {
  const text = `# comment line
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
${VS('networking.istio.io/v1beta1')}---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  name: reviews
  namespace: shop
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm1}
spec:
  address: 127.0.0.2
  labels: {app: reviews}
`
  const { resources, problems } = parseDocuments(text, 'multi.yaml')
  t.same(problems, [])
  t.same(resources.map(r => [r.kind, r.metadata.namespace, r.metadata.name, r.source.file, r.source.doc, r.source.line, r.source.column]), [
    ['Gateway', 'default', 'gw', 'multi.yaml', 0, 2, 1],
    ['VirtualService', 'default', 'reviews', 'multi.yaml', 1, 13, 1],
    ['DestinationRule', 'shop', 'reviews', 'multi.yaml', 2, 25, 1],
    ['ServiceEntry', 'default', 'reviews', 'multi.yaml', 3, 36, 1],
    ['WorkloadEntry', 'default', 'vm1', 'multi.yaml', 4, 45, 1]
  ])
  // locate() gives the position of a field for later (cross-reference) problems.
  t.same(resources[1].locate(['spec', 'http', 0, 'route', 0, 'destination', 'host']), { line: 23, column: 9 })
  t.same(resources[1].locate(['spec', 'hosts', 0]), { line: 19, column: 5 })
  t.same(resources[1].locate(['spec', 'http', 0, 'nothing', 'here']), { line: 21, column: 5 }, 'nearest existing ancestor')
})

t.test('apiVersions v1, v1beta1 and v1alpha3 share one schema; others are errors', async t => {
  for (const v of ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3']) {
    const r = parseDocuments(VS(v), 'a.yaml')
    t.same(r.problems, [], v)
    t.equal(r.resources.length, 1, v)
  }
  t.same(lines(VS('networking.istio.io/v2')), [
    'Error [IST0106] (VirtualService default/reviews a.yaml:1:1) apiVersion: apiVersion "networking.istio.io/v2" is not one of networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3'
  ])
  t.same(parseDocuments(VS('networking.istio.io/v2'), 'a.yaml').resources, [], 'a resource with a schema error is not kept')
})

t.test('metadata.namespace defaults to default; an explicit one is kept', async t => {
  t.equal(parseDocuments(VS('networking.istio.io/v1'), 'a.yaml').resources[0].metadata.namespace, 'default')
  t.equal(parseDocuments(VS('networking.istio.io/v1', '  namespace: bookinfo\n'), 'a.yaml').resources[0].metadata.namespace, 'bookinfo')
})

t.test('kinds of other API groups are skipped with a warning at the document start; security kinds are read', async t => {
  const text = `${VS('networking.istio.io/v1')}---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny}
spec: {}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
`
  const r = parseDocuments(text, 'k.yaml')
  t.same(r.problems.map(formatProblem), [
    'Warning [MG0002] (k.yaml:18:1) kind "Service" is not handled by meshgate; skipped'
  ])
  t.same(r.resources.map(x => x.kind), ['VirtualService', 'AuthorizationPolicy'])
  // A warning alone does not make the load fail.
  t.equal(loadConfig([{ file: 'k.yaml', text }]).ok, true)
})

t.test('schema errors: exact position and field path (table)', async t => {
  const cases: Array<[string, string, string[]]> = [
    ['typo in a nested field', `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subst: v1
`, ['Error [IST0106] (VirtualService default/reviews a.yaml:11:9) spec.http[0].route[0].destination.subst: unknown field "subst"']],
    ['typo at spec level', `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  host: [reviews]
`, ['Error [IST0106] (VirtualService default/reviews a.yaml:5:3) spec.host: unknown field "host"']],
    ['unknown top-level field', `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews}
specs: {}
`, ['Error [IST0106] (DestinationRule default/reviews a.yaml:5:1) specs: unknown field "specs"']],
    ['wrong type: weight is a string', `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: fifty
`, ['Error [IST0106] (VirtualService default/reviews a.yaml:9:7) spec.http[0].route[0].weight: Expected integer']],
    ['wrong type: hosts is a string', `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: reviews
  http: []
`, ['Error [IST0106] (VirtualService default/reviews a.yaml:5:3) spec.hosts: Expected array']],
    ['required field missing: destination.host', `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        subset: v1
`, ['Error [IST0106] (VirtualService default/reviews a.yaml:8:7) spec.http[0].route[0].destination.host: required field "host" is missing']],
    ['port out of range', `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: s}
spec:
  hosts: [s.example.com]
  ports:
  - {number: 70000, name: http, protocol: HTTP}
`, ['Error [IST0106] (ServiceEntry default/s a.yaml:7:6) spec.ports[0].number: Expected integer to be less or equal to 65535']],
    ['kind missing', `apiVersion: networking.istio.io/v1
metadata: {name: x}
spec: {}
`, ['Error [IST0106] (a.yaml:1:1) kind: kind is required']],
    ['metadata missing', `apiVersion: networking.istio.io/v1
kind: DestinationRule
spec: {host: reviews}
`, ['Error [IST0106] (DestinationRule default/? a.yaml:1:1) metadata: metadata is required']],
    ['spec missing', `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
`, ['Error [IST0106] (DestinationRule default/reviews a.yaml:1:1) spec: spec is required']],
    ['name not DNS-1123', `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: Reviews_DR}
spec: {host: reviews}
`, ['Error [IST0106] (DestinationRule default/Reviews_DR a.yaml:3:12) metadata.name: name "Reviews_DR" must be a lowercase DNS-1123 subdomain']],
    ['document is not a mapping', `- just
- a list
`, ['Error [IST0106] (a.yaml:1:1) a document must be a mapping with apiVersion, kind, metadata and spec']]
  ]
  for (const [name, text, want] of cases) t.same(lines(text), want, name)
})

t.test('every schema problem of a document is reported at once', async t => {
  const text = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  htp: []
  http:
  - route:
    - destination: {host: reviews, subst: v1}
    - destination: {host: reviews}
      wieght: 5
`
  t.same(lines(text), [
    'Error [IST0106] (VirtualService default/reviews a.yaml:6:3) spec.htp: unknown field "htp"',
    'Error [IST0106] (VirtualService default/reviews a.yaml:9:36) spec.http[0].route[0].destination.subst: unknown field "subst"',
    'Error [IST0106] (VirtualService default/reviews a.yaml:11:7) spec.http[0].route[1].wieght: unknown field "wieght"'
  ])
  // Unknown fields alone keep the resource, so cross-reference problems are found in the same run.
  t.equal(parseDocuments(text, 'a.yaml').resources.length, 1)
})

t.test('YAML syntax errors and duplicate keys name the line and column', async t => {
  const dup = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  host: ratings
`
  t.same(lines(dup), ['Error [MG0001] (a.yaml:7:3) Map keys must be unique'])
  const bad = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: [reviews
`
  // An unclosed flow sequence is noticed where the input ends.
  t.same(lines(bad), ['Error [MG0001] (a.yaml:7:1) Flow sequence in block collection must be sufficiently indented and end with a ]'])
  const tabs = 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n\tname: x\n'
  t.same(lines(tabs), ['Error [MG0001] (a.yaml:4:1) Tabs are not allowed as indentation'])
  t.same(lines('kind: VirtualService\nmetadata: {name: a}\n  bad: indent\n'), ['Error [MG0001] (a.yaml:3:1) All mapping items must start at the same column'])
  // A syntax error in one document does not hide the next one.
  const two = `${dup}---
${VS('networking.istio.io/v1')}`
  const r = parseDocuments(two, 'a.yaml')
  t.same(r.resources.map(x => x.kind), ['VirtualService'])
})

t.test('empty documents and comments-only files are ignored; status is dropped', async t => {
  t.same(parseDocuments('', 'a.yaml'), { resources: [], problems: [] })
  t.same(parseDocuments('# nothing\n---\n---\n', 'a.yaml'), { resources: [], problems: [] })
  const r = parseDocuments(`${VS('networking.istio.io/v1')}status:\n  observedGeneration: 3\n`, 'a.yaml')
  t.same(r.problems, [])
  t.equal('status' in r.resources[0], false)
})

t.test('YAML alias bombs are refused, not expanded', async t => {
  const bomb = `a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
`
  t.same(lines(bomb), ['Error [MG0001] (a.yaml:1:1) YAML could not be expanded: Excessive alias count indicates a resource exhaustion attack'])
})

t.test('loadConfig: later same-named resource replaces the earlier one with a warning; strict makes it an error', async t => {
  const a = { file: 'a.yaml', text: VS('networking.istio.io/v1') }
  const b = { file: 'b.yaml', text: `# second copy\n${VS('networking.istio.io/v1beta1')}` }
  const r = loadConfig([a, b])
  t.equal(r.set.virtualServices.length, 1)
  t.equal(r.set.virtualServices[0].source.file, 'b.yaml')
  const dup = 'Warning [MG0005] (VirtualService default/reviews b.yaml:2:1) replaces the VirtualService of the same name defined at a.yaml:1 (the later definition wins, as with kubectl apply)'
  t.same(r.problems.map(formatProblem).filter(l => l.includes('MG0005')), [dup])
  t.equal(r.problems.some(p => p.severity === 'Error'), false)
  const strict = loadConfig([a, b], { strict: true })
  t.same(strict.problems.map(formatProblem).filter(l => l.includes('MG0005')), [dup.replace('Warning', 'Error')])
  t.equal(strict.ok, false)
  // The same name in another namespace is another resource.
  const set: ResourceSet = emptySet()
  const problems: Problem[] = []
  for (const res of parseDocuments(`${VS('networking.istio.io/v1')}---\n${VS('networking.istio.io/v1', '  namespace: other\n')}`, 'c.yaml').resources) addResource(set, res, problems)
  t.same(set.virtualServices.map(v => v.metadata.namespace), ['default', 'other'])
  t.same(problems, [])
})

t.test('loadConfig sorts problems by file, line and column across files', async t => {
  const r = loadConfig([
    { file: 'b.yaml', text: 'apiVersion: networking.istio.io/v1\nkind: Foo\n' },
    { file: 'a.yaml', text: `${VS('networking.istio.io/v1')}---\napiVersion: x/v1\nkind: Bar\n` }
  ])
  // a.yaml:11 is the VirtualService's destination host, registered by no ServiceEntry (a warning).
  // b.yaml's Foo is an unknown kind of an Istio group: an error, not a skip (MG0012).
  t.same(r.problems.map(p => `${p.file}:${p.line}:${p.code}`), ['a.yaml:11:IST0101', 'a.yaml:13:MG0002', 'b.yaml:1:MG0012'])
})
