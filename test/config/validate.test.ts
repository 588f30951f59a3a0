import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { formatProblem } from '../../src/config/problem.js'
import { hostProblem, toFqdn, hostMatches, intersectHosts, meshAliases } from '../../src/config/hosts.js'
import { parseDurationMs } from '../../src/config/duration.js'

// Validation by schema and by cross-reference, table-driven: each case is one file beside a
// fixed base (a Gateway, the reviews ServiceEntry and its DestinationRule), and the exact
// problems reported for that file (severity, code, resource, file:line:column, field path, message).

const BASE = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: infra}
spec:
  servers:
  - port: {number: 8081, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

/** A VirtualService `reviews` whose `http` list is given (indented as under `http:`). */
const vs = (http: string, head = ''): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
${head}  http:
${http}`

function problemsOf (text: string, strict = false): string[] {
  const r = loadConfig([{ file: 'base.yaml', text: BASE }, { file: 'vs.yaml', text }], { strict })
  const base = r.problems.filter(p => p.file === 'base.yaml')
  if (base.length > 0) throw new Error(`base has problems: ${base.map(formatProblem).join('\n')}`)
  return r.problems.map(formatProblem)
}

const R = 'VirtualService default/reviews'

t.test('weights follow Istio (relative, not summing to 100; 0 drops; single destination takes any)', async t => {
  const cases: Array<[string, string, string[]]> = [
    ['550 + 500 is valid', `  - route:
    - {destination: {host: reviews, subset: v1}, weight: 550}
    - {destination: {host: reviews, subset: v2}, weight: 500}
`, []],
    ['49 + 50 is valid', `  - route:
    - {destination: {host: reviews, subset: v1}, weight: 49}
    - {destination: {host: reviews, subset: v2}, weight: 50}
`, []],
    ['0 + 100 is valid (0 drops a destination)', `  - route:
    - {destination: {host: reviews, subset: v1}, weight: 0}
    - {destination: {host: reviews, subset: v2}, weight: 100}
`, []],
    ['a single destination with weight 0 is valid', `  - route:
    - {destination: {host: reviews, subset: v1}, weight: 0}
`, []],
    ['a single destination with weight 7 is valid', `  - route:
    - {destination: {host: reviews, subset: v1}, weight: 7}
`, []],
    ['a negative weight is rejected', `  - route:
    - {destination: {host: reviews, subset: v1}, weight: 100}
    - destination: {host: reviews, subset: v2}
      weight: -1
`, [`Error [IST0106] (${R} vs.yaml:10:7) spec.http[0].route[1].weight: weight -1 must be >= 0`]],
    ['all zero with two destinations is rejected', `  - route:
    - {destination: {host: reviews, subset: v1}, weight: 0}
    - {destination: {host: reviews, subset: v2}, weight: 0}
`, [`Error [IST0106] (${R} vs.yaml:7:5) spec.http[0].route: total destination weight = 0: with several destinations, give at least one a positive weight`]],
    ['no weights with two destinations is rejected (total 0)', `  - route:
    - destination: {host: reviews, subset: v1}
    - destination: {host: reviews, subset: v2}
`, [`Error [IST0106] (${R} vs.yaml:7:5) spec.http[0].route: total destination weight = 0: with several destinations, give at least one a positive weight`]],
    ['a fractional weight is a schema error', `  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50.5}
    - {destination: {host: reviews, subset: v2}, weight: 49.5}
`, [
      `Error [IST0106] (${R} vs.yaml:8:50) spec.http[0].route[0].weight: Expected integer`,
      `Error [IST0106] (${R} vs.yaml:9:50) spec.http[0].route[1].weight: Expected integer`
    ]]
  ]
  for (const [name, http, want] of cases) t.same(problemsOf(vs(http)), want, name)
})

t.test('regexes must compile as RE2 (backreferences and lookaround are not RE2)', async t => {
  const route = `    route:
    - destination: {host: reviews}
`
  const cases: Array<[string, string, string[]]> = [
    ['valid RE2 uri regex', `  - match:
    - uri: {regex: '/api/v[0-9]+/.*'}
${route}`, []],
    ['regex "*" is a presence match, accepted', `  - match:
    - headers: {x-id: {regex: '*'}}
${route}`, []],
    ['backreference', `  - match:
    - uri: {regex: '(a)\\1'}
