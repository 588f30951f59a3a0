import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { compile } from '../../src/compile/compile.js'
import { type AuthzRequest, evaluateAuthz } from '../../src/security/authz.js'
import type { SecurityPoint } from '../../src/security/spec.js'
import { authorizationPolicy, gateway, staticService } from '../helpers/yaml.js'

// AuthorizationPolicy semantics on the compiled snapshot: YAML as people apply it, loaded and
// compiled like any configuration, then evaluated against request attributes.

const GATEWAY = gateway({ namespace: 'istio-system', selector: { istio: 'ingressgateway' } })

function gatewayPoint (policies: string): SecurityPoint | undefined {
  const loaded = loadConfig([{ file: 'p.yaml', text: GATEWAY + '---\n' + policies }])
  const errors = loaded.problems.filter(p => p.severity === 'Error')
  if (errors.length > 0) throw new Error(errors.map(e => e.message).join('; '))
  return compile(loaded.set).snapshot.security?.gateway
}

function req (over: Partial<AuthzRequest> = {}): AuthzRequest {
  return { method: 'GET', authority: 'example.com', path: '/', port: 8080, headers: {}, sourceIp: '10.1.2.3', remoteIp: '10.1.2.3', peer: {}, ...over }
}

/** An AuthorizationPolicy and a document separator, so that policies can be concatenated. */
function policy (name: string, spec: string, ns = 'istio-system'): string {
  return `${authorizationPolicy(name, spec, ns)}---\n`
}

function verdict (p: SecurityPoint | undefined, r: AuthzRequest): string {
  if (p?.authz === undefined) return 'no policy'
  const v = evaluateAuthz(p.authz, r)
  return v.allowed ? 'allow' : `deny ${v.policy}`
}

t.test('no AuthorizationPolicy: no security view at all', async t => {
  const loaded = loadConfig([{ file: 'p.yaml', text: GATEWAY }])
  t.equal(compile(loaded.set).snapshot.security, undefined)
})

t.test('an ALLOW policy without rules denies everything (allow-nothing); {} rule allows all', async t => {
  t.equal(verdict(gatewayPoint(policy('allow-nothing', 'action: ALLOW')), req()), 'deny none')
  t.equal(verdict(gatewayPoint(policy('allow-all', 'rules:\n- {}')), req()), 'allow')
})

t.test('DENY before ALLOW; no ALLOW policy means allowed; AUDIT changes nothing', async t => {
  const p = gatewayPoint(
    policy('deny-post', 'action: DENY\nrules:\n- to:\n  - operation:\n      methods: ["POST"]') +
    policy('audit-all', 'action: AUDIT\nrules:\n- {}'))
  t.equal(verdict(p, req()), 'allow')
  t.equal(verdict(p, req({ method: 'POST' })), 'deny ns[istio-system]-policy[deny-post]-rule[0]')
  const both = gatewayPoint(
    policy('deny-post', 'action: DENY\nrules:\n- to:\n  - operation:\n      methods: ["POST"]') +
    policy('allow-post', 'rules:\n- to:\n  - operation:\n      methods: ["POST", "GET"]'))
  t.equal(verdict(both, req({ method: 'POST' })), 'deny ns[istio-system]-policy[deny-post]-rule[0]', 'a matching DENY wins over a matching ALLOW')
  t.equal(verdict(both, req({ method: 'PUT' })), 'deny none', 'an ALLOW policy exists and none matched')
})

t.test('operation fields: hosts (case-insensitive, wildcards), ports, paths (prefix, suffix, templates), not-forms', async t => {
  const p = gatewayPoint(policy('ops', `rules:
- to:
  - operation:
      hosts: ["*.example.com", "API.test:*"]
      notPaths: ["/admin/*"]
  - operation:
      ports: ["9000"]
      paths: ["*.png", "/exact"]
  - operation:
      paths: ["/users/{*}/profile", "/files/{**}"]`))
  t.equal(verdict(p, req({ authority: 'www.EXAMPLE.com' })), 'allow')
  t.equal(verdict(p, req({ authority: 'www.example.com', path: '/admin/x' })), 'deny none', 'notPaths')
  t.equal(verdict(p, req({ authority: 'api.test:8080' })), 'allow', 'prefix wildcard covers the port')
  t.equal(verdict(p, req({ authority: 'api.test' })), 'deny none', '"API.test:*" needs a port')
  t.equal(verdict(p, req({ port: 9000, path: '/img/a.png' })), 'allow')
  t.equal(verdict(p, req({ port: 9000, path: '/exact/no' })), 'deny none')
  t.equal(verdict(p, req({ port: 8080, path: '/img/a.png' })), 'deny none', 'fields of one operation are ANDed')
  t.equal(verdict(p, req({ path: '/users/ann/profile' })), 'allow')
  t.equal(verdict(p, req({ path: '/users/ann/bob/profile' })), 'deny none', '{*} is one segment')
  t.equal(verdict(p, req({ path: '/files/a/b/c' })), 'allow', '{**} is any rest')
})

