import t from 'tap'
import { startInlineGateway } from '../helpers/gateway.js'
import { echoed, rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'

// Request and response headers as Envoy (behind an Istio gateway) writes them, observed from a
// real upstream and a real client.

t.test('header operations: remove, then set, then add; route and destination levels as Istio orders them', async t => {
  const up = await startUpstream('app', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'app', 'x-drop-me': '1', 'x-resp': 'upstream' })
    res.end(JSON.stringify({ headers: _req.headers, url: _req.url, upstream: 'app' }))
  })
  const levels = `      headers:
        request:
          set: { x-level: destination }
          add: { x-list: dest-add }
        response:
          set: { x-resp-level: destination }
          add: { x-resp-dest: d }`
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match: [{ uri: { prefix: /single } }]
    headers:
      request:
        # istio route.go translateHeadersOperations: set entries, then add entries; Envoy
        # HeaderParser::evaluateHeaders removes first ("remove-before-add").
        set: { x-both: set-value, x-level: route, x-removed: back }
        add: { x-both: added, x-list: route-add }
        remove: [x-removed, x-client-only]
      response:
        set: { x-resp: route, x-resp-level: route }
        remove: [x-drop-me]
    route:
    # One destination: Istio appends its operations after the route's in one Envoy list
    # (route.go processDestination), so the destination's set wins and its adds come last.
    # A destination-level set.host becomes the authority rewrite when the route has none.
    - destination: { host: app }
      headers:
        request:
          set: { x-level: destination, host: dest-host.example }
          add: { x-list: dest-add }
        response:
          set: { x-resp-level: destination }
          add: { x-resp-dest: d }
  - match: [{ uri: { prefix: /weighted } }]
    headers:
      request:
        set: { x-level: route }
        add: { x-list: route-add }
      response:
        set: { x-resp-level: route }
    route:
    # Several destinations: each weighted cluster's operations run before the route's
    # (Envoy WeightedClusterEntry::finalizeRequestHeaders), so the route's set wins.
    - destination: { host: app }
      weight: 100
${levels}
    - destination: { host: app }
      weight: 0`)}
---
${serviceEntry('app', { v1: up.port })}`)
  t.teardown(async () => { await gw.close(); await up.close() })
  const res = await rawRequest(gw.ingress, '/single', {
    headers: { 'x-both': 'client', 'x-list': 'client', 'x-removed': 'client', 'x-client-only': 'gone' }
  })
  t.equal(res.status, 200)
  const h = echoed(res).headers
  t.equal(h['x-both'], 'set-value, added', 'set overwrites the client value, add appends after it')
  t.equal(h['x-level'], 'destination', 'single destination: its set wins over the route set')
  t.equal(h['x-list'], 'client, route-add, dest-add', 'single destination: route adds, then destination adds')
  t.equal(h['x-removed'], 'back', 'remove runs before set: a removed-then-set header has the set value')
  t.equal(h['x-client-only'], undefined, 'remove drops the client header')
  t.equal(h.host, 'dest-host.example', 'destination set.host rewrites the authority')
  t.equal(res.headers['x-resp'], 'route', 'response set overwrites the upstream value')
  t.equal(res.headers['x-resp-level'], 'destination', 'single destination: destination response set wins')
  t.equal(res.headers['x-drop-me'], undefined, 'response remove')
  t.equal(res.headers['x-resp-dest'], 'd', 'destination-level response add')
  t.equal(res.headers['x-upstream'], 'app', 'other upstream response headers pass through')

  const w = await rawRequest(gw.ingress, '/weighted', { headers: { 'x-list': 'client' } })
  t.equal(w.status, 200)
  const wh = echoed(w).headers
  t.equal(wh['x-level'], 'route', 'weighted: the route set wins over the destination set')
  t.equal(wh['x-list'], 'client, dest-add, route-add', 'weighted: destination adds, then route adds')
  t.equal(w.headers['x-resp-level'], 'route', 'weighted: route response set wins')
})

t.test('x-request-id, x-forwarded-proto, x-forwarded-for, x-envoy-upstream-service-time, hop-by-hop', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match:
    - uri: { prefix: /x }
    route:
    - destination: { host: app }`)}
---
${serviceEntry('app', { v1: up.port })}`)
  t.teardown(async () => { await gw.close(); await up.close() })

  // Envoy HCM generates x-request-id (a UUID v4) when absent and passes it upstream.
  const gen = await rawRequest(gw.ingress, '/x')
  const rid = echoed(gen).headers['x-request-id']
  t.match(rid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'generated x-request-id is a UUID v4')
  const kept = await rawRequest(gw.ingress, '/x', { headers: { 'x-request-id': 'abc-123' } })
  t.equal(echoed(kept).headers['x-request-id'], 'abc-123', 'an internal caller\'s x-request-id is kept')

  // x-forwarded-proto: the downstream scheme (plain HTTP gateway → http).
  t.equal(echoed(gen).headers['x-forwarded-proto'], 'http')
  // x-forwarded-for at the gateway (use_remote_address: true): the peer address is appended.
  t.equal(echoed(gen).headers['x-forwarded-for'], '127.0.0.1', 'the peer becomes x-forwarded-for')

  // x-envoy-upstream-service-time on proxied responses (router filter), in ms; never on a
  // local reply such as 404 NR.
  t.match(gen.headers['x-envoy-upstream-service-time'], /^\d+$/, 'x-envoy-upstream-service-time is an integer')
  const nr = await rawRequest(gw.ingress, '/nothing')
  t.equal(nr.status, 404)
  t.equal(nr.headers['x-envoy-upstream-service-time'], undefined, 'absent on a local reply')

  // Hop-by-hop headers (RFC 9110 §7.6.1) and the ones Connection names are not forwarded.
  const hop = await rawRequest(gw.ingress, '/x', {
    headers: { connection: 'keep-alive, x-hop', 'x-hop': '1', 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive', 'x-end': 'kept' }
  })
  const hh = echoed(hop).headers
  t.equal(hh['x-hop'], undefined, 'a header named in Connection is dropped')
  t.equal(hh['keep-alive'], undefined, 'keep-alive dropped')
  t.equal(hh['proxy-connection'], undefined, 'proxy-connection dropped')
  t.equal(hh['x-end'], 'kept', 'end-to-end headers pass')
})
