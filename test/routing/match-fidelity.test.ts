import t, { type Test } from 'tap'
import { startInlineGateway } from '../helpers/gateway.js'
import { rawRequest, who } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitForLogs } from '../helpers/wait.js'
import { APP_SUBSETS, GATEWAY, gatewayVs, routeTo, serviceEntry, virtualService } from '../helpers/yaml.js'

// Match semantics observed over HTTP against a real meshgate, each row checked against
// Istio's virtual_service.proto (HTTPMatchRequest, StringMatch) and Envoy's route_components.proto.

async function threeVersions (t: Test, yaml: string): Promise<{ ingress: string; mesh: string }> {
  const v1 = await startUpstream('v1')
  const v2 = await startUpstream('v2')
  const v3 = await startUpstream('v3')
  const gw = await startInlineGateway(`${yaml}
---
${APP_SUBSETS}
---
${serviceEntry('app', { v1: v1.port, v2: v2.port, v3: v3.port })}`)
  t.teardown(async () => { await gw.close(); await v1.close(); await v2.close(); await v3.close() })
  return gw
}

t.test('header matches: ignored pseudo keys, regex "*" presence, {} presence, full-match regex', async t => {
  const gw = await threeVersions(t, `${GATEWAY}---
${gatewayVs(`  - name: ignored-keys
    # virtual_service.proto HTTPMatchRequest.headers: "The keys uri, scheme, method, and
    # authority will be ignored." The block below therefore only tests x-ignored.
    match:
    - headers:
        method: { exact: POST }
        uri: { exact: /never }
        authority: { exact: nowhere }
        scheme: { exact: ftp }
        x-ignored: { exact: "yes" }
    route:
    - destination: { host: app, subset: v1 }
  - name: star-presence
    # istio route.go canBeConvertedToPresentMatch: regex "*" is a presence match.
    match:
    - headers: { x-star: { regex: "*" } }
    route:
    - destination: { host: app, subset: v2 }
  - name: empty-presence
    # An empty StringMatch ({}) is a presence match (translateHeaderMatch, present_match).
    match:
    - headers: { x-any: {} }
    route:
    - destination: { host: app, subset: v3 }
  - name: full-regex
    # Envoy safe_regex: the whole value must match; "v\\d" does not match "xv1".
    match:
    - headers: { x-re: { regex: "v\\\\d" } }
    route:
    - destination: { host: app, subset: v1 }
  - name: joined
    match:
    - headers: { x-multi: { exact: "a,b" } }
    route:
    - destination: { host: app, subset: v2 }`)}`)
  const g = gw.ingress
  t.equal(await who(g, '/x', { 'x-ignored': 'yes' }), 'v1', 'uri/method/authority/scheme keys inside headers are ignored')
  t.equal(await who(g, '/x', { 'x-star': '' }), 'v2', 'regex "*" matches a present header, even empty')
  t.equal(await who(g, '/x', { 'x-star': 'anything' }), 'v2', 'regex "*" matches any value')
  t.equal(await who(g, '/x', { 'x-any': 'q' }), 'v3', '{} is presence')
  t.equal(await who(g, '/x', { 'x-re': 'v7' }), 'v1', 'regex full match')
  t.equal(await who(g, '/x', { 'x-re': 'xv7' }), 404, 'regex is not a substring search')
  t.equal(await who(g, '/x', { 'x-re': 'v77' }), 404, 'regex anchored at the end too')
  t.equal(await who(g, '/x', { 'x-multi': 'a,b' }), 'v2', 'a single header line "a,b"')
  t.equal(await who(g, '/x'), 404, 'no condition met: 404 (no catch-all)')
})

t.test('header names in a match are case-insensitive on the wire; uppercase keys are rejected', async t => {
  const gw = await threeVersions(t, `${GATEWAY}---
${gatewayVs(`  - match:
    - headers: { end-user: { exact: jason } }
    route:
    - destination: { host: app, subset: v2 }
  - route:
    - destination: { host: app, subset: v1 }`)}`)
  // HTTP header names are case-insensitive (RFC 9110 §5.1); Envoy lowercases them.
  t.equal(await who(gw.ingress, '/p', { 'End-User': 'jason' }), 'v2')
  // The value is compared case-sensitively (StringMatch exact).
  t.equal(await who(gw.ingress, '/p', { 'end-user': 'Jason' }), 'v1')

  // virtual_service.proto: "The header keys must be lowercase"; istio validation rejects others.
  await t.rejects(startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match:
    - headers: { End-User: { exact: jason } }
    route:
    - destination: { host: app }`)}
---
${serviceEntry('app', { v1: 1 })}`), 'an uppercase header key fails validation')
})

