import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type CryptoKey, type JWK, SignJWT, exportJWK, generateKeyPair } from 'jose'
import t from 'tap'
import { JwtVerifier } from '../../plugins/jwt.js'
import { compileJwtRule } from '../../src/security/jwt-rules.js'
import { rawRequest, serviceEntry, startInlineGateway, startUpstream, waitForLogs } from '../helpers/upstream.js'
import { ingressToApp } from '../helpers/yaml.js'

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
  return `${ingressToApp(`    corsPolicy:
      allowOrigins: [{ exact: "https://web.test" }]
      allowMethods: [GET]
`)}---
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

/** A key pair of the given algorithm, its public JWK (with kid and alg) and a signer. */
async function keyOf (alg: 'RS256' | 'ES256' | 'EdDSA', kid: string): Promise<{ jwk: JWK; sign: (claims: Record<string, unknown>) => Promise<string> }> {
  const { publicKey, privateKey } = await generateKeyPair(alg)
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  const sign = (claims: Record<string, unknown>): Promise<string> =>
    new SignJWT(claims).setProtectedHeader({ alg, kid }).setIssuer(ISSUER).setIssuedAt().setExpirationTime('1h').sign(privateKey as CryptoKey)
  return { jwk, sign }
}

/** A JWKS server on loopback whose key set can be replaced while it runs. */
async function rotatingJwks (keys: JWK[]): Promise<{ url: string; hits: () => number; set: (k: JWK[]) => void; close: () => void }> {
  let current = keys
  let hits = 0
  const server = createServer((_req, res) => { hits++; res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ keys: current })) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, hits: () => hits, set: k => { current = k }, close: () => { server.closeAllConnections(); server.close() } }
}

function locationsConfig (upPort: number, jwksUri: string): string {
  return config(upPort, jwksUri).replace(/ {4}audiences: \[app\]\n(.|\n)*?(?=---)/, `    fromHeaders:
    - name: x-jwt-assertion
    - name: Authorization
      prefix: "Token "
    fromParams: [token]
    fromCookies: [session]
    forwardOriginalToken: true
`).replace(/ {4}when:\n.*\n.*\n/, '')
}

t.test('token locations: fromHeaders (with a prefix), fromParams, fromCookies; forwardOriginalToken keeps the header', async t => {
  const k = await keyOf('ES256', 'loc')
  const jwks = await rotatingJwks([k.jwk])
  const up = await startUpstream('app')
  const gw = await startInlineGateway(locationsConfig(up.port, jwks.url))
  t.teardown(async () => { await gw.close(); await up.close(); jwks.close() })
  t.same(gw.problems.filter(p => p.severity === 'Error'), [])
  const tok = await k.sign({ sub: 'ann' })
  const get = async (target: string, headers: Record<string, string> = {}): Promise<number> => (await rawRequest(gw.ingress, target, { headers: { host: 'a', ...headers } })).status

  t.equal(await get('/', { 'x-jwt-assertion': tok }), 200, 'a header without a prefix')
  t.equal(up.seen.at(-1)?.headers['x-jwt-assertion'], tok, 'forwardOriginalToken: the token goes upstream')
  t.equal(await get('/', { authorization: `Token ${tok}` }), 200, 'Authorization with the configured prefix')
  t.equal(await get('/', { authorization: `Bearer ${tok}` }), 403, 'the default Bearer location is not read when locations are named: no token, denied by policy')
  t.equal(await get(`/?token=${tok}`), 200, 'fromParams')
  t.equal(await get(`/?access_token=${tok}`), 403, 'access_token is only a default location')
  t.equal(await get('/', { cookie: `theme=dark; session=${tok}` }), 200, 'fromCookies')
  const bad = await rawRequest(gw.ingress, '/', { headers: { host: 'a', cookie: `session=${tok.slice(0, -3)}abc` } })
  t.equal(bad.status, 401, 'an invalid token in a cookie is refused')
  t.equal(bad.body, 'Jwt verification fails')
})

t.test('RS256, ES256 and EdDSA keys generated here, served by a loopback JWKS', async t => {
  const keys = await Promise.all([keyOf('RS256', 'rsa'), keyOf('ES256', 'ec'), keyOf('EdDSA', 'ed')])
  const jwks = await rotatingJwks(keys.map(k => k.jwk))
  const up = await startUpstream('app')
  const gw = await startInlineGateway(config(up.port, jwks.url))
  t.teardown(async () => { await gw.close(); await up.close(); jwks.close() })
  for (const [i, k] of keys.entries()) {
    const r = await rawRequest(gw.ingress, '/', { headers: { host: 'a', authorization: `Bearer ${await k.sign({ sub: `u${i}`, aud: 'app', group: 'admins' })}` } })
    t.equal(r.status, 200, `${String(k.jwk.alg)} verified`)
  }
  const stranger = await keyOf('RS256', 'rsa')
  const forged = await rawRequest(gw.ingress, '/', { headers: { host: 'a', authorization: `Bearer ${await stranger.sign({ sub: 'x', aud: 'app', group: 'admins' })}` } })
  t.equal(forged.status, 401, 'a key of the right kid but not in the set: refused')
  t.equal(jwks.hits(), 1, 'one fetch served every token')
})

t.test('JWKS cache: keys rotate without a restart; the set is fetched again when it ages', async t => {
  const a = await keyOf('ES256', 'a')
  const b = await keyOf('EdDSA', 'b')
  const jwks = await rotatingJwks([a.jwk])
  t.teardown(() => jwks.close())
  const verifier = new JwtVerifier({ refreshMs: 300, cooldownMs: 50 })
  t.teardown(() => verifier.close())
  const rule = compileJwtRule({ issuer: ISSUER, jwksUri: jwks.url }, 'ns/ra[0]')
  const ok = async (tok: string): Promise<string> => { const r = await verifier.verify(rule, tok); return r.ok ? 'ok' : r.reason }
  const tokA = await a.sign({ sub: 'ann' })
  t.equal(await ok(tokA), 'ok')
  t.equal(await ok(tokA), 'ok')
  t.equal(jwks.hits(), 1, 'cached')

  // The issuer rotates: the set now holds only key b. A token naming b makes the verifier fetch
  // again (after the cooldown), with no restart and no reload.
  jwks.set([b.jwk])
  await new Promise(resolve => setTimeout(resolve, 80))
  t.equal(await ok(await b.sign({ sub: 'ann' })), 'ok', 'the new key is fetched on demand')
  t.equal(jwks.hits(), 2)
  t.equal(await ok(tokA), "Jwks doesn't have key to match kid or alg from Jwt", 'the retired key no longer verifies')

  // Without any unknown kid, the set is still fetched again once it is older than refreshMs.
  const before = jwks.hits()
  await new Promise(resolve => setTimeout(resolve, 350))
  t.equal(await ok(await b.sign({ sub: 'ann' })), 'ok')
  t.equal(jwks.hits(), before + 1, 'refreshed after refreshMs')
})