t.test('source fields: ipBlocks (v4, v6, mapped), remoteIpBlocks, principals and namespaces of known peers only', async t => {
  const p = gatewayPoint(policy('src', `rules:
- from:
  - source:
      ipBlocks: ["10.0.0.0/8", "2001:db8::/32"]
      notIpBlocks: ["10.9.0.0/16"]
- from:
  - source:
      remoteIpBlocks: ["203.0.113.7"]
- from:
  - source:
      principals: ["cluster.local/ns/default/sa/*"]
- from:
  - source:
      notNamespaces: ["untrusted"]
      namespaces: ["*"]`))
  t.equal(verdict(p, req({ sourceIp: '10.1.1.1', remoteIp: '1.1.1.1' })), 'allow')
  t.equal(verdict(p, req({ sourceIp: '::ffff:10.1.1.1', remoteIp: '1.1.1.1' })), 'allow', 'IPv4-mapped IPv6 peer')
  t.equal(verdict(p, req({ sourceIp: '10.9.1.1', remoteIp: '1.1.1.1' })), 'deny none', 'notIpBlocks')
  t.equal(verdict(p, req({ sourceIp: '2001:db8:1::5', remoteIp: '1.1.1.1' })), 'allow')
  t.equal(verdict(p, req({ sourceIp: '192.168.0.1', remoteIp: '203.0.113.7' })), 'allow', 'remoteIpBlocks')
  t.equal(verdict(p, req({ sourceIp: '192.168.0.1', remoteIp: '1.1.1.1', peer: { principal: 'cluster.local/ns/default/sa/web', namespace: 'default' } })), 'allow')
  t.equal(verdict(p, req({ sourceIp: '192.168.0.1', remoteIp: '1.1.1.1' })), 'deny none', 'an unknown peer matches no principal or namespace')
  t.equal(verdict(p, req({ sourceIp: '192.168.0.1', remoteIp: '1.1.1.1', peer: { namespace: 'untrusted' } })), 'deny none')
})

t.test('when conditions: headers, claims (nested, lists), principal, audiences, destination.port; notValues with absent attributes', async t => {
  const p = gatewayPoint(policy('when', `rules:
- when:
  - key: request.headers[X-Token]
    values: ["admin-*"]
  - key: destination.port
    values: ["8080"]
- when:
  - key: request.auth.claims[groups]
    values: ["group1"]
  - key: request.auth.claims[realm][role]
    values: ["ops"]
- when:
  - key: request.auth.principal
    values: ["issuer/*"]
  - key: request.auth.audiences
    values: ["app"]
  - key: request.headers[x-block]
    notValues: ["*"]`))
  t.equal(verdict(p, req({ headers: { 'x-token': 'admin-1' } })), 'allow')
  t.equal(verdict(p, req({ headers: { 'x-token': 'admin-1' }, port: 9 })), 'deny none')
  const auth = (claims: Record<string, unknown>): AuthzRequest['auth'] => ({ principal: `${String(claims.iss)}/${String(claims.sub)}`, audiences: [].concat((claims.aud ?? []) as never), claims })
  t.equal(verdict(p, req({ auth: auth({ iss: 'x', sub: 'y', groups: ['group0', 'group1'], realm: { role: 'ops' } }) })), 'allow')
  t.equal(verdict(p, req({ auth: auth({ iss: 'x', sub: 'y', groups: 'group1', realm: { role: 'dev' } }) })), 'deny none')
  t.equal(verdict(p, req({ auth: auth({ iss: 'issuer', sub: 'me', aud: ['app', 'other'] }) })), 'allow', 'notValues on an absent header holds')
  t.equal(verdict(p, req({ headers: { 'x-block': '1' }, auth: auth({ iss: 'issuer', sub: 'me', aud: 'app' }) })), 'deny none')
  t.equal(verdict(p, req()), 'deny none', 'no token: no claim matches')
})