t.test('withoutHeaders: inverted, a missing header counts as empty', async t => {
  const gw = await threeVersions(t, `${GATEWAY}---
${gatewayVs(`  - name: not-jason
    match:
    - withoutHeaders: { end-user: { exact: jason } }
    route:
    - destination: { host: app, subset: v1 }
  - name: not-prefix-empty
    # treat_missing_header_as_empty: prefix "" matches '' so a missing header is "present-empty".
    match:
    - withoutHeaders: { x-absent: { prefix: "" } }
      uri: { prefix: /b }
    route:
    - destination: { host: app, subset: v2 }
  - route:
    - destination: { host: app, subset: v3 }`)}`)
  t.equal(await who(gw.ingress, '/a'), 'v1', 'missing header does not equal jason')
  t.equal(await who(gw.ingress, '/a', { 'end-user': 'bob' }), 'v1')
  t.equal(await who(gw.ingress, '/a', { 'end-user': 'jason' }), 'v3', 'jason is excluded')
})

t.test('uri: prefix is raw and sees the query; exact and regex ignore the query; ignoreUriCase not for regex', async t => {
  const gw = await threeVersions(t, `${GATEWAY}---
${gatewayVs(`  - name: q
    # Envoy RouteMatch.prefix compares the whole :path, query included.
    match:
    - uri: { prefix: "/search?q=" }
    route:
    - destination: { host: app, subset: v3 }
  - name: exact
    match:
    - uri: { exact: /Exact }
      ignoreUriCase: true
    route:
    - destination: { host: app, subset: v1 }
  - name: regex
    # ignoreUriCase "does not apply to regex" (virtual_service.proto).
    match:
    - uri: { regex: "/re/[a-z]+" }
      ignoreUriCase: true
    route:
    - destination: { host: app, subset: v2 }
  - name: prefix
    # prefix is not segment-aware (istio#60488): /foo matches /foobar.
    match:
    - uri: { prefix: /foo }
    route:
    - destination: { host: app, subset: v3 }`)}`)
  const g = gw.ingress
  t.equal(await who(g, '/search?q=mesh'), 'v3', 'prefix containing ? matches the query')
  t.equal(await who(g, '/exact'), 'v1', 'ignoreUriCase on exact')
  t.equal(await who(g, '/EXACT?x=1'), 'v1', 'exact ignores the query string')
  t.equal(await who(g, '/re/abc?z=9'), 'v2', 'regex ignores the query string')
  t.equal(await who(g, '/re/ABC'), 404, 'ignoreUriCase does not apply to regex')
  t.equal(await who(g, '/re/abc/d'), 404, 'regex must match the whole path')
  t.equal(await who(g, '/foobar'), 'v3', 'prefix /foo matches /foobar')
  t.equal(await who(g, '/foo-bar/x'), 'v3', 'prefix /foo matches /foo-bar/x')
})

t.test('queryParams: exact "" matches ?key, regex is a full match, first match block wins', async t => {
  const gw = await threeVersions(t, `${GATEWAY}---
${gatewayVs(`  - match:
    # virtual_service.proto: "exact: \\"\\"" matches ?key; regex "\\d+$" matches 123 not a123.
    - queryParams: { debug: { exact: "" } }
    route:
    - destination: { host: app, subset: v1 }
  - match:
    - queryParams: { id: { regex: "\\\\d+$" } }
    route:
    - destination: { host: app, subset: v2 }
  - match:
    - method: { exact: POST }
    - uri: { exact: /or }
    route:
    - destination: { host: app, subset: v3 }`)}`)
  const g = gw.ingress
  t.equal(await who(g, '/x?debug'), 'v1', '?debug matches exact ""')
  t.equal(await who(g, '/x?id=123'), 'v2')
  t.equal(await who(g, '/x?id=a123'), 404, 'regex must match the whole value')
  t.equal(await who(g, '/or'), 'v3', 'match blocks are ORed')
})

t.test('several VirtualServices for one host at a gateway: routes concatenated, catch-alls moved last', async t => {
  // istio route.go SortVHostRoutes / gateway.go: a catch-all of an earlier VS does not hide
  // the specific routes of a later one.
  const gw = await threeVersions(t, `${GATEWAY}---
${gatewayVs(`  - name: all
    route:
    - destination: { host: app, subset: v1 }`, 'first')}
---
${gatewayVs(`  - name: api
    match:
    - uri: { prefix: /api }
    route:
    - destination: { host: app, subset: v2 }
  - name: after-catch-all-never
    match:
    - uri: { prefix: "/" }
    route:
    - destination: { host: app, subset: v3 }
  - name: dropped
    match:
    - uri: { prefix: /dropped }
    route:
    - destination: { host: app, subset: v3 }`, 'second')}`)
  t.equal(await who(gw.ingress, '/api/x'), 'v2', 'the later VS specific route wins over the earlier catch-all')
  t.equal(await who(gw.ingress, '/other'), 'v1', 'the first catch-all still serves the rest')
  // Routes after a catch-all inside one VS are dropped (BuildHTTPRoutesForVirtualService).
  t.equal(await who(gw.ingress, '/dropped'), 'v1', 'a route after a catch-all is never reached')
})

