import { readFileSync, readdirSync } from 'node:fs'
import { createServer, request as httpRequest, type Server } from 'node:http'
import { type AddressInfo, type Socket, connect, createServer as createTcpServer } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { type RunningService, startService } from '../../demo/bookinfo/index.js'
import type { Problem } from '../../src/config/problem.js'
import { startInlineGateway } from '../helpers/gateway.js'
import { waitForLogs } from '../helpers/wait.js'

// The istio.io security tasks "Authorization on ingress gateway" (authz-ingress), "HTTP traffic"
// (authz-http), "JWT token" (authz-jwt) and "Authorization policies with a deny action"
// (authz-deny), replayed from their published YAML (test/fixtures/istio-tasks/authz-*, sources
// in its README.md) step by step, asserting the status each page says the reader will see.
//
// The pages' Kubernetes workloads have no meshgate equivalent. Each stand-in is a "pod": a
// loopback address of its own (127.0.0.x, its pod IP) where it listens, registered with a
// ServiceEntry and a WorkloadEntry carrying its labels and service account. Its outbound calls
// go through a TCP relay that connects to meshgate's mesh listener from the pod IP, as a
// sidecar's outbound traffic leaves the pod: meshgate knows the caller by that address. This
// is how the mesh identity the pages get from mTLS certificates (`principals`, `source.*`)
// stands in here (docs/security.md#identity-without-kubernetes-service-accounts).

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'istio-tasks')
const FOLDERS = ['authz-ingress', 'authz-http', 'authz-jwt', 'authz-deny']
const used = new Set<string>()

function fixture (path: string): string {
  used.add(path)
  return readFileSync(join(FIXTURES, path), 'utf8')
}

/**
 * What the shell hands `kubectl apply -f - <<EOF`: an unquoted heredoc expands `$NAME`. Every
 * variable the text names must be given (an unset one would silently become empty).
 */
function heredoc (text: string, vars: Record<string, string>): string {
  return text.replace(/\$([A-Z_][A-Z0-9_]*)/g, (_m, name: string) => {
    const v = vars[name]
    if (v === undefined) throw new Error(`$${name} is not set`)
    return v
  })
}

/** `kubectl apply -n NS`: each document without a namespace gets NS. */
function inNamespace (text: string, ns: string): string {
  return text.split(/^---$/m).map(doc => /^ {2}namespace:/m.test(doc) ? doc : doc.replace(/^metadata:\n/m, `metadata:\n  namespace: ${ns}\n`)).join('---')
}

function assertLoads (t: Test, problems: readonly Problem[], what: string): void {
  const bad = problems.filter(p => p.severity === 'Error' || p.code === 'MG0003' || p.code === 'MG0012')
  t.same(bad.map(p => `${p.code} ${p.path ?? ''}: ${p.message}`), [], `${what}: no errors, nothing "not supported"`)
}

type Gw = Awaited<ReturnType<typeof startInlineGateway>>

/** One `kubectl apply` of a page step: resources of the same kind, namespace and name are replaced. */
async function apply (t: Test, gw: Gw, text: string, what: string): Promise<void> {
  const gen = await gw.config.applyText(text, 'merge', `istio-tasks/${what}`)
  assertLoads(t, gen.problems, what)
}

// ------------------------------------------------------------------ stand-ins

interface Listening { ip: string; port: number; close: () => Promise<void> }

function closer (server: Server | ReturnType<typeof createTcpServer>, sockets: Set<Socket>): () => Promise<void> {
  return () => new Promise(resolve => { for (const s of sockets) s.destroy(); server.close(() => resolve()) })
}

/**
 * A pod's outbound side: a TCP relay on the pod IP whose connections reach the mesh listener
 * from that IP (set `target.mesh` once the gateway listens). Used as the pod's HTTP proxy.
 */
async function outbound (ip: string, target: { mesh?: string }): Promise<Listening> {
  const sockets = new Set<Socket>()
  const server = createTcpServer(sock => {
    const m = new URL(target.mesh!)
    const up = connect({ host: m.hostname, port: Number(m.port), localAddress: ip })
    for (const s of [sock, up]) {
      sockets.add(s)
      s.on('error', () => { sock.destroy(); up.destroy() })
      s.on('close', () => { sockets.delete(s); sock.destroy(); up.destroy() })
    }
    sock.pipe(up).pipe(sock)
  })
  await new Promise<void>(resolve => server.listen(0, ip, resolve))
  return { ip, port: (server.address() as AddressInfo).port, close: closer(server, sockets) }
}

