import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import t from 'tap'
import { startAdmin } from '../../../routes/admin.js'
import { startInlineGateway } from '../../helpers/gateway.js'
import { rawRequest } from '../../helpers/raw-http.js'
import { GATEWAY, versionSubsets, virtualService } from '../../helpers/yaml.js'

// One decision for every entry point: ordinary requests, upgrades and GET /routes/explain pick
// the same route and cluster for the same request (a property over generated requests), and
// the disagreements the three old copies had are fixed.

/** An upstream that answers requests with what it saw, and upgrades with 101 then closes. */
async function echoUpstream (): Promise<{ server: Server; port: number; seen: Array<{ url?: string; headers: IncomingMessage['headers']; upgrade: boolean }> }> {
  const seen: Array<{ url?: string; headers: IncomingMessage['headers']; upgrade: boolean }> = []
  const server = createServer((req, res) => {
    seen.push({ url: req.url, headers: req.headers, upgrade: false })
    req.resume()
    res.end('ok')
  })
  server.on('upgrade', (req, socket) => {
    seen.push({ url: req.url, headers: req.headers, upgrade: true })
    socket.end('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port, seen }
}

/** An upgrade request; resolves with the status the gateway answered. */
function upgrade (base: string, path: string, headers: Record<string, string>): Promise<number> {
  const u = new URL(base)
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: Number(u.port), path, agent: false, headers: { connection: 'upgrade', upgrade: 'websocket', ...headers } })
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve(res.statusCode ?? 0) })
    req.on('response', res => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
    req.end()
  })
}

function config (port: number, subsets = 'v1, v2'): string {
  const se = (host: string): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${host} }
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints:
  - { address: 127.0.0.1, ports: { http: ${port} }, labels: { app: ${host}, version: v1 } }
  - { address: 127.0.0.2, ports: { http: ${port} }, labels: { app: ${host}, version: v2 } }`
  return `${se('alpha')}
---
${se('beta')}
---
${versionSubsets('alpha', subsets.split(', '))}---
${GATEWAY}---
${virtualService(`  - name: jason
    match: [{ headers: { end-user: { exact: jason } }, uri: { prefix: /api } }]
    route: [{ destination: { host: alpha, subset: v2 } }]
  - name: api
    match: [{ uri: { prefix: /api } }]
    rewrite: { uri: /v1/api }
    route: [{ destination: { host: alpha, subset: v1 } }]
  - name: exact
    match: [{ uri: { exact: /a } }]
    route: [{ destination: { host: beta } }]
  - name: regex
    match: [{ uri: { regex: "/items/[0-9]+" } }]
    route: [{ destination: { host: alpha, subset: v2 } }]
  - name: teapot
    match: [{ uri: { prefix: /teapot } }]
    directResponse: { status: 418, body: { string: short and stout } }
`, { name: 'alpha', hosts: ['alpha', 'shop.example.com'], gateways: ['gw', 'mesh'] })}`
}

interface Seen { route: string; cluster: string; status: string }

t.test('HTTP, upgrade and explain agree, for generated requests', async t => {
  const up = await echoUpstream()
  const gw = await startInlineGateway(config(up.port))
  const admin = await startAdmin({ gateway: gw, port: 0, token: 'tok' })
  t.teardown(async () => { await admin.close(); await gw.close(); await new Promise(resolve => up.server.close(resolve)) })
  const auth = { authorization: 'Bearer tok' }
  let n = 0
  const byId = async (id: string): Promise<Seen> => {
    for (let i = 0; i < 200; i++) {
      const l = gw.logs.find(x => x.request_id === id)
      if (l !== undefined) return { route: l.route_name, cluster: l.upstream_cluster, status: l.response_code }
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    throw new Error(`no access-log line for ${id}`)
  }
  const paths = fc.constantFrom('/api', '/api/x?y=1', '/a', '/a/', '/x/../a', '/items/12', '/items/x', '/teapot', '/teapot/../api/z', '/nothing', '/./api//q')
  const hosts = fc.constantFrom('alpha', 'alpha:9080', 'beta', 'shop.example.com', 'unknown.example')
  const users = fc.constantFrom(undefined, 'jason', 'alice')
  const listeners = fc.constantFrom('mesh', '8080')
  await fc.assert(fc.asyncProperty(paths, hosts, users, listeners, async (path, host, user, listener) => {
    const base = listener === 'mesh' ? gw.mesh : gw.ingress
    const headers: Record<string, string> = { host, ...(user !== undefined ? { 'end-user': user } : {}) }
    const id1 = `req-${++n}`
    const id2 = `up-${n}`
    await rawRequest(base, path, { headers: { ...headers, 'x-request-id': id1 } })
    await upgrade(base, path, { ...headers, 'x-request-id': id2 })
    const http = await byId(id1)
    const upg = await byId(id2)
    const q = new URLSearchParams({ listener, authority: host, path })
    if (user !== undefined) q.set('header', `end-user:${user}`)
    const ex = JSON.parse((await rawRequest(admin.url, `/routes/explain?${q.toString()}`, { headers: auth })).body)
    t.equal(upg.route, http.route, `${listener} ${host}${path} ${user ?? ''}: same route for HTTP and upgrade`)
    t.equal(upg.cluster, http.cluster, `${listener} ${host}${path}: same cluster`)
    t.equal(ex.route?.name ?? '-', http.route, `${listener} ${host}${path}: explain names the route`)
    // The cluster a request logs: the serving one, else the primary (UH), else '-' (NR, NC, local replies).
    const d = ex.destinations?.[0]
    const explained = d === undefined ? '-' : d.decision.serves ?? (d.decision.flag === 'NC' ? '-' : d.cluster)
    t.equal(explained, http.cluster, `${listener} ${host}${path}: explain names the cluster`)
    // The status explain predicts: its own for a local reply or an error, 503 when the destination
    // has nothing to serve, else the upstream's answer (this upstream always answers 200).
    const predicted = ex.result === 'forward' ? (d.decision.serves === null ? d.decision.status : 200) : ex.status
    t.equal(String(predicted), http.status, `${listener} ${host}${path}: explain's status`)
  }), { numRuns: 40, seed: 1302 })
})

