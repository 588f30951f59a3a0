import t from 'tap'
import { startInlineGateway } from '../helpers/gateway.js'
import { echoed, rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'

// rewrite.uri, uriRegexRewrite and authority rewrites as Istio translates them to Envoy
// (route.go: prefix_rewrite per match block; regex_rewrite; host_rewrite_literal), observed
// from a real upstream.

t.test('rewrite.uri: replaces the matched prefix, or the whole path for exact/regex; query kept', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - name: slash
    # The well-known gotcha (Istio docs HTTPRewrite, Envoy prefix_rewrite): prefix /foo with
    # uri "/" turns /foo/baz into //baz, since only the matched characters are replaced.
    match:
    - uri: { prefix: /foo }
    rewrite: { uri: / }
    route:
    - destination: { host: app }
  - name: pfx
    match:
    - uri: { prefix: /old/ }
    rewrite: { uri: /new/ }
    route:
    - destination: { host: app }
  - name: mixed
    # Each match block is its own Envoy route (route.go), so the rewrite is relative to the
    # block that matched: exact replaces the whole path, prefix only its prefix.
    match:
    - uri: { exact: /productpage }
    - uri: { prefix: /static }
    - uri: { regex: "/re/[0-9]+" }
    rewrite: { uri: /v2 }
    route:
    - destination: { host: app }
  - name: regex-rewrite
    # Envoy route_components.proto RegexMatchAndSubstitute example: ^/service/([^/]+)(/.*)$
    # with \\2/instance/\\1 turns /service/foo/v1/api into /v1/api/instance/foo.
    match:
    - uri: { prefix: /service/ }
    rewrite:
      uriRegexRewrite:
        match: "^/service/([^/]+)(/.*)$"
        rewrite: "\\\\2/instance/\\\\1"
    route:
    - destination: { host: app }`)}
---
${serviceEntry('app', { v1: up.port })}`)
  t.teardown(async () => { await gw.close(); await up.close() })
  const cases: Array<[string, string]> = [
    ['/foo/baz', '//baz'],
    ['/foo', '/'],
    ['/foobar', '/bar'],
    ['/old/a/b?x=1', '/new/a/b?x=1'],
    ['/productpage', '/v2'],
    ['/productpage?u=1', '/v2?u=1'],
    ['/static/css/a.css', '/v2/css/a.css'],
    ['/re/42?k=v', '/v2?k=v'],
    ['/service/foo/v1/api', '/v1/api/instance/foo'],
    ['/service/foo/v1/api?q=2', '/v1/api/instance/foo?q=2']
  ]
  for (const [from, to] of cases) {
    const res = await rawRequest(gw.ingress, from)
    t.equal(res.status, 200, `${from}: status`)
    t.equal(echoed(res).url, to, `${from} → ${to}`)
  }
})

t.test('Host: kept by default, rewritten by rewrite.authority or headers.request.set.host', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match:
    - uri: { prefix: /auth }
    rewrite: { authority: rewritten.example }
    route:
    - destination: { host: app }
  - match:
    - uri: { prefix: /sethost }
    # route.go translateAppendHeaders: set.host becomes an authority rewrite, never a plain header.
    headers:
      request:
        set: { host: from-set.example }
    route:
    - destination: { host: app }
  - match:
    - uri: { prefix: /addhost }
    # TranslateHeadersOperations: host in add also rewrites the authority; set wins over add.
    headers:
      request:
        add: { host: from-add.example }
    route:
    - destination: { host: app }
  - match:
    - uri: { prefix: /both }
    headers:
      request:
        add: { host: from-add.example }
        set: { host: from-set.example }
    route:
    - destination: { host: app }
  - route:
    - destination: { host: app }`)}
---
${serviceEntry('app', { v1: up.port })}`)
  t.teardown(async () => { await gw.close(); await up.close() })
  const add = echoed(await rawRequest(gw.ingress, '/addhost', { headers: { host: 'shop.example.com' } }))
  t.equal(add.headers.host, 'from-add.example', 'headers.request.add.host rewrites the authority')
  const both = echoed(await rawRequest(gw.ingress, '/both', { headers: { host: 'shop.example.com' } }))
  t.equal(both.headers.host, 'from-set.example', 'set.host wins over add.host')
  const plain = echoed(await rawRequest(gw.ingress, '/x', { headers: { host: 'shop.example.com:8080' } }))
  // Envoy forwards :authority unchanged unless a host rewrite is configured (docs/configuration.md#forwarding, Istio).
  t.equal(plain.headers.host, 'shop.example.com:8080', 'Host kept as the client sent it, port included')
  const auth = echoed(await rawRequest(gw.ingress, '/auth', { headers: { host: 'shop.example.com' } }))
  t.equal(auth.headers.host, 'rewritten.example', 'rewrite.authority')
  const set = echoed(await rawRequest(gw.ingress, '/sethost', { headers: { host: 'shop.example.com' } }))
  t.equal(set.headers.host, 'from-set.example', 'headers.request.set.host rewrites the authority')
})