/** httpbin's endpoints the pages call: /ip, /headers, /get (GET only), /post (POST only). */
async function httpbin (ip: string): Promise<Listening & { seen: Array<{ method: string; url: string; headers: Record<string, unknown> }> }> {
  const seen: Array<{ method: string; url: string; headers: Record<string, unknown> }> = []
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
      const path = (req.url ?? '/').split('?')[0]
      const json = (status: number, body: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)) }
      if (path === '/ip') json(200, { origin: req.socket.remoteAddress })
      else if (path === '/headers') json(200, { headers: req.headers })
      else if (path === '/get' || path === '/post') {
        if (req.method !== (path === '/get' ? 'GET' : 'POST')) json(405, {})
        else json(200, { headers: req.headers, url: req.url })
      } else json(404, {})
    })
  })
  server.on('connection', s => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>(resolve => server.listen(0, ip, resolve))
  return { ip, port: (server.address() as AddressInfo).port, seen, close: closer(server, sockets) }
}

/** A Kubernetes Service and the Pods behind it, as a ServiceEntry and WorkloadEntries. */
function workload (name: string, namespace: string, servicePort: number, pods: Array<{ ip: string; port: number; version?: string; serviceAccount: string }>): string {
  const entries = pods.map((p, i) => `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}-${p.version ?? i}, namespace: ${namespace} }
spec:
  address: ${p.ip}
  ports: { http: ${p.port} }
  labels: { app: ${name}${p.version !== undefined ? `, version: ${p.version}` : ''} }
  serviceAccount: ${p.serviceAccount}
`).join('')
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  hosts: [${name}]
  location: MESH_INTERNAL
  ports: [{ number: ${servicePort}, name: http, protocol: HTTP }]
  resolution: STATIC
  workloadSelector: { labels: { app: ${name} } }
${entries}`
}

/** A pod that only sends (the sleep pod of the pages): a WorkloadEntry naming its address and service account. */
function clientPod (name: string, namespace: string, ip: string): string {
  return `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  address: ${ip}
  labels: { app: ${name} }
  serviceAccount: ${name}
`
}

interface Answer { status: number; body: string; headers: Record<string, unknown> }

/**
 * `curl URL` from a pod: through its sidecar (the mesh listener), from the pod IP, with the
 * URL's authority as Host. `localAddress` also serves the ingress tests (a client's address).
 */
function curl (via: string, url: string, opts: { from: string; method?: string; headers?: Record<string, string> }): Promise<Answer> {
  const proxy = new URL(via)
  const u = new URL(url)
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: proxy.hostname,
      port: Number(proxy.port),
      method: opts.method ?? 'GET',
      path: u.pathname + u.search,
      headers: { host: u.host, ...opts.headers },
      localAddress: opts.from,
      agent: false
    }, res => {
      let body = ''
      res.on('data', c => { body += String(c) })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
    })
    req.on('error', reject)
    req.end()
  })
}

const lastLog = async (gw: Gw, n: number): Promise<Record<string, string>> => { await waitForLogs(gw.logs, n); return gw.logs[n - 1] }

// ------------------------------------------------------------------ authz-ingress

for (const variant of ['ipBlocks', 'remoteIpBlocks'] as const) {
  t.test(`authorization on the ingress gateway (${variant}): allow list, then deny list, by client IP`, async t => {
    const file = variant === 'ipBlocks' ? 'ipblocks' : 'remoteipblocks'
    const bin = await httpbin('127.0.0.21')
    t.teardown(() => bin.close())
    // "Expose httpbin through an ingress gateway": kubectl apply -f httpbin-gateway.yaml -n foo.
    // remoteIpBlocks: an HTTP load balancer in front adds X-Forwarded-For, and the gateway
    // trusts one proxy hop (the page's gatewayTopology.numTrustedProxies: 1).
    const gw = await startInlineGateway('', {
      meshPort: null,
      gatewayPorts: [80],
      ...(variant === 'remoteIpBlocks' ? { numTrustedProxies: 1 } : {}),
      config: { inputs: [{ file: 'registry.yaml', text: workload('httpbin', 'foo', 8000, [{ ip: bin.ip, port: bin.port, serviceAccount: 'httpbin' }]) }, { file: 'httpbin-gateway.yaml', text: inNamespace(fixture('authz-ingress/httpbin-gateway.yaml'), 'foo') }] }
    })
    t.teardown(() => gw.close())
    assertLoads(t, gw.problems, 'httpbin-gateway.yaml -n foo')
    // The client: on its own address (ipBlocks), or behind the load balancer, which connects
    // from its address and names the client (the page's example 192.168.10.15) in X-Forwarded-For.
    const client: { from: string; headers?: Record<string, string> } = variant === 'ipBlocks'
      ? { from: '127.0.0.31' }
      : { from: '127.0.0.32', headers: { 'x-forwarded-for': '192.168.10.15' } }
    const get = async (): Promise<number> => (await curl(gw.ingress, `${gw.ingress}/headers`, client)).status
    t.equal(await get(), 200, 'curl "$INGRESS_HOST:$INGRESS_PORT"/headers → 200')

    await apply(t, gw, fixture(`authz-ingress/${file}.yaml`), `authz-ingress/${file}.yaml`)
    t.equal(await get(), 403, 'only 1.2.3.4 and 5.6.7.0/24 are allowed: denied')
    const denied = await lastLog(gw, 2)
    t.equal(denied.response_code_details, 'rbac_access_denied_matched_policy[none]')

    // "Assign your original client IP address to an env variable … find it in the logs".
    const CLIENT_IP = variant === 'ipBlocks' ? denied.downstream_remote_address.replace(/:\d+$/, '') : denied.x_forwarded_for.split(',')[0].trim()
    t.equal(CLIENT_IP, variant === 'ipBlocks' ? '127.0.0.31' : '192.168.10.15')

    await apply(t, gw, heredoc(fixture(`authz-ingress/${file}-client-ip.yaml`), { CLIENT_IP }), `authz-ingress/${file}-client-ip.yaml`)
    t.equal(await get(), 200, 'the client IP added to the allow list: allowed')
    const other = await curl(gw.ingress, `${gw.ingress}/headers`, variant === 'ipBlocks' ? { from: '127.0.0.33' } : { from: '127.0.0.32', headers: { 'x-forwarded-for': '192.168.10.16' } })
    t.equal(other.status, 403, 'another client is still denied')

    await apply(t, gw, heredoc(fixture(`authz-ingress/${file}-deny.yaml`), { CLIENT_IP }), `authz-ingress/${file}-deny.yaml`)
    const deny = await curl(gw.ingress, `${gw.ingress}/headers`, client)
    t.equal(deny.status, 403, 'action DENY for the client IP: denied')
    t.equal(deny.body, 'RBAC: access denied')
    const line = await lastLog(gw, 5)
    t.equal(line.response_flags, '-')
    t.equal(line.response_code_details, 'rbac_access_denied_matched_policy[ns[istio-system]-policy[ingress-policy]-rule[0]]')
    // "You could use an online proxy service to access the ingress gateway using a different client IP".
    t.equal((await curl(gw.ingress, `${gw.ingress}/headers`, variant === 'ipBlocks' ? { from: '127.0.0.33' } : { from: '127.0.0.32', headers: { 'x-forwarded-for': '192.168.10.16' } })).status, 200, 'a different client IP is allowed')
    t.equal(bin.seen.length, 3, 'only the allowed requests reached httpbin')
  })
}

// ------------------------------------------------------------------ authz-http

t.test('HTTP traffic: allow-nothing, then productpage, details, reviews and ratings viewers', async t => {
  const mesh: { mesh?: string } = {}
  const ip = { productpage: '127.0.0.11', details: '127.0.0.12', 'reviews-v1': '127.0.0.13', 'reviews-v2': '127.0.0.14', 'reviews-v3': '127.0.0.15', ratings: '127.0.0.16' }
  const relays = await Promise.all(Object.values(ip).map(a => outbound(a, mesh)))
  t.teardown(async () => { await Promise.all(relays.map(r => r.close())) })
  const proxy = (a: string): { host: string; port: number } => { const r = relays.find(x => x.ip === a)!; return { host: r.ip, port: r.port } }
  // The Bookinfo services, each calling its peers by name through its pod's sidecar.
  const svc: RunningService[] = [
    await startService('productpage', { host: ip.productpage, port: 0, proxy: proxy(ip.productpage) }),
    await startService('details', { host: ip.details, port: 0 }),
    ...await Promise.all((['v1', 'v2', 'v3'] as const).map(v => startService('reviews', { host: ip[`reviews-${v}`], port: 0, version: v, podname: `reviews-${v}`, proxy: proxy(ip[`reviews-${v}`]) }))),
    await startService('ratings', { host: ip.ratings, port: 0 })
  ]
  t.teardown(async () => { await Promise.all(svc.map(s => s.close())) })
  const port = (a: string): number => svc.find(s => s.host === a)!.port
  const registry = [
    workload('productpage', 'default', 9080, [{ ip: ip.productpage, port: port(ip.productpage), version: 'v1', serviceAccount: 'bookinfo-productpage' }]),
    workload('details', 'default', 9080, [{ ip: ip.details, port: port(ip.details), version: 'v1', serviceAccount: 'bookinfo-details' }]),
    workload('reviews', 'default', 9080, (['v1', 'v2', 'v3'] as const).map(v => ({ ip: ip[`reviews-${v}`], port: port(ip[`reviews-${v}`]), version: v, serviceAccount: 'bookinfo-reviews' }))),
    workload('ratings', 'default', 9080, [{ ip: ip.ratings, port: port(ip.ratings), version: 'v1', serviceAccount: 'bookinfo-ratings' }])
  ].join('---\n')
  const gw = await startInlineGateway('', {
    meshPort: 0,
    gatewayPorts: [80],
    config: { inputs: [{ file: 'registry.yaml', text: registry }, { file: 'bookinfo-gateway.yaml', text: fixture('authz-http/bookinfo-gateway.yaml') }] }
  })
  t.teardown(() => gw.close())
  mesh.mesh = gw.mesh
  assertLoads(t, gw.problems, 'Bookinfo and bookinfo-gateway.yaml')
  const page = (): Promise<Answer> => curl(gw.ingress, `${gw.ingress}/productpage`, { from: '127.0.0.1' })
  const before = await page()
  t.equal(before.status, 200)
  t.match(before.body, 'Book Details')
  t.match(before.body, 'Book Reviews')

  const step = async (file: string): Promise<void> => { await apply(t, gw, fixture(`authz-http/${file}`), `authz-http/${file}`) }
  await step('allow-nothing.yaml')
  const nothing = await page()
  t.equal(nothing.status, 403)
  t.equal(nothing.body, 'RBAC: access denied', 'You should see "RBAC: access denied"')

  await step('productpage-viewer.yaml')
  const viewer = await page()
  t.equal(viewer.status, 200, 'Now you should see the "Bookinfo Sample" page')
  t.match(viewer.body, 'Error fetching product details')
  t.match(viewer.body, 'Error fetching product reviews')
  const post = await curl(gw.ingress, `${gw.ingress}/productpage`, { from: '127.0.0.1', method: 'POST' })
  t.equal(post.status, 403, 'productpage-viewer allows GET only')

  await step('details-viewer.yaml')
  await step('reviews-viewer.yaml')
  // "Book Details" and "Book Reviews", but "Ratings service currently unavailable" (v2 and v3 call ratings).
  // reviews is load balanced over v1, v2 and v3: refresh until each has served (bounded).
  const seen = new Set<string>()
  for (let i = 0; i < 40 && seen.size < 3; i++) {
    const p = await page()
    t.equal(p.status, 200)
    t.notMatch(p.body, 'Error fetching product details')
    t.notMatch(p.body, 'Error fetching product reviews')
    const pod = /Reviews served by:\s*(reviews-v\d)/.exec(p.body)?.[1] ?? '?'
    seen.add(pod)
    if (pod !== 'reviews-v1') t.match(p.body, 'Ratings service is currently unavailable', `${pod}: ratings denied to reviews`)
  }
  t.same([...seen].sort(), ['reviews-v1', 'reviews-v2', 'reviews-v3'], 'every reviews version served a page')
  // Nobody but productpage may call details: the sleep-like caller at an unknown address is denied.
  const stranger = await curl(gw.mesh, 'http://details:9080/details/0', { from: '127.0.0.19' })
  t.equal(stranger.status, 403, 'details from an address no WorkloadEntry names: denied')
  const asReviews = await curl(gw.mesh, 'http://details:9080/details/0', { from: ip['reviews-v2'] })
  t.equal(asReviews.status, 403, 'details from reviews (bookinfo-reviews): denied')

  await step('ratings-viewer.yaml')
  const colours = new Set<string>()
  for (let i = 0; i < 40 && colours.size < 2; i++) {
    const p = await page()
    t.equal(p.status, 200)
    t.notMatch(p.body, 'Ratings service is currently unavailable')
    for (const m of p.body.matchAll(/text-(black|red)-500/g)) colours.add(m[1])
  }
  t.same([...colours].sort(), ['black', 'red'], 'You should see the "black" and "red" ratings')
  // The mesh hops were checked with the callers' identities: details, reviews and ratings
  // answered the calls of their allowed principals.
  const meshLines = gw.logs.filter(l => l.authority === 'ratings:9080' && l.response_code === '200')
  t.ok(meshLines.length > 0, 'ratings answered reviews through the mesh')
})

// ------------------------------------------------------------------ authz-jwt

/** The JWKS at the path the page's jwksUri names, served unchanged from the fixture. */
async function githubRaw (): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  const jwks = fixture('authz-jwt/jwks.json')
  let hits = 0
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    if (req.url !== '/security/tools/jwt/samples/jwks.json') { res.writeHead(404); res.end(); return }
    hits++
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(jwks)
  })
  server.on('connection', s => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits, close: closer(server, sockets) }
}

type Curl = (path: string, opts?: { method?: string; headers?: Record<string, string> }) => Promise<Answer>

/** httpbin and sleep in namespace foo; `sent` counts sleep's requests (one access-log line each). */
async function fooNamespace (t: Test): Promise<{ gw: Gw; bin: Awaited<ReturnType<typeof httpbin>>; sleep: Curl; sent: () => number }> {
  const bin = await httpbin('127.0.0.21')
  t.teardown(() => bin.close())
  const registry = workload('httpbin', 'foo', 8000, [{ ip: bin.ip, port: bin.port, version: 'v1', serviceAccount: 'httpbin' }]) + '---\n' + clientPod('sleep', 'foo', '127.0.0.22')
  const gw = await startInlineGateway('', { meshPort: 0, gatewayPorts: [], config: { inputs: [{ file: 'registry.yaml', text: registry }] } })
  t.teardown(() => gw.close())
  assertLoads(t, gw.problems, 'httpbin and sleep in foo')
  let n = 0
  const sleep = (path: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> => {
    n++
    return curl(gw.mesh, `http://httpbin.foo:8000${path}`, { from: '127.0.0.22', ...opts })
  }
  // "Verify that sleep successfully communicates with httpbin".
  t.equal((await sleep('/ip')).status, 200, 'sleep → httpbin.foo:8000/ip: 200')
  return { gw, bin, sleep, sent: () => n }
}

