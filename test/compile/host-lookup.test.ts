import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { compile, lookupHost } from '../../src/compile/compile.js'
import { buildFacts } from '../../src/routing/facts.js'
import { selectRoute } from '../../src/routing/select.js'

// Virtual-host lookup: exact host, then the longest wildcard suffix, then `*`; the port is
// ignored; a wildcard `*.foo.com` never matches `foo.com`.

const gateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
`
const vs = (name: string, host: string): string => `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}}
spec:
  hosts: ["${host}"]
  gateways: [gw]
  http:
  - route: [{destination: {host: ${name}.example.com}}]
`

const yaml = gateway +
  vs('exact', 'api.example.com') +
  vs('short', '*.example.com') +
  vs('long', '*.eu.example.com') +
  vs('any', '*')

const loaded = loadConfig([{ file: 'h.yaml', text: yaml }])
const { snapshot } = compile(loaded.set)
const listener = snapshot.gateways[0]

t.test('lookup order (table)', async t => {
  t.equal(loaded.ok, true)
  const cases: Array<[string, string | undefined]> = [
    ['api.example.com', 'api.example.com:8080'],
    ['www.example.com', '*.example.com:8080'],
    ['a.b.example.com', '*.example.com:8080'],
    ['x.eu.example.com', '*.eu.example.com:8080'],
    ['y.x.eu.example.com', '*.eu.example.com:8080'],
    ['eu.example.com', '*.example.com:8080'],
    ['example.com', '*:8080'],
    ['other.org', '*:8080'],
    ['xexample.com', '*:8080']
  ]
  for (const [host, want] of cases) t.equal(lookupHost(listener.hosts, host)?.name, want, host)
})

t.test('the port in Host is ignored; Host is case-insensitive', async t => {
  const pick = (authority: string): string | undefined => selectRoute(listener, buildFacts('GET', 'http', authority, '/', {}, 8080)).vhost?.name
  t.equal(pick('api.example.com:8080'), 'api.example.com:8080')
  t.equal(pick('api.example.com:1234'), 'api.example.com:8080')
  t.equal(pick('API.Example.COM'), 'api.example.com:8080')
  t.equal(pick('www.example.com:80'), '*.example.com:8080')
  t.equal(pick('api.example.com.'), 'api.example.com:8080', 'a trailing dot is the same name')
})

t.test('no "*" host: unknown hosts find no virtual host (404 NR)', async t => {
  const r = compile(loadConfig([{ file: 'h.yaml', text: gateway + vs('exact', 'api.example.com') + vs('short', '*.example.com') }]).set)
  const l = r.snapshot.gateways[0]
  t.equal(lookupHost(l.hosts, 'example.com'), undefined, '*.example.com does not cover example.com')
  t.equal(lookupHost(l.hosts, 'other.org'), undefined)
  t.same(selectRoute(l, buildFacts('GET', 'http', 'other.org', '/', {}, 8080)), {})
})

t.test('mesh aliases: reviews, reviews.default, reviews.default.svc and the FQDN meet', async t => {
  const r = compile(loadConfig([{ file: 'm.yaml', text: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
` }]).set)
  for (const h of ['reviews', 'reviews.default', 'reviews.default.svc', 'reviews.default.svc.cluster.local']) {
    t.equal(lookupHost(r.snapshot.mesh.hosts, h)?.name, 'reviews.default.svc.cluster.local', h)
  }
  t.equal(lookupHost(r.snapshot.mesh.hosts, 'reviews.other'), undefined)
  t.equal(selectRoute(r.snapshot.mesh, buildFacts('GET', 'http', 'reviews:9080', '/reviews/0', {}, undefined)).vhost?.name, 'reviews.default.svc.cluster.local')
})