${route}`, [`Error [IST0106] (${R} vs.yaml:8:13) spec.http[0].match[0].uri.regex: regex "(a)\\1" is not valid RE2: invalid escape sequence: \\1`]],
    ['lookahead in a header', `  - match:
    - headers:
        x-id: {regex: 'a(?=b)'}
${route}`, [`Error [IST0106] (${R} vs.yaml:9:16) spec.http[0].match[0].headers.x-id.regex: regex "a(?=b)" is not valid RE2: invalid perl operator: (?=`]],
    ['negative lookbehind in a query parameter', `  - match:
    - queryParams:
        id: {regex: '(?<!x)y'}
${route}`, [`Error [IST0106] (${R} vs.yaml:9:14) spec.http[0].match[0].queryParams.id.regex: regex "(?<!x)y" is not valid RE2: invalid perl operator: (?<!`]],
    ['unbalanced parenthesis in authority', `  - match:
    - authority: {regex: '(foo'}
${route}`, [`Error [IST0106] (${R} vs.yaml:8:19) spec.http[0].match[0].authority.regex: regex "(foo" is not valid RE2: missing ): (foo`]],
    ['bad uriRegexRewrite.match', `  - rewrite:
      uriRegexRewrite: {match: '^/(?P=x)', rewrite: '/'}
${route}`, [`Error [IST0106] (${R} vs.yaml:8:25) spec.http[0].rewrite.uriRegexRewrite.match: regex "^/(?P=x)" is not valid RE2: invalid perl operator: (?P`]]
  ]
  for (const [name, http, want] of cases) t.same(problemsOf(vs(http)), want, name)
})

t.test('StringMatch shape, header names, actions, durations, redirect codes (table)', async t => {
  const route = `    route:
    - destination: {host: reviews}
`
  const cases: Array<[string, string, string[]]> = [
    ['two kinds in one StringMatch', `  - match:
    - uri: {exact: /a, prefix: /a}
${route}`, [`Error [IST0106] (${R} vs.yaml:8:7) spec.http[0].match[0].uri: a StringMatch has exactly one of exact, prefix, regex; found exact, prefix`]],
    ['empty uri StringMatch (presence is only for headers)', `  - match:
    - uri: {}
${route}`, [`Error [IST0106] (${R} vs.yaml:8:7) spec.http[0].match[0].uri: a StringMatch needs one of exact, prefix or regex`]],
    ['header presence {} is valid', `  - match:
    - headers: {end-user: {}}
      withoutHeaders: {x-debug: {}}
${route}`, []],
    ['query parameter presence {} is valid, as in Istio (regression)', `  - match:
    - queryParams: {debug: {}}
${route}`, []],
    ['two kinds in one query parameter match', `  - match:
    - queryParams: {debug: {exact: a, regex: b}}
${route}`, [`Error [IST0106] (${R} vs.yaml:8:21) spec.http[0].match[0].queryParams.debug: a StringMatch has exactly one of exact, prefix, regex; found exact, regex`]],
    ['uppercase header name', `  - match:
    - headers: {End-User: {exact: jason}}
${route}`, [`Error [IST0106] (${R} vs.yaml:8:17) spec.http[0].match[0].headers.End-User: header name "End-User" must be lowercase`]],
    ['header name with a space', `  - match:
    - withoutHeaders: {'x y': {exact: a}}
${route}`, [`Error [IST0106] (${R} vs.yaml:8:24) spec.http[0].match[0].withoutHeaders.x y: "x y" is not a valid header name`]],
    ['no action', `  - match:
    - uri: {prefix: /a}
`, [`Error [IST0106] (${R} vs.yaml:7:5) spec.http[0]: an HTTP route needs one of route, redirect, directResponse or delegate`]],
    ['route and redirect together', `  - redirect: {uri: /b}
${route}`, [`Error [IST0106] (${R} vs.yaml:7:5) spec.http[0]: an HTTP route has exactly one of route, redirect, directResponse, delegate; found route, redirect`]],
    ['rewrite with redirect', `  - redirect: {uri: /b}
    rewrite: {uri: /c}
`, [`Error [IST0106] (${R} vs.yaml:8:5) spec.http[0].rewrite: rewrite cannot be combined with redirect`]],
    ['redirectCode 305', `  - redirect: {uri: /b, redirectCode: 305}
`, [`Error [IST0106] (${R} vs.yaml:7:25) spec.http[0].redirect.redirectCode: redirectCode 305 is invalid: use 301, 302, 303, 307 or 308`]],
    ['redirectCode 308 is valid', `  - redirect: {uri: /b, redirectCode: 308}
`, []],
    ['an empty redirect (regression)', `  - redirect: {redirectCode: 302}
`, [`Error [IST0106] (${R} vs.yaml:7:5) spec.http[0].redirect: a redirect needs uri, authority, scheme or port`]],
    ['redirect scheme other than http/https (regression)', `  - redirect: {scheme: ftp}
`, [`Error [IST0106] (${R} vs.yaml:7:16) spec.http[0].redirect.scheme: redirect scheme "ftp" must be http or https`]],
    ['fault with a redirect (regression)', `  - redirect: {uri: /b}
    fault: {abort: {httpStatus: 500}}
`, [`Error [IST0106] (${R} vs.yaml:8:5) spec.http[0].fault: fault cannot be combined with redirect`]],
    ['fault and rewrite with a direct response (regression)', `  - directResponse: {status: 200}
    fault: {delay: {fixedDelay: 1s}}
    rewrite: {uri: /x}
`, [
      `Error [IST0106] (${R} vs.yaml:8:5) spec.http[0].fault: fault cannot be combined with directResponse`,
      `Error [IST0106] (${R} vs.yaml:9:5) spec.http[0].rewrite: rewrite cannot be combined with directResponse`
    ]],
    ['a fault with neither abort nor delay (regression)', `  - fault: {}
${route}`, [`Error [IST0106] (${R} vs.yaml:7:5) spec.http[0].fault: a fault needs an abort, a delay or both`]],
    ['mirror and mirrors together (regression)', `  - mirror: {host: reviews}
    mirrors: [{destination: {host: reviews}}]
${route}`, [`Error [IST0106] (${R} vs.yaml:8:5) spec.http[0].mirrors: mirror and mirrors cannot both be set`]],
    ['a retryOn typo (regression)', `  - retries: {attempts: 2, retryOn: "5xx,conect-failure, 503"}
${route}`, [`Error [IST0106] (${R} vs.yaml:7:28) spec.http[0].retries.retryOn: "conect-failure" is not a valid retryOn policy (Envoy names such as 5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, or status codes)`]],
    ['retryOn without attempts (regression)', `  - retries: {retryOn: 5xx}
${route}`, [`Error [IST0106] (${R} vs.yaml:7:5) spec.http[0].retries: retryOn or perTryTimeout is set but attempts is 0 (retries disabled); set attempts`]],
    ['attempts 0 alone disables retries and is valid', `  - retries: {attempts: 0}
${route}`, []],
    ['an empty regex (regression)', `  - match:
    - headers: {x-a: {regex: ''}}
${route}`, [`Error [IST0106] (${R} vs.yaml:8:23) spec.http[0].match[0].headers.x-a.regex: regex must not be empty`]],
    ['bad timeout duration', `  - timeout: 5 seconds
${route}`, [`Error [IST0106] (${R} vs.yaml:7:5) spec.http[0].timeout: "5 seconds" is not a duration (e.g. 500ms, 7s, 1.5s, 3m, 1h)`]],
    ['abort status out of range', `  - fault: {abort: {httpStatus: 700, percentage: {value: 100}}}
${route}`, [`Error [IST0106] (${R} vs.yaml:7:21) spec.http[0].fault.abort.httpStatus: httpStatus 700 must be between 200 and 599`]],
    ['fault percentage above 100', `  - fault: {delay: {fixedDelay: 1s, percentage: {value: 101}}}
${route}`, [`Error [IST0106] (${R} vs.yaml:7:50) spec.http[0].fault.delay.percentage.value: percentage must be between 0 and 100`]],
    ['uri and uriRegexRewrite together', `  - rewrite: {uri: /x, uriRegexRewrite: {match: /a, rewrite: /b}}
${route}`, [`Error [IST0106] (${R} vs.yaml:7:5) spec.http[0].rewrite: rewrite.uri and rewrite.uriRegexRewrite cannot both be set`]],
    ['header value with a newline', `  - headers:
      request:
        set: {x-a: "one\\ntwo"}
${route}`, [`Error [IST0106] (${R} vs.yaml:9:15) spec.http[0].headers.request.set.x-a: header value must not contain CR, LF or NUL`]]
  ]
  for (const [name, http, want] of cases) t.same(problemsOf(vs(http)), want, name)
})

t.test('gateways must exist (VirtualService level and per match); mesh is reserved', async t => {
  const route = `  - route:
    - destination: {host: reviews}
`
  t.same(problemsOf(vs(route, '  gateways: [gw, mesh, infra/edge]\n')), [])
  t.same(problemsOf(vs(route, '  gateways: [default/gw]\n')), [])
  t.same(problemsOf(vs(route, '  gateways: [bookinfo-gateway, edge]\n')), [
    `Error [IST0101] (${R} vs.yaml:6:14) spec.gateways[0]: Referenced gateway not found: "bookinfo-gateway"`,
    `Error [IST0101] (${R} vs.yaml:6:32) spec.gateways[1]: Referenced gateway not found: "edge"`
  ], 'a bare name is looked up in the VirtualService namespace')
  t.same(problemsOf(vs(`  - match:
    - gateways: [mesh, nope]
    route:
    - destination: {host: reviews}
`)), [`Error [IST0101] (${R} vs.yaml:8:24) spec.http[0].match[0].gateways[1]: Referenced gateway not found: "nope"`])
})

t.test('hosts must be well formed', async t => {
  const route = `  - route:
    - destination: {host: reviews}
`
  const withHosts = (hosts: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: ${hosts}
  http:
${route}`
  t.same(problemsOf(withHosts('["*.example.com", reviews, bookinfo.local, 10.0.0.1]')), [])
  t.same(problemsOf(withHosts('[foo.*.com]')), [`Error [IST0106] (${R} vs.yaml:5:11) spec.hosts[0]: host "foo.*.com": a wildcard is only allowed as the whole leftmost label ("*.example.com")`])
  t.same(problemsOf(withHosts('[bad_host]')), [`Error [IST0106] (${R} vs.yaml:5:11) spec.hosts[0]: host "bad_host" is not a valid DNS name (label "bad_host": lowercase letters, digits and '-', 1-63 characters, not starting or ending with '-')`])
  t.same(problemsOf(withHosts('[-a.com]')), [`Error [IST0106] (${R} vs.yaml:5:11) spec.hosts[0]: host "-a.com" is not a valid DNS name (label "-a": lowercase letters, digits and '-', 1-63 characters, not starting or ending with '-')`])
  t.same(problemsOf(withHosts('["*"]')), [`Error [IST0106] (${R} vs.yaml:5:11) spec.hosts[0]: wildcard host "*" is not allowed for a VirtualService bound to the mesh (no gateways, or mesh listed)`], '"*" on the mesh (regression)')
  t.same(problemsOf(withHosts('[reviews, "*.example.com", a.example.com, Reviews]')), [
    `Error [IST0106] (${R} vs.yaml:5:37) spec.hosts[2]: duplicate hosts in the VirtualService: "*.example.com" and "a.example.com" overlap`,
    `Error [IST0106] (${R} vs.yaml:5:52) spec.hosts[3]: duplicate hosts in the VirtualService: "reviews" and "Reviews" overlap`
  ], 'overlapping hosts (regression)')
  t.same(problemsOf(withHosts('[reviews, reviews.default.svc.cluster.local, "*.a.com", "*.b.com"]')), [], 'spellings are compared as written, as Istio does')
  t.same(problemsOf(withHosts('[]')), [`Error [IST0106] (${R} vs.yaml:5:3) spec.hosts: a VirtualService needs at least one host (only delegates have none)`])
  t.same(problemsOf(vs(`  - route:
    - destination: {host: "*.reviews"}
`)), [`Error [IST0106] (${R} vs.yaml:8:21) spec.http[0].route[0].destination.host: wildcard host "*.reviews" is not allowed here`], 'destination hosts are never wildcards')

  const cases: Array<[string, Parameters<typeof hostProblem>[1], string | undefined]> = [
    ['reviews', {}, undefined],
    ['reviews.default.svc.cluster.local', {}, undefined],
    ['*', {}, undefined],
    ['*', { allowWildcard: false }, 'wildcard host "*" is not allowed here'],
    ['*.a.com', {}, undefined],
    ['a.*', {}, 'host "a.*": a wildcard is only allowed as the whole leftmost label ("*.example.com")'],
    ['', {}, 'host must not be empty'],
    ['a'.repeat(64) + '.com', {}, `host "${'a'.repeat(64)}.com" is not a valid DNS name (label "${'a'.repeat(64)}": lowercase letters, digits and '-', 1-63 characters, not starting or ending with '-')`],
    ['a.'.repeat(128) + 'com', {}, `host "${'a.'.repeat(128)}com" is longer than 255 characters`],
    ['a..com', {}, 'host "a..com" is not a valid DNS name (label "": lowercase letters, digits and \'-\', 1-63 characters, not starting or ending with \'-\')'],
    ['example.com.', {}, undefined],
    ['10.1.2.3', { allowIP: true }, undefined],
    ['::1', { allowIP: true }, undefined]
  ]
  for (const [h, o, want] of cases) t.equal(hostProblem(h, o), want, `hostProblem(${JSON.stringify(h.slice(0, 20))})`)
})

t.test('undefined subsets and hosts are warnings (IST0101); --strict makes them errors', async t => {
  const http = `  - route:
    - destination: {host: reviews, subset: v3}
      weight: 50
    - destination: {host: ratings}
      weight: 50
      fallback:
        target: {host: reviews, subset: v9}
`
  const warnings = [
    `Warning [IST0101] (${R} vs.yaml:8:36) spec.http[0].route[0].destination.subset: Referenced host+subset in destinationrule not found: "reviews+v3" (requests answer 503 NC)`,
    `Warning [IST0101] (${R} vs.yaml:10:21) spec.http[0].route[1].destination.host: Referenced host not found: "ratings" (no ServiceEntry registers ratings.default.svc.cluster.local; requests answer 503 NC)`,
    `Warning [IST0101] (${R} vs.yaml:13:33) spec.http[0].route[1].fallback.target.subset: Referenced host+subset in destinationrule not found: "reviews+v9" (requests answer 503 NC)`
  ]
  t.same(problemsOf(vs(http)), warnings)
  const r = loadConfig([{ file: 'base.yaml', text: BASE }, { file: 'vs.yaml', text: vs(http) }])
  t.equal(r.ok, true, 'warnings alone load')
  t.same(problemsOf(vs(http), true), warnings.map(w => w.replace(/^Warning/, 'Error')))
  t.equal(loadConfig([{ file: 'base.yaml', text: BASE }, { file: 'vs.yaml', text: vs(http) }], { strict: true }).ok, false)
  // The FQDN spelling of a registered short host is the same service.
  t.same(problemsOf(vs(`  - route:
    - destination: {host: reviews.default.svc.cluster.local, subset: v2}
`)), [])
  // Mirror targets are references too.
  t.same(problemsOf(vs(`  - route:
    - destination: {host: reviews}
    mirror: {host: reviews, subset: shadow}
`)), [`Warning [IST0101] (${R} vs.yaml:9:29) spec.http[0].mirror.subset: Referenced host+subset in destinationrule not found: "reviews+shadow" (requests answer 503 NC)`])
})

t.test('a wildcard DestinationRule host defines subsets for the services it covers; an exact one wins (regression)', async t => {
  const text = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh-wide}
spec:
  host: "*.svc.cluster.local"
  subsets: [{name: v3, labels: {version: v3}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, labels: {version: v3}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /ratings}}]
    route: [{destination: {host: ratings, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v3}}]
`
  t.same(problemsOf(text), [
    `Warning [IST0101] (${R} vs.yaml:25:43) spec.http[1].route[0].destination.subset: Referenced host+subset in destinationrule not found: "reviews+v3" (requests answer 503 NC)`
  ], 'ratings+v3 comes from the wildcard rule; reviews has its own rule, without v3')
})

t.test('a VirtualService in another namespace resolves short hosts there', async t => {
  const text = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
`
  t.same(problemsOf(text), [
    'Warning [IST0101] (VirtualService shop/reviews vs.yaml:8:21) spec.http[0].route[0].destination.host: Referenced host not found: "reviews" (no ServiceEntry registers reviews.shop.svc.cluster.local; requests answer 503 NC)'
  ])
})

