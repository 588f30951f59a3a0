import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../src/config/load.js'
import { compile } from '../../src/compile/compile.js'
import { Codes, formatProblem } from '../../src/config/problem.js'

// Every Bookinfo networking sample, unmodified (test/fixtures/istio-samples), loads beside the
// local ServiceEntries and the demo's DestinationRules with no error and no "not supported"
// problem. The warnings each one gets are listed exactly; they are all true statements about
// the sample (a later DestinationRule replacing the demo's, a host nobody registers, a route
// that can never match, ISTIO_MUTUAL without Istio's CA).

const root = fileURLToPath(new URL('../../', import.meta.url))
const dir = 'test/fixtures/istio-samples'
const read = (p: string): { file: string; text: string } => ({ file: p, text: readFileSync(`${root}${p}`, 'utf8') })
const BESIDE = ['gateway-config/local/services.yaml', 'gateway-config/destination-rule-all.yaml']

const replaces = (kind: string, name: string, line: number, file: string, prevLine: number): string =>
  `Warning [MG0005] (${kind} default/${name} ${dir}/${file}:${line}:1) replaces the ${kind} of the same name defined at gateway-config/destination-rule-all.yaml:${prevLine} (the later definition wins, as with kubectl apply)`
const mutual = (name: string, line: number): string =>
  `Warning [MG0004] (DestinationRule default/${name} ${dir}/destination-rule-all-mtls.yaml:${line}:7) spec.trafficPolicy.tls.mode: tls.mode ISTIO_MUTUAL uses certificates issued by Istio's CA, which meshgate does not have; meshgate connects to this destination in plaintext, as with DISABLE`

const expectedWarnings: Record<string, string[]> = {
  'bookinfo-gateway.yaml': [],
  'certmanager-gateway.yaml': [
    `Warning [IST0101] (VirtualService istio-system/cert-manager ${dir}/certmanager-gateway.yaml:33:9) spec.http[0].route[0].destination.host: Referenced host not found: "cert-manager-resolver" (no ServiceEntry registers cert-manager-resolver.istio-system.svc.cluster.local; requests answer 503 NC)`
  ],
  'destination-rule-all-mtls.yaml': [
    replaces('DestinationRule', 'productpage', 1, 'destination-rule-all-mtls.yaml', 1), mutual('productpage', 9),
    replaces('DestinationRule', 'reviews', 15, 'destination-rule-all-mtls.yaml', 12), mutual('reviews', 23),
    replaces('DestinationRule', 'ratings', 35, 'destination-rule-all-mtls.yaml', 29), mutual('ratings', 43),
    replaces('DestinationRule', 'details', 58, 'destination-rule-all-mtls.yaml', 49), mutual('details', 66)
  ],
  'destination-rule-all.yaml': [
    replaces('DestinationRule', 'productpage', 1, 'destination-rule-all.yaml', 1),
    replaces('DestinationRule', 'reviews', 12, 'destination-rule-all.yaml', 12),
    replaces('DestinationRule', 'ratings', 29, 'destination-rule-all.yaml', 29),
    replaces('DestinationRule', 'details', 49, 'destination-rule-all.yaml', 49)
  ],
  'destination-rule-reviews.yaml': [replaces('DestinationRule', 'reviews', 1, 'destination-rule-reviews.yaml', 12)],
  'egress-rule-google-apis.yaml': [],
  'fault-injection-details-v1.yaml': [
    `Warning [MG0009] (VirtualService default/details ${dir}/fault-injection-details-v1.yaml:18:5) spec.http[1]: spec.http[1] is never used: spec.http[0] before it matches every request`,
    replaces('DestinationRule', 'details', 23, 'fault-injection-details-v1.yaml', 49)
  ],
  'virtual-service-all-v1.yaml': [],
  'virtual-service-details-v2.yaml': [],
  'virtual-service-ratings-db.yaml': [],
  'virtual-service-ratings-mysql-vm.yaml': [],
  'virtual-service-ratings-mysql.yaml': [],
  'virtual-service-ratings-test-abort.yaml': [],
  'virtual-service-ratings-test-delay.yaml': [],
  'virtual-service-reviews-50-v3.yaml': [],
  'virtual-service-reviews-80-20.yaml': [],
  'virtual-service-reviews-90-10.yaml': [],
  'virtual-service-reviews-jason-v2-v3.yaml': [],
  'virtual-service-reviews-test-v2.yaml': [],
  'virtual-service-reviews-v2-v3.yaml': [],
  'virtual-service-reviews-v3.yaml': []
}

t.test('every sample in the fixtures directory is covered', async t => {
  t.same(readdirSync(`${root}${dir}`).filter(f => f.endsWith('.yaml')).sort(), Object.keys(expectedWarnings).sort())
})

t.test('each sample loads and compiles beside the local services: no errors, exactly the listed warnings', async t => {
  for (const [file, want] of Object.entries(expectedWarnings)) {
    const loaded = loadConfig([...BESIDE.map(read), read(`${dir}/${file}`)])
    const compiled = compile(loaded.set)
    const all = [...loaded.problems, ...compiled.problems]
    t.equal(loaded.ok, true, `${file} loads`)
    t.same(all.filter(p => p.severity === 'Error').map(formatProblem), [], `${file}: no errors`)
    t.same(all.filter(p => p.code === Codes.NotSupported).map(formatProblem), [], `${file}: nothing "not supported"`)
    t.same(all.map(formatProblem).sort(), [...want].sort(), `${file}: warnings`)
  }
})

t.test('the samples Istio documents for request routing and traffic shifting compile to the routes they describe', async t => {
  const mesh = (file: string) => compile(loadConfig([...BESIDE.map(read), read(`${dir}/${file}`)]).set).snapshot.mesh
  const reviews = (file: string): string[] => mesh(file).hosts.all.find(v => v.name === 'reviews.default.svc.cluster.local')!.routes
    .map(r => r.destinations.map(d => `${d.cluster ?? '?'}@${d.weight}`).join(' '))
  const c = (subset: string): string => `outbound|9080|${subset}|reviews.default.svc.cluster.local`
  t.same(reviews('virtual-service-all-v1.yaml'), [`${c('v1')}@1`])
  t.same(reviews('virtual-service-reviews-test-v2.yaml'), [`${c('v2')}@1`, `${c('v1')}@1`])
  t.same(reviews('virtual-service-reviews-50-v3.yaml'), [`${c('v1')}@50 ${c('v3')}@50`])
  t.same(reviews('virtual-service-reviews-90-10.yaml'), [`${c('v1')}@90 ${c('v2')}@10`])
  t.same(reviews('virtual-service-reviews-80-20.yaml'), [`${c('v1')}@80 ${c('v2')}@20`])
  t.same(reviews('virtual-service-reviews-v2-v3.yaml'), [`${c('v2')}@50 ${c('v3')}@50`])
  t.same(reviews('virtual-service-reviews-v3.yaml'), [`${c('v3')}@1`])
  t.same(reviews('virtual-service-reviews-jason-v2-v3.yaml'), [`${c('v2')}@1`, `${c('v3')}@1`])
})