t.test('selection: namespace and selector, root-namespace policies, other workloads untouched', async t => {
  t.equal(gatewayPoint(policy('elsewhere', 'rules:\n- {}', 'default')), undefined, 'a default-namespace policy does not select the gateway')
  t.ok(gatewayPoint(policy('sel', 'selector:\n  matchLabels:\n    istio: ingressgateway\naction: DENY\nrules:\n- {}'))?.authz, 'the gateway labels')
  t.equal(gatewayPoint(policy('other', 'selector:\n  matchLabels:\n    app: productpage\nrules:\n- {}')), undefined, 'a selector for another workload')
})

t.test('dry-run policies are evaluated but never enforced', async t => {
  const p = gatewayPoint(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: shadow
  namespace: istio-system
  annotations: { istio.io/dry-run: "true" }
spec:
  action: DENY
  rules:
  - {}
`)
  const v = evaluateAuthz(p!.authz!, req())
  t.equal(v.allowed, true)
  t.equal(v.shadowDenied, 'ns[istio-system]-policy[shadow]-rule[0]')
})

t.test('requestPrincipals split at the last "/" into issuer and subject, each matched on its own claim', async t => {
  const p = gatewayPoint(policy('rp', `rules:
- from:
  - source:
      requestPrincipals: ["https://issuer.test/*"]
- from:
  - source:
      requestPrincipals: ["*/ann"]
- when:
  - key: request.auth.principal
    values: ["*@example.com"]`))
  const auth = (iss: string | undefined, sub: string | undefined): AuthzRequest['auth'] =>
    ({ principal: `${iss ?? ''}/${sub ?? ''}`, audiences: [], claims: { ...(iss !== undefined ? { iss } : {}), ...(sub !== undefined ? { sub } : {}) } })
  t.equal(verdict(p, req({ auth: auth('https://issuer.test', 'bob') })), 'allow', 'issuer exact, any subject')
  t.equal(verdict(p, req({ auth: auth('https://issuer.test/tenant', 'bob') })), 'deny none', 'an issuer that only starts with the value is another issuer')
  t.equal(verdict(p, req({ auth: auth('https://issuer.test', undefined) })), 'deny none', '"*" subject needs a sub claim')
  t.equal(verdict(p, req({ auth: auth('https://other.test', 'ann') })), 'allow', '"*/ann": any issuer, subject ann')
  t.equal(verdict(p, req({ auth: auth('https://other.test', 'x/ann') })), 'deny none', 'the subject is matched whole')
  t.equal(verdict(p, req({ auth: auth('https://other.test', 'eve@example.com') })), 'allow', 'request.auth.principal "*@example.com": any issuer, subject suffix')
  const any = gatewayPoint(policy('any', 'rules:\n- from:\n  - source:\n      notRequestPrincipals: ["*"]', 'istio-system'))
  t.equal(verdict(any, req()), 'allow', 'no token: notRequestPrincipals ["*"] holds')
  t.equal(verdict(any, req({ auth: auth('https://issuer.test', 'bob') })), 'deny none')
})

t.test('serviceAccounts without a namespace are in the policy\'s namespace', async t => {
  const loaded = loadConfig([{ file: 'p.yaml', text: `${staticService('reviews', { namespace: 'bookinfo', address: '127.0.0.5', labels: { app: 'reviews' } })}---
${policy('sa', `selector:
  matchLabels:
    app: reviews
rules:
- from:
  - source:
      serviceAccounts: ["productpage"]
- when:
  - key: source.serviceAccount
    values: ["other/ratings"]`, 'bookinfo')}` }])
  t.same(loaded.problems.filter(p => p.severity === 'Error'), [])
  const point = [...compile(loaded.set).snapshot.security!.clusters.values()][0]
  const from = (namespace: string, serviceAccount: string): AuthzRequest => req({ peer: { namespace, serviceAccount, principal: `cluster.local/ns/${namespace}/sa/${serviceAccount}` } })
  t.equal(verdict(point, from('bookinfo', 'productpage')), 'allow')
  t.equal(verdict(point, from('default', 'productpage')), 'deny none', 'the same name in another namespace')
  t.equal(verdict(point, from('other', 'ratings')), 'allow', 'namespace/name as written')
})

t.test('targetRefs: a Gateway selects the gateway workload; a Service or ServiceEntry selects its clusters', async t => {
  const text = GATEWAY + `---
${staticService('reviews', { name: 'reviews-se', namespace: 'default', address: '127.0.0.5' })}---
${staticService('ratings', { namespace: 'default', address: '127.0.0.6' })}---
${policy('on-gw', 'targetRefs:\n- { kind: Gateway, group: gateway.networking.k8s.io, name: gw }\naction: DENY\nrules:\n- to:\n  - operation:\n      notMethods: ["GET"]')}${policy('on-missing-gw', 'targetRefs:\n- { kind: Gateway, group: gateway.networking.k8s.io, name: nope }\naction: DENY\nrules:\n- {}')}${policy('on-svc', 'targetRefs:\n- { kind: Service, group: "", name: reviews }\naction: DENY\nrules:\n- to:\n  - operation:\n      notPorts: ["9080"]', 'default')}${policy('on-se', 'targetRefs:\n- { kind: ServiceEntry, group: networking.istio.io, name: ratings }\naction: DENY\nrules:\n- to:\n  - operation:\n      notHosts: ["ratings*"]', 'default')}`
  const loaded = loadConfig([{ file: 'p.yaml', text }])
  t.same(loaded.problems.filter(p => p.severity === 'Error').map(p => p.message), [])
  const sec = compile(loaded.set).snapshot.security!
  t.equal(verdict(sec.gateway, req()), 'allow', 'the missing Gateway\'s policy selects nothing')
  t.equal(verdict(sec.gateway, req({ method: 'POST' })), 'deny ns[istio-system]-policy[on-gw]-rule[0]', 'notMethods')
  const cluster = (host: string): SecurityPoint | undefined => [...sec.clusters.entries()].find(([name]) => name.includes(host))?.[1]
  t.equal(verdict(cluster('reviews'), req({ port: 9080 })), 'allow')
  t.equal(verdict(cluster('reviews'), req({ port: 9081 })), 'deny ns[default]-policy[on-svc]-rule[0]', 'Service targetRef, notPorts')
  t.equal(verdict(cluster('ratings'), req({ authority: 'ratings:9080' })), 'allow')
  t.equal(verdict(cluster('ratings'), req({ authority: 'evil' })), 'deny ns[default]-policy[on-se]-rule[0]', 'ServiceEntry targetRef, notHosts')
  t.notOk(cluster('reviews')?.authz?.deny.some(r => r.id.includes('on-se')), 'each policy only on its target')
})

t.test('source.ip and remote.ip conditions, notRemoteIpBlocks', async t => {
  const p = gatewayPoint(policy('ips', `action: DENY
rules:
- when:
  - key: source.ip
    values: ["10.0.0.0/8"]
    notValues: ["10.0.0.1"]
- when:
  - key: remote.ip
    values: ["2001:db8::/32"]
- from:
  - source:
      notRemoteIpBlocks: ["192.0.2.0/24", "10.0.0.0/8", "2001:db8::/32"]`))
  t.equal(verdict(p, req({ sourceIp: '10.2.3.4', remoteIp: '10.2.3.4' })), 'deny ns[istio-system]-policy[ips]-rule[0]')
  t.equal(verdict(p, req({ sourceIp: '10.0.0.1', remoteIp: '10.0.0.1' })), 'allow', 'notValues excludes one address')
  t.equal(verdict(p, req({ sourceIp: '192.0.2.1', remoteIp: '2001:db8::9' })), 'deny ns[istio-system]-policy[ips]-rule[1]')
  t.equal(verdict(p, req({ sourceIp: '192.0.2.1', remoteIp: '192.0.2.7' })), 'allow')
  t.equal(verdict(p, req({ sourceIp: '192.0.2.1', remoteIp: '198.51.100.1' })), 'deny ns[istio-system]-policy[ips]-rule[2]', 'outside every notRemoteIpBlocks')
})