t.test('DestinationRule, ServiceEntry, Gateway and WorkloadEntry checks', async t => {
  const cases: Array<[string, string, string[]]> = [
    ['duplicate and malformed subset names', `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v1, labels: {version: v2}}
  - {name: V_2}
`, [
      'Error [IST0106] (DestinationRule default/ratings vs.yaml:8:6) spec.subsets[1].name: duplicate subset name "v1"',
      'Error [IST0106] (DestinationRule default/ratings vs.yaml:9:6) spec.subsets[2].name: subset name "V_2" must be a DNS-1123 label'
    ]],
    ['bad outlier duration', `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy:
    outlierDetection: {interval: 10 s}
`, ['Error [IST0106] (DestinationRule default/ratings vs.yaml:7:24) spec.trafficPolicy.outlierDetection.interval: "10 s" is not a duration (e.g. 500ms, 7s, 1.5s, 3m, 1h)']],
    ['STATIC endpoint with a DNS name', `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: ratings.local}]
`, ['Error [IST0106] (ServiceEntry default/ratings vs.yaml:8:16) spec.endpoints[0].address: endpoint address "ratings.local" must be an IP address with resolution STATIC (use resolution: DNS for names)']],
    ['unix socket endpoint: rejected, not silently undialable', `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: "unix:///var/run/ratings.sock"}]
`, ['Error [MG0003] (ServiceEntry default/ratings vs.yaml:8:16) spec.endpoints[0].address: unix socket endpoints ("unix:///var/run/ratings.sock") are not supported by meshgate, which connects to upstreams over TCP; use an IP address or a DNS name']],
    ['ServiceEntry host "*" and an undeclared endpoint port name', `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: any}
spec:
  hosts: ["*"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {web: 8080}}]
`, [
      'Error [IST0106] (ServiceEntry default/any vs.yaml:5:11) spec.hosts[0]: host "*" is not allowed in a ServiceEntry',
      'Warning [IST0101] (ServiceEntry default/any vs.yaml:8:44) spec.endpoints[0].ports.web: port name "web" is not declared in spec.ports'
    ]],
    ['unknown Gateway protocol', `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g2}
spec:
  servers:
  - port: {number: 9000, name: x, protocol: QUIC}
    hosts: ["*"]
`, ['Error [IST0106] (Gateway default/g2 vs.yaml:6:35) spec.servers[0].port.protocol: protocol "QUIC" is not one of HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, TCP, TLS']],
    ['HTTPS server without tls', `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g3}
spec:
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["ns/*.example.com"]
`, ['Error [IST0106] (Gateway default/g3 vs.yaml:6:5) spec.servers[0]: an HTTPS server needs tls settings']],
    ['WorkloadEntry without address', `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm}
spec:
  labels: {app: reviews}
`, ['Error [IST0106] (WorkloadEntry default/vm vs.yaml:4:1) spec: address is required']]
  ]
  for (const [name, text, want] of cases) t.same(problemsOf(text), want, name)
})

