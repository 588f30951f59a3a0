import t from 'tap'
import { rawRequest, serviceEntry, startInlineGateway, startUpstream } from '../helpers/upstream.js'
import { GATEWAY, echoed, gatewayVs } from './fixture.js'

// Request and response headers as Envoy (behind an Istio gateway) writes them, observed from a
// real upstream and a real client.

t.test('header operations: remove, then set, then add; destination level before route level', async t => {
  const up = await startUpstream('app', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'app', 'x-drop-me': '1', 'x-resp': 'upstream' })
    res.end(JSON.stringify({ headers: _req.headers, url: _req.url, upstream: 'app' }))
  })
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - headers:
      request:
        # istio route.go translateHeadersOperations: set entries, then add entries; Envoy
        # HeaderParser::evaluateHeaders removes first ("remove-before-add").
        set: { x-both: set-value, x-level: route, x-removed: back }
        add: { x-both: added, x-list: route-add }
        remove: [x-removed, x-client-only]
      response:
        set: { x-resp: route }
        remove: [x-drop-me]
    route:
    - destination: { host: app }
      # Envoy evaluates the weighted cluster's headers first, then the route's
      # (most_specific_header_mutations_wins defaults to false, and Istio leaves it so):
      # on a conflicting set the route level wins, and added values keep that order.
      headers:
        request:
          set: { x-level: destination }
          add: { x-list: dest-add }
        response:
          add: { x-resp-dest: d }`)}
---
${serviceEntry('app', { v1: up.port })}`)
  t.teardown(async () => { await gw.close(); await up.close() })
  const res = await rawRequest(gw.ingress, '/h', {
    headers: { 'x-both': 'client', 'x-list': 'client', 'x-removed': 'client', 'x-client-only': 'gone' }
  })
  t.equal(res.status, 200)
  const h = echoed(res).headers
  t.equal(h['x-both'], 'set-value, added', 'set overwrites the client value, add appends after it')
  t.equal(h['x-level'], 'route', 'route-level set wins over destination-level set')
  t.equal(h['x-list'], 'client, dest-add, route-add', 'adds append in order: client, destination, route')
  t.equal(h['x-removed'], 'back', 'remove runs before set: a removed-then-set header has the set value')
  t.equal(h['x-client-only'], undefined, 'remove drops the client header')
  t.equal(res.headers['x-resp'], 'route', 'response set overwrites the upstream value')
  t.equal(res.headers['x-drop-me'], undefined, 'response remove')
  t.equal(res.headers['x-resp-dest'], 'd', 'destination-level response add')
  t.equal(res.headers['x-upstream'], 'app', 'other upstream response headers pass through')
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
