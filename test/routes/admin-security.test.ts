// Hardening table G (G1–G6): the admin API refuses bad tokens in constant time with no state
// change and an audit line, is absent from the data plane, refuses CSRF-able bodies,
// rate-limits changes under a burst, redacts secrets in its dumps, and answers only requests
// whose Host is its own (DNS rebinding).
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Pool } from 'undici'
import { startGateway } from '../../plugins/gateway.js'
import { REDACTED, redact, startAdmin } from '../../routes/admin.js'
import { makePki } from '../helpers/certs.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { serviceEntry } from '../helpers/yaml.js'

const TOKEN = 'g1-admin-token-0123456789'
const auth = { authorization: `Bearer ${TOKEN}` }

const routes = (tag: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: app }
spec:
  hosts: [app]
  http:
  - match: [{ uri: { prefix: /app } }]
    headers: { response: { set: { x-set: ${tag} } } }
    route: [{ destination: { host: app } }]
`

interface AuditEntry { level: string; msg: string; method: string; url: string; status: number; auth: string; generation: number }

async function setup (t: { teardown: (fn: () => Promise<void>) => void }, adminOpts: { reloadLimit?: number; reloadWindowMs?: number } = {}): Promise<{
  gw: Awaited<ReturnType<typeof startGateway>>
  admin: Awaited<ReturnType<typeof startAdmin>>
  dir: string
  audit: AuditEntry[]
  mesh: string
}> {
  const up = await startUpstream('app')
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-hard-admin-'))
  await writeFile(join(dir, 'a-service.yaml'), serviceEntry('app', { v1: up.port }))
  await writeFile(join(dir, 'b-routes.yaml'), routes('A'))
  const gw = await startGateway({ config: [dir], host: '127.0.0.1', meshPort: 0, accessLog: 'off' })
  const audit: AuditEntry[] = []
  const logger = {
    info: (o: object, msg: string) => { audit.push({ ...(o as AuditEntry), level: 'info', msg }) },
    warn: (o: object, msg: string) => { audit.push({ ...(o as AuditEntry), level: 'warn', msg }) }
  }
  const admin = await startAdmin({ gateway: gw, port: 0, token: TOKEN, logger, ...adminOpts })
  t.teardown(async () => { await admin.close(); await gw.close(); await up.close() })
  return { gw, admin, dir, audit, mesh: gw.listeners.find(l => l.kind === 'mesh')!.url }
}

t.test('G1: missing, wrong, truncated, overlong and non-Bearer tokens: 401, no state change, an audit line each', async t => {
  const { gw, admin, dir, audit, mesh } = await setup(t)
  // A change waiting on disk: a successful reload would apply it.
  await writeFile(join(dir, 'b-routes.yaml'), routes('B'))
  const ep = gw.runtime.allClusters().next().value!.endpoints[0]
  const cluster = gw.runtime.allClusters().next().value!.spec.name
  const attempts: Array<[string, Record<string, string>]> = [
    ['no token', {}],
    ['wrong token, same length', { authorization: `Bearer ${'x'.repeat(TOKEN.length)}` }],
    ['a prefix of the token', { authorization: `Bearer ${TOKEN.slice(0, 10)}` }],
    ['the token plus a byte', { authorization: `Bearer ${TOKEN}x` }],
    ['one byte', { authorization: 'Bearer x' }],
    ['10 KB', { authorization: `Bearer ${'y'.repeat(10_000)}` }],
    ['empty bearer', { authorization: 'Bearer ' }],
    ['Basic scheme', { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }],
    ['lowercase scheme with the token', { authorization: `bearer${TOKEN}` }]
  ]
  const calls: Array<[string, string]> = [['POST', '/config/reload'], ['POST', '/config/rollback'], ['PUT', '/config'], ['POST', `/clusters/${encodeURIComponent(cluster)}/endpoints/${encodeURIComponent(ep.key)}/drain`]]
  let n = 0
  for (const [what, headers] of attempts) {
    for (const [method, url] of calls) {
      const r = await rawRequest(admin.url, url, { method, headers: { ...headers, ...(method === 'PUT' ? { 'content-type': 'application/yaml' } : {}) }, ...(method === 'PUT' ? { body: routes('C') } : {}) })
      t.equal(r.status, 401, `${what}, ${method} ${url}: 401 (a length mismatch never throws: digests are compared)`)
      t.match(r.headers['www-authenticate'], /^Bearer realm="meshgate-admin"/)
      n++
    }
  }
  t.equal(gw.config.current.generation, 1, 'no reload, rollback or PUT happened')
  t.equal(gw.config.history.length, 1)
  t.equal(ep.host.flags & 16, 0, 'the endpoint was not drained')
  t.equal((await rawRequest(mesh, '/app', { headers: { host: 'app' } })).headers['x-set'], 'A', 'the old routes serve')
  const refused = audit.filter(a => a.msg === 'admin call refused')
  t.equal(refused.length, n, 'one audit line per refused call')
  t.ok(refused.every(a => a.level === 'warn' && a.status === 401 && (a.auth === 'missing' || a.auth === 'invalid')))
  t.ok(audit.every(a => !JSON.stringify(a).includes(TOKEN.slice(0, 10))), 'no token, not even part of one, in the audit log')

  // With the token: the change applies, and is audited with its outcome.
  const r = await rawRequest(admin.url, '/config/reload', { method: 'POST', headers: auth })
  t.equal(r.status, 200)
  t.equal((await rawRequest(mesh, '/app', { headers: { host: 'app' } })).headers['x-set'], 'B')
  t.match(audit[audit.length - 1], { level: 'info', msg: 'admin call', method: 'POST', url: '/config/reload', status: 200, auth: 'ok', generation: 2 })
  // A read needs the token on loopback too; an authorised read is not audited, a refused one is.
  const before = audit.length
  t.equal((await rawRequest(admin.url, '/config', { headers: auth })).status, 200)
  t.equal(audit.length, before, 'an authorised read writes no audit line')
  const openRead = await rawRequest(admin.url, '/config/dump')
  t.equal(openRead.status, 401, 'a read without the token is 401, on loopback too')
  t.notMatch(openRead.body, /resources/, 'and shows nothing')
  t.match(audit.pop(), { level: 'warn', msg: 'admin call refused', method: 'GET', url: '/config/dump', status: 401, auth: 'missing' })
  const bad = await rawRequest(admin.url, '/config', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml' }, body: 'kind: [' })
  t.equal(bad.status, 400)
  t.match(audit[audit.length - 1], { method: 'PUT', url: '/config', status: 400, auth: 'ok' })
  t.equal(audit.filter(a => a.msg === 'admin call').length, 2, 'exactly one line per authorised mutating call')
})

t.test('G2: admin paths on the data-plane listeners are 404 NR, never the admin API', async t => {
  const { gw, admin } = await setup(t)
  const logs: Array<Record<string, string>> = []
  const up = await startUpstream('web')
  const dp = await startGateway({
    config: { inputs: [{ file: 'dp.yaml', text: `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge }
spec:
  servers: [{ port: { number: 8080, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web }
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - match: [{ uri: { prefix: /productpage } }]
    route: [{ destination: { host: web } }]
---
${serviceEntry('web', { v1: up.port })}` }] },
    host: '127.0.0.1',
    meshPort: 0,
    portMap: { 8080: 0 },
    accessLog: l => logs.push(JSON.parse(l))
  })
  t.teardown(async () => { await dp.close(); await up.close() })
  const ingress = dp.listeners.find(l => l.kind === 'gateway')!.url
  const mesh = dp.listeners.find(l => l.kind === 'mesh')!.url
  for (const base of [ingress, mesh]) {
    for (const [method, path] of [['POST', '/config/reload'], ['PUT', '/config'], ['GET', '/config'], ['GET', '/config/dump'], ['GET', '/stats/prometheus'], ['POST', '/config/rollback'], ['GET', '/admin/reload']]) {
      const r = await rawRequest(base, path, { method, headers: { host: 'example.com', ...auth } })
      t.equal(r.status, 404, `${method} ${path} on ${base === ingress ? 'the ingress' : 'the mesh'} listener: 404`)
      t.notMatch(r.body, /generation|istio_requests_total/, 'no admin content')
    }
  }
  await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(logs.length >= 14 && logs.every(l => l.response_flags === 'NR'), 'each logged with flag NR')
  t.equal(dp.config.current.generation, 1)
  t.equal(gw.config.current.generation, 1)
  t.equal(up.seen.length, 0, 'nothing reached the upstream')
  // The admin server itself binds loopback by default.
  t.match(admin.url, /^http:\/\/127\.0\.0\.1:\d+$/)
})

t.test('G3: CSRF-able bodies are refused with 415; only JSON or YAML plus the token is accepted', async t => {
  const { gw, admin } = await setup(t)
  const refused: Array<[string, Record<string, string>, string | undefined]> = [
    ['form post', { 'content-type': 'application/x-www-form-urlencoded' }, 'yaml=kind%3A+x'],
    ['multipart form', { 'content-type': 'multipart/form-data; boundary=x' }, '--x\r\nContent-Disposition: form-data; name="yaml"\r\n\r\nx\r\n--x--\r\n'],
    ['text/plain (a CORS simple type)', { 'content-type': 'text/plain' }, routes('T')],
    ['text/plain with charset', { 'content-type': 'text/plain;charset=UTF-8' }, routes('T')],
    ['a body without content type', {}, routes('T')],
    ['application/octet-stream', { 'content-type': 'application/octet-stream' }, routes('T')]
  ]
  for (const [method, url] of [['PUT', '/config'], ['POST', '/config/reload'], ['POST', '/config/validate'], ['POST', '/config/rollback']]) {
    for (const [what, headers, body] of refused) {
      const r = await rawRequest(admin.url, url, { method, headers: { ...auth, ...headers }, body })
      t.equal(r.status, 415, `${what} to ${method} ${url}: 415`)
    }
    // Without the token the same requests are 401: auth comes first.
    const r = await rawRequest(admin.url, url, { method, headers: { 'content-type': 'text/plain' }, body: routes('T') })
    t.equal(r.status, 401, `${method} ${url} without a token: 401`)
  }
  t.equal(gw.config.current.generation, 1, 'nothing applied')
  let r = await rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ yaml: routes('J') }) })
  t.equal(r.status, 200, 'JSON accepted')
  r = await rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml; charset=utf-8' }, body: routes('Y') })
  t.equal(r.status, 200, 'YAML accepted')
  r = await rawRequest(admin.url, '/config/reload', { method: 'POST', headers: auth })
  t.equal(r.status, 200, 'a bodyless POST needs no content type')
  t.equal(gw.config.current.generation, 4)
})

t.test('G4: a burst of 1000 reload calls is rate-limited with 429; the gateway stays healthy', async t => {
  const { gw, admin, mesh } = await setup(t, { reloadLimit: 20, reloadWindowMs: 10_000 })
  const pool = new Pool(admin.url, { connections: 16, pipelining: 1 })
  t.teardown(() => pool.close())
  const statuses = new Map<number, number>()
  let retryAfter: string | undefined
  const total = 1000
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++
      const r = await pool.request({ path: '/config/reload', method: 'POST', headers: auth })
      await r.body.text()
      statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1)
      if (r.statusCode === 429) retryAfter = String(r.headers['retry-after'])
    }
  }
  const served: number[] = []
  let stop = false
  // Data-plane traffic during the burst.
  const traffic = (async () => {
    while (!stop) {
      served.push((await rawRequest(mesh, '/app', { headers: { host: 'app' } })).status)
    }
  })()
  const start = Date.now()
  await Promise.all(Array.from({ length: 16 }, () => worker()))
  stop = true
  await traffic
  t.equal([...statuses.values()].reduce((a, b) => a + b, 0), total, 'every call answered')
  t.equal(statuses.get(200), 20, '20 reloads inside the window')
  t.equal(statuses.get(429), total - 20, 'the rest are 429')
  t.equal(retryAfter, '10', 'with Retry-After')
  t.equal(gw.config.current.generation, 21)
  t.ok(served.length > 0 && served.every(s => s === 200), `${served.length} data-plane requests during the burst, all 200`)
  t.equal((await rawRequest(admin.url, '/ready')).status, 200, 'ready')
  t.ok(Date.now() - start < 60_000, `burst took ${Date.now() - start} ms`)
  // Dry runs (validate) are not rate-limited: they change nothing.
  t.equal((await rawRequest(admin.url, '/config/validate', { method: 'POST', headers: auth })).status, 200)
})

t.test('G5: GET /config/dump and /routes redact TLS keys, tokens, secrets and auth header values', async t => {
  const pki = makePki(['edge.example.com'])
  const up = await startUpstream('app')
  const server = pki.server('edge.example.com')
  const gw = await startGateway({
    config: { inputs: [{ file: 'secret.yaml', text: `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: edge
  annotations:
    team: payments
    api-token: tok-PLAINTEXT-1
    db-password: pw-PLAINTEXT-2
    kubectl.kubernetes.io/last-applied-configuration: '{"spec":{"privateKey":"/keys/PLAINTEXT-3"}}'
spec:
  servers:
  - port: { number: 8443, name: https, protocol: HTTPS }
    hosts: [edge.example.com]
    tls: { mode: SIMPLE, serverCertificate: ${server.cert}, privateKey: ${server.key} }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: app, labels: { client-secret: sec-PLAINTEXT-4 } }
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - match: [{ headers: { authorization: { exact: "Bearer PLAINTEXT-5" }, x-api-key: { exact: PLAINTEXT-6 } } }]
    headers: { request: { set: { x-upstream-token: PLAINTEXT-7, x-plain: visible } } }
    route: [{ destination: { host: app } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: app }
spec:
  host: app
  trafficPolicy:
    tls: { mode: DISABLE, privateKey: /keys/PLAINTEXT-8, clientCertificate: /certs/client.pem, caCertificates: /certs/ca.pem }
---
${serviceEntry('app', { v1: up.port })}` }] },
    host: '127.0.0.1',
    meshPort: 0,
    portMap: { 8443: 0 },
    accessLog: 'off'
  })
  const admin = await startAdmin({ gateway: gw, port: 0, token: TOKEN })
  t.teardown(async () => { await admin.close(); await gw.close(); await up.close() })
  const keyPem = pki.read(server.key).toString('utf8')
  const dump = await rawRequest(admin.url, '/config/dump', { headers: auth })
  t.equal(dump.status, 200)
  for (const secret of ['PLAINTEXT', server.key, keyPem.split('\n')[1], TOKEN]) t.notOk(dump.body.includes(secret), `dump does not contain ${secret.slice(0, 30)}`)
  const d = JSON.parse(dump.body)
  const gwRes = d.resources.find((r: { kind: string }) => r.kind === 'Gateway')
  t.equal(gwRes.spec.servers[0].tls.privateKey, REDACTED, 'TLS private key path redacted')
  t.equal(gwRes.spec.servers[0].tls.serverCertificate, server.cert, 'the certificate (public) is shown')
  t.same(gwRes.metadata.annotations, { team: 'payments', 'api-token': REDACTED, 'db-password': REDACTED, 'kubectl.kubernetes.io/last-applied-configuration': REDACTED })
  const vsRes = d.resources.find((r: { kind: string }) => r.kind === 'VirtualService')
  t.same(vsRes.metadata.labels, { 'client-secret': REDACTED })
  t.same(vsRes.spec.http[0].match[0].headers, { authorization: REDACTED, 'x-api-key': REDACTED })
  t.same(vsRes.spec.http[0].headers.request.set, { 'x-upstream-token': REDACTED, 'x-plain': 'visible' })
  const drRes = d.resources.find((r: { kind: string }) => r.kind === 'DestinationRule')
  t.same(drRes.spec.trafficPolicy.tls, { mode: 'DISABLE', privateKey: REDACTED, clientCertificate: '/certs/client.pem', caCertificates: '/certs/ca.pem' })
  t.same(redact({ credentialName: 'edge-cert', credentials: 'x', password: 'y', nested: [{ 'Set-Cookie': 'z', Cookie: 'c', other: 1 }] }),
    { credentialName: 'edge-cert', credentials: REDACTED, password: REDACTED, nested: [{ 'Set-Cookie': REDACTED, Cookie: REDACTED, other: 1 }] }, 'a secret directory name is shown; values are not')
  t.match(vsRes.source, { file: 'secret.yaml' })
  t.equal(gw.config.current.set.gateways[0].spec.servers[0].tls?.privateKey, server.key, 'the running config itself is untouched')

  const routesDump = await rawRequest(admin.url, '/routes', { headers: auth })
  t.equal(routesDump.status, 200)
  t.notOk(routesDump.body.includes('PLAINTEXT'), '/routes shows matches with secret header values redacted')
  t.match(routesDump.body, /authorization/)
  const cfg = await rawRequest(admin.url, '/config', { headers: auth })
  t.notOk(cfg.body.includes('PLAINTEXT') || cfg.body.includes(server.key), 'GET /config lists resources, no values')
  // Off loopback, the dump needs the token like every call.
  const pub = await startAdmin({ gateway: gw, host: '0.0.0.0', port: 0, token: TOKEN })
  t.teardown(() => pub.close())
  t.equal((await rawRequest(pub.url.replace('0.0.0.0', '127.0.0.1'), '/config/dump')).status, 401)
})

t.test('G6: DNS rebinding: a Host other than localhost, loopback or a configured name is 403 even with the token', async t => {
  const { gw, admin, audit, dir } = await setup(t)
  const port = new URL(admin.url).port
  await writeFile(join(dir, 'b-routes.yaml'), routes('B'))
  const refused: Array<[string, string, string | undefined]> = [
    ['GET', '/config/dump', undefined], ['GET', '/config', undefined], ['GET', '/routes', undefined], ['GET', '/clusters', undefined],
    ['GET', '/stats/prometheus', undefined], ['GET', '/openapi.json', undefined], ['POST', '/config/reload', undefined], ['PUT', '/config', routes('E')]
  ]
  for (const host of ['evil.example', `evil.example:${port}`, `localhost.evil.example:${port}`, `127.0.0.1.nip.io:${port}`, `10.0.0.1:${port}`]) {
    for (const [method, url, body] of refused) {
      const r = await rawRequest(admin.url, url, { method, headers: { ...auth, host, ...(body !== undefined ? { 'content-type': 'application/yaml' } : {}) }, body })
      t.equal(r.status, 403, `Host ${host}, ${method} ${url}, with the token: 403`)
      t.match(r.headers['content-type'], /^application\/json/)
      const parsed = JSON.parse(r.body)
      t.same(Object.keys(parsed), ['error'], 'the JSON error shape')
      t.match(parsed.error, /Host not allowed/)
    }
  }
  t.equal(gw.config.current.generation, 1, 'nothing applied')
  const lines = audit.filter(a => a.msg === 'admin call refused')
  t.equal(lines.length, 5 * refused.length, 'one audit line per refused call, reads included')
  t.ok(lines.every(a => a.level === 'warn' && a.status === 403 && a.auth === 'bad-host'), 'at warn, with auth "bad-host"')
  t.match(lines[0], { method: 'GET', url: '/config/dump', host: 'evil.example' }, 'naming the Host')
  t.ok(audit.every(a => !JSON.stringify(a).includes(TOKEN)), 'the token is not logged')

  // The probes answer whatever the Host (orchestrators address a pod by its IP).
  t.equal((await rawRequest(admin.url, '/ready', { headers: { host: 'evil.example' } })).status, 200, '/ready whatever the Host')
  t.equal((await rawRequest(admin.url, '/live', { headers: { host: 'evil.example' } })).status, 200, '/live whatever the Host')
  t.equal((await rawRequest(admin.url, '/ready', { method: 'POST', headers: { host: 'evil.example' } })).status, 403, 'but nothing else on those paths')

  for (const host of [`localhost:${port}`, 'localhost', '127.0.0.1', `127.0.0.1:${port}`, `127.9.9.9:${port}`, `[::1]:${port}`, '[::1]']) {
    t.equal((await rawRequest(admin.url, '/config/dump', { headers: { ...auth, host } })).status, 200, `Host ${host}: 200`)
  }
  t.equal((await rawRequest(admin.url, '/config/dump', { headers: { host: `localhost:${port}` } })).status, 401, 'an allowed Host still needs the token')

  // Configured names.
  const named = await startAdmin({ gateway: gw, port: 0, token: TOKEN, allowedHosts: ['admin.mesh.internal'] })
  t.teardown(() => named.close())
  t.equal((await rawRequest(named.url, '/config', { headers: { ...auth, host: 'admin.mesh.internal:15000' } })).status, 200, 'a configured name is allowed')
  t.equal((await rawRequest(named.url, '/config', { headers: { ...auth, host: 'evil.example' } })).status, 403, 'others still are not')
  // Bound to a non-loopback address, that address is allowed too (here the wildcard, as in a container).
  const pub = await startAdmin({ gateway: gw, host: '0.0.0.0', port: 0, token: TOKEN })
  t.teardown(() => pub.close())
  const pubUrl = pub.url.replace('0.0.0.0', '127.0.0.1')
  const pubPort = new URL(pubUrl).port
  t.equal((await rawRequest(pubUrl, '/config', { headers: { ...auth, host: `0.0.0.0:${pubPort}` } })).status, 200, 'the bind address')
  t.equal((await rawRequest(pubUrl, '/config', { headers: { ...auth, host: `localhost:${pubPort}` } })).status, 200, 'localhost (a published port)')
  t.equal((await rawRequest(pubUrl, '/config', { headers: { ...auth, host: 'evil.example' } })).status, 403)

  // fetch sets Host from the URL, as a browser does: localhost is the name the API is reached by.
  const viaFetch = await fetch(`http://localhost:${port}/config`, { headers: auth })
  t.equal(viaFetch.status, 200, 'fetch to http://localhost:port with the token')
})