t.test('match.port: no Envoy matcher, so prefix "/" on the listener port is a catch-all moved last', async t => {
  // route.go translateRoute drops a block whose port is not the listener's and emits no matcher
  // for one that is; IsCatchAllRoute then sees prefix "/" alone.
  const gw = await threeVersions(t, `${GATEWAY}---
${gatewayVs(`  - name: all-on-8080
    match:
    - uri: { prefix: "/" }
      port: 8080
    route:
    - destination: { host: app, subset: v1 }`, 'first')}
---
${gatewayVs(`  - name: other-port
    match:
    - uri: { prefix: /api }
      port: 9999
    route:
    - destination: { host: app, subset: v3 }
  - name: api
    match:
    - uri: { prefix: /api }
    route:
    - destination: { host: app, subset: v2 }`, 'second')}`)
  t.equal(await who(gw.ingress, '/api/x'), 'v2', 'the later VS route wins over the port-qualified catch-all')
  t.equal(await who(gw.ingress, '/else'), 'v1', 'the port-qualified catch-all serves the rest')
})

t.test('mesh listener: Host with or without port, absolute-form target; gateway ignores the Host port', async t => {
  const v1 = await startUpstream('v1')
  const v2 = await startUpstream('v2')
  const gw = await startInlineGateway(`${GATEWAY}---
${virtualService(routeTo('app', 'v2'), { name: 'app-mesh' })}---
${virtualService(routeTo('app', 'v1'), { name: 'app-gw', hosts: ['shop.example.com'], gateways: ['gw'] })}---
${APP_SUBSETS}
---
${serviceEntry('app', { v1: v1.port, v2: v2.port })}`)
  t.teardown(async () => { await gw.close(); await v1.close(); await v2.close() })
  for (const host of ['app', 'app:9080', 'app.default', 'app.default.svc', 'app.default.svc.cluster.local:9080', 'APP']) {
    const r = await rawRequest(gw.mesh, '/r', { headers: { host } })
    t.equal(r.status, 200, `mesh Host ${host}`)
    t.equal(JSON.parse(r.body).upstream, 'v2', `mesh Host ${host}: the mesh VS applies`)
  }
  const abs = await rawRequest(gw.mesh, 'http://app:9080/abs?x=1', { headers: { host: 'ignored.example' } })
  t.equal(abs.status, 200, 'absolute-form target: its authority replaces Host (RFC 9112 §3.2.2)')
  t.equal(JSON.parse(abs.body).url, '/abs?x=1', 'forwarded in origin-form')
  t.equal((await rawRequest(gw.mesh, '/r', { headers: { host: 'unknown' } })).status, 404, 'unknown mesh host: 404 NR')
  // The mesh VS has no gateways (mesh only); the gateway VS is not applied on the mesh listener.
  t.equal((await rawRequest(gw.mesh, '/r', { headers: { host: 'shop.example.com' } })).status, 404)
  // IgnorePortInHostMatching on gateways: shop.example.com:1234 finds the same virtual host.
  for (const host of ['shop.example.com', 'shop.example.com:1234', 'SHOP.example.com']) {
    const r = await rawRequest(gw.ingress, '/r', { headers: { host } })
    t.equal(r.status, 200, `gateway Host ${host}`)
    t.equal(JSON.parse(r.body).upstream, 'v1')
  }
  t.equal((await rawRequest(gw.ingress, '/r', { headers: { host: 'app' } })).status, 404, 'mesh-only VS not applied at the gateway')
})

t.test('mesh listener without a VirtualService: Istio\'s default route, named "default"', async t => {
  const v1 = await startUpstream('v1')
  const gw = await startInlineGateway(serviceEntry('app', { v1: v1.port }))
  t.teardown(async () => { await gw.close(); await v1.close() })
  const r = await rawRequest(gw.mesh, '/any/path?q=1', { headers: { host: 'app:9080' } })
  t.equal(r.status, 200)
  t.equal(JSON.parse(r.body).url, '/any/path?q=1')
  await waitForLogs(gw.logs, 1, 5000)
  // route.go BuildDefaultHTTPOutboundRoute: DefaultRouteName "default", cluster outbound|9080||host.
  t.equal(gw.logs[0].route_name, 'default')
  t.equal(gw.logs[0].upstream_cluster, 'outbound|9080||app.default.svc.cluster.local')
})
