import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import t from 'tap'
import { rawRequest, serviceEntry, startInlineGateway, startUpstream, waitForLogs } from '../helpers/upstream.js'

// RequestAuthentication through the running gateway, with real keys, a real JWKS server on
// loopback and an AuthorizationPolicy requiring a request principal, as Istio's JWT task sets up.

const ISSUER = 'https://issuer.test'

async function jwksServer (): Promise<{ url: string; server: Server; hits: () => number; sign: (claims: Record<string, unknown>, opts?: { exp?: string }) => Promise<string> }> {
  const { publicKey, privateKey } = await generateKeyPair('ES256')
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }
  let hits = 0
  const server = createServer((_req, res) => { hits++; res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ keys: [jwk] })) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`
  const sign = (claims: Record<string, unknown>, opts: { exp?: string } = {}): Promise<string> =>
    new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(ISSUER).setIssuedAt().setExpirationTime(opts.exp ?? '1h').sign(privateKey)
  return { url, server, hits: () => hits, sign }
}

function config (upPort: number, jwksUri: string): string {
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: 8080, name: http, protocol: HTTP }
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: app }
spec:
  hosts: ['*']
  gateways: [istio-system/gw]
  http:
  - route:
    - destination: { host: app }
    corsPolicy:
      allowOrigins: [{ exact: "https://web.test" }]
      allowMethods: [GET]
---
${serviceEntry('app', { v1: upPort })}---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  jwtRules:
  - issuer: ${ISSUER}
    jwksUri: ${jwksUri}
    audiences: [app]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders:
    - { header: x-jwt-group, claim: group }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: require-jwt, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  rules:
  - from:
    - source: { requestPrincipals: ["${ISSUER}/*"] }
    when:
    - key: request.auth.claims[group]
      values: [admins]
`
}

t.test('JWT on the ingress: valid passes with its outputs, invalid is 401, missing is 403 by policy', async t => {
  const keys = await jwksServer()
  const up = await startUpstream('app')
  const gw = await startInlineGateway(config(up.port, keys.url))
  t.teardown(async () => { await gw.close(); await up.close(); keys.server.close() })

  const good = await keys.sign({ sub: 'ann', aud: 'app', group: 'admins' })
  const ok = await rawRequest(gw.ingress, '/x', { headers: { host: 'a', authorization: `Bearer ${good}` } })
  t.equal(ok.status, 200)
  const seen = up.seen[0].headers
  t.equal(seen.authorization, undefined, 'the token is not forwarded (forwardOriginalToken false)')
  t.equal(seen['x-jwt-group'], 'admins')
  const payload = JSON.parse(Buffer.from(String(seen['x-jwt-payload']), 'base64url').toString('utf8')) as Record<string, unknown>
  t.equal(payload.sub, 'ann')
  t.equal(payload.iss, ISSUER)

  const missing = await rawRequest(gw.ingress, '/x', { headers: { host: 'a' } })
  t.equal(missing.status, 403, 'no token passes authentication, and the policy requires a principal')
  t.equal(missing.body, 'RBAC: access denied')

  const wrongGroup = await rawRequest(gw.ingress, '/x', { headers: { host: 'a', authorization: `Bearer ${await keys.sign({ sub: 'bob', aud: 'app', group: 'users' })}` } })
  t.equal(wrongGroup.status, 403)

  const tampered = good.slice(0, -4) + (good.endsWith('AAAA') ? 'BBBB' : 'AAAA')
  const bad = await rawRequest(gw.ingress, '/x', { headers: { host: 'a', authorization: `Bearer ${tampered}` } })
  t.equal(bad.status, 401)
  t.equal(bad.body, 'Jwt verification fails')
  t.match(String(bad.headers['www-authenticate']), /^Bearer realm="http:\/\/a\/x", error="invalid_token"$/)

  const expired = await rawRequest(gw.ingress, '/x', { headers: { host: 'a', authorization: `Bearer ${await keys.sign({ sub: 'ann', aud: 'app', group: 'admins' }, { exp: '-5m' })}` } })
  t.equal(expired.status, 401)
  t.equal(expired.body, 'Jwt is expired')

  const otherAud = await rawRequest(gw.ingress, '/x', { headers: { host: 'a', authorization: `Bearer ${await keys.sign({ sub: 'ann', aud: 'other', group: 'admins' })}` } })
  t.equal(otherAud.status, 401)
  t.equal(otherAud.body, 'Audiences in Jwt are not allowed')

  const viaParam = await rawRequest(gw.ingress, `/x?access_token=${good}`, { headers: { host: 'a' } })
  t.equal(viaParam.status, 200, 'the access_token query parameter is a default location')

  const preflight = await rawRequest(gw.ingress, '/x', { method: 'OPTIONS', headers: { host: 'a', origin: 'https://web.test', 'access-control-request-method': 'GET', authorization: 'Bearer not.a.jwt' } })
  t.equal(preflight.status, 403, 'a preflight skips authentication but is still authorized')

  await waitForLogs(gw.logs, 8)
  const details = gw.logs.map(l => `${l.response_code} ${l.response_code_details}`)
  t.ok(details.includes('401 jwt_authn_access_denied{Jwt_is_expired}'), 'the access log names the JWT failure')
  t.equal(keys.hits(), 1, 'the JWKS was fetched once and cached')
  const metrics = await gw.metrics.registry.metrics()
  t.match(metrics, /envoy_http_jwt_authn_denied 3\b/)
})

t.test('a token from an issuer no rule names is refused', async t => {
  const keys = await jwksServer()
  const up = await startUpstream('app')
  const gw = await startInlineGateway(config(up.port, keys.url))
  t.teardown(async () => { await gw.close(); await up.close(); keys.server.close() })
  const foreign = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://elsewhere').sign(new TextEncoder().encode('k'.repeat(32)))
  const r = await rawRequest(gw.ingress, '/', { headers: { host: 'a', authorization: `Bearer ${foreign}` } })
  t.equal(r.status, 401)
  t.equal(r.body, 'Jwt issuer is not configured')
})