t.test('JWT token: a RequestAuthentication, then an AuthorizationPolicy on requestPrincipals and a list-typed claim', async t => {
  const github = await githubRaw()
  t.teardown(() => github.close())
  const { gw, bin, sleep, sent } = await fooNamespace(t)
  // The page's tokens (Istio's demo key; they expire in 2118 and 2082).
  const TOKEN = fixture('authz-jwt/demo.jwt').trim()
  const TOKEN_GROUP = fixture('authz-jwt/groups-scope.jwt').trim()
  const claims = (tok: string): Record<string, unknown> => JSON.parse(Buffer.from(tok.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>
  t.same(claims(TOKEN), { exp: 4685989700, foo: 'bar', iat: 1532389700, iss: 'testing@secure.istio.io', sub: 'testing@secure.istio.io' })
  t.same(claims(TOKEN_GROUP).groups, ['group1', 'group2'])
  const bearer = (tok: string): { headers: Record<string, string> } => ({ headers: { authorization: `Bearer ${tok}` } })

  // The page's `{{< github_file >}}` is the raw-file URL of the Istio release; here, the
  // loopback server holding the same file at the same path.
  await apply(t, gw, fixture('authz-jwt/jwt-example.yaml').replace('{{< github_file >}}', github.url), 'authz-jwt/jwt-example.yaml')
  const invalid = await sleep('/headers', bearer('invalidToken'))
  t.equal(invalid.status, 401, 'a request with an invalid JWT is denied')
  t.equal(invalid.body, 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections')
  t.equal((await sleep('/headers')).status, 200, 'a request without a JWT is allowed: there is no authorization policy')
  t.equal((await sleep('/headers', bearer(TOKEN))).status, 200, 'a valid JWT passes')
  t.equal(bin.seen.at(-1)?.headers.authorization, undefined, 'the token is not forwarded (forwardOriginalToken unset)')

  await apply(t, gw, fixture('authz-jwt/require-jwt.yaml'), 'authz-jwt/require-jwt.yaml')
  t.equal((await sleep('/headers', bearer(TOKEN))).status, 200, 'a request with a valid JWT is allowed')
  const none = await sleep('/headers')
  t.equal(none.status, 403, 'a request without a JWT is denied')
  t.equal(none.body, 'RBAC: access denied')

  await apply(t, gw, fixture('authz-jwt/require-jwt-groups.yaml'), 'authz-jwt/require-jwt-groups.yaml')
  t.equal((await sleep('/headers', bearer(TOKEN_GROUP))).status, 200, 'a JWT whose groups claim includes group1 is allowed')
  const noGroups = await sleep('/headers', bearer(TOKEN))
  t.equal(noGroups.status, 403, 'a JWT without the groups claim is rejected')
  const line = await lastLog(gw, sent())
  t.equal(line.response_code_details, 'rbac_access_denied_matched_policy[none]')
  t.equal(github.hits(), 1, 'the JWKS was fetched once and served from the cache after')
  const metrics = await gw.metrics.registry.metrics()
  t.match(metrics, /envoy_http_jwt_authn_denied 1\b/)
  t.match(metrics, /envoy_http_jwt_authn_allowed 4\b/)
})

// ------------------------------------------------------------------ authz-deny

t.test('Explicit deny: DENY GET, then GET unless x-token is admin, then an ALLOW on /ip', async t => {
  const { gw, sleep, sent } = await fooNamespace(t)
  const step = async (file: string): Promise<void> => { await apply(t, gw, fixture(`authz-deny/${file}`), `authz-deny/${file}`) }
  await step('deny-method-get.yaml')
  const get = await sleep('/get')
  t.equal(get.status, 403, 'GET requests are denied')
  t.equal((await lastLog(gw, sent())).response_code_details, 'rbac_access_denied_matched_policy[ns[foo]-policy[deny-method-get]-rule[0]]')
  t.equal((await sleep('/post', { method: 'POST' })).status, 200, 'POST requests are allowed')

  await step('deny-method-get-x-token.yaml')
  t.equal((await sleep('/get', { headers: { 'x-token': 'admin' } })).status, 200, 'GET with x-token: admin is allowed')
  t.equal((await sleep('/get', { headers: { 'x-token': 'guest' } })).status, 403, 'GET with x-token: guest is denied')
  t.equal((await sleep('/get')).status, 403, 'GET without x-token is denied (the header is not admin)')

  await step('allow-path-ip.yaml')
  t.equal((await sleep('/ip', { headers: { 'x-token': 'guest' } })).status, 403, '/ip with x-token: guest: the DENY policy takes precedence')
  t.equal((await sleep('/ip', { headers: { 'x-token': 'admin' } })).status, 200, '/ip with x-token: admin: allowed by allow-path-ip')
  const notIp = await sleep('/get', { headers: { 'x-token': 'admin' } })
  t.equal(notIp.status, 403, '/get with x-token: admin: denied, it matches no ALLOW policy')
  t.equal((await lastLog(gw, sent())).response_code_details, 'rbac_access_denied_matched_policy[none]')
})

t.test('every fixture file of the security tasks is exercised by a test above', async t => {
  const all = FOLDERS.flatMap(d => readdirSync(join(FIXTURES, d)).map(f => `${d}/${f}`))
  t.same(all.filter(f => !used.has(f)).sort(), [])
  t.equal(all.length, 22)
})