t.test('host helpers: FQDN expansion, wildcard matching, intersection, mesh aliases', async t => {
  t.equal(toFqdn('reviews', 'default'), 'reviews.default.svc.cluster.local')
  t.equal(toFqdn('Reviews', 'shop'), 'reviews.shop.svc.cluster.local')
  t.equal(toFqdn('reviews.shop', 'default'), 'reviews.shop', 'a dotted name is left as written')
  t.equal(toFqdn('*.example.com', 'default'), '*.example.com')
  t.equal(toFqdn('*', 'default'), '*')
  t.equal(hostMatches('*.foo.com', 'a.foo.com'), true)
  t.equal(hostMatches('*.foo.com', 'a.b.foo.com'), true)
  t.equal(hostMatches('*.foo.com', 'foo.com'), false, 'wildcards are prefix-only: *.foo.com does not match foo.com')
  t.equal(hostMatches('*', 'anything'), true)
  t.equal(hostMatches('*.foo.com', '*.a.foo.com'), true)
  t.equal(hostMatches('a.foo.com', 'b.foo.com'), false)
  t.equal(intersectHosts('a.example.com', '*.example.com'), 'a.example.com')
  t.equal(intersectHosts('*', 'bookinfo.example.com'), 'bookinfo.example.com')
  t.equal(intersectHosts('*.a.example.com', '*.example.com'), '*.a.example.com')
  t.equal(intersectHosts('a.other.com', '*.example.com'), undefined)
  t.same(meshAliases('reviews.default.svc.cluster.local', 'default'), ['reviews.default.svc.cluster.local', 'reviews.default.svc', 'reviews.default', 'reviews'])
  t.same(meshAliases('reviews.shop.svc.cluster.local', 'default'), ['reviews.shop.svc.cluster.local', 'reviews.shop.svc', 'reviews.shop'])
  t.same(meshAliases('api.example.com', 'default'), ['api.example.com'])
})

t.test('durations', async t => {
  const cases: Array<[string, number | undefined]> = [
    ['7s', 7000], ['0.5s', 500], ['100ms', 100], ['1m30s', 90_000], ['1h', 3_600_000], ['0', 0], ['1.5s', 1500],
    ['', undefined], ['5', undefined], ['-1s', undefined], ['5 s', undefined], ['1d', undefined]
  ]
  for (const [s, want] of cases) t.equal(parseDurationMs(s), want, JSON.stringify(s))
})