t.test('the fixed disagreements', async t => {
  const up = await echoUpstream()
  const gw = await startInlineGateway(config(up.port), { pathNormalization: 'MERGE_SLASHES' })
  const admin = await startAdmin({ gateway: gw, port: 0, token: 'tok' })
  t.teardown(async () => { await admin.close(); await gw.close(); await new Promise(resolve => up.server.close(resolve)) })
  const auth = { authorization: 'Bearer tok' }

  // 1. x-forwarded-for: the mesh (a sidecar's outbound side) leaves it alone, the edge appends with ','.
  up.seen.length = 0
  t.equal(await upgrade(gw.mesh, '/api', { host: 'alpha' }), 101)
  t.equal(up.seen[0].headers['x-forwarded-for'], undefined, 'mesh upgrade: no x-forwarded-for added')
  t.equal(await upgrade(gw.mesh, '/api', { host: 'alpha', 'x-forwarded-for': '10.0.0.9' }), 101)
  t.equal(up.seen[1].headers['x-forwarded-for'], '10.0.0.9', 'mesh upgrade: the caller\'s x-forwarded-for as sent')
  t.equal(await upgrade(gw.ingress, '/api', { host: 'shop.example.com', 'x-forwarded-for': '10.0.0.9' }), 101)
  t.equal(up.seen[2].headers['x-forwarded-for'], '10.0.0.9,127.0.0.1', 'edge upgrade: appended, joined with "," like ordinary requests')
  t.equal(up.seen[2].headers['x-forwarded-proto'], 'http', 'edge upgrade: the listener\'s scheme')
  t.equal(up.seen[2].url, '/v1/api', 'upgrade rewritten like an ordinary request')

  // 2. Explain applies the listener's path normalization (MERGE_SLASHES here).
  const ex2 = JSON.parse((await rawRequest(admin.url, '/routes/explain?listener=mesh&authority=alpha&path=//a', { headers: auth })).body)
  t.equal(ex2.route?.name, 'exact', 'explain matched the normalized path /a')
  t.equal(ex2.rewrite.path, '/a', 'and forwards /a')
  const r = await rawRequest(gw.mesh, '//a', { headers: { host: 'alpha' } })
  t.equal(r.status, 200)
  t.equal(gw.logs.at(-1)?.route_name, 'exact', 'and so did the request')

  // 3. Cluster existence comes from the request's snapshot: after a reload drops subset v2, a new
  // upgrade to it is 503 NC at once, though the retiring cluster still exists in the runtime.
  await gw.reload({ inputs: [{ file: 'inline.yaml', text: config(up.port, 'v1') }] })
  t.ok(gw.runtime.cluster('outbound|9080|v2|alpha.default.svc.cluster.local') !== undefined, 'the dropped cluster is retiring, still known to the runtime')
  t.equal(await upgrade(gw.mesh, '/api', { host: 'alpha', 'end-user': 'jason' }), 503, 'upgrade: 503')
  t.equal(gw.logs.at(-1)?.response_flags, 'NC', 'upgrade: NC')
  t.equal((await rawRequest(gw.mesh, '/api', { headers: { host: 'alpha', 'end-user': 'jason' } })).status, 503, 'request: 503')
  t.equal(gw.logs.at(-1)?.response_flags, 'NC', 'request: NC')
  const ex3 = JSON.parse((await rawRequest(admin.url, '/routes/explain?listener=mesh&authority=alpha&path=/api&header=end-user:jason', { headers: auth })).body)
  t.match(ex3.destinations[0].decision, { serves: null, status: 503, flag: 'NC' }, 'explain: NC')

  // 4. A local reply never opens an upstream connection, for upgrades too.
  up.seen.length = 0
  t.equal(await upgrade(gw.mesh, '/teapot', { host: 'alpha' }), 418, 'upgrade answered by the direct response')
  t.equal(up.seen.length, 0, 'nothing reached the upstream')
})
