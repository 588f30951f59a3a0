import t from 'tap'
import { startInlineGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { until } from '../helpers/wait.js'
import { meshRoute, serviceEntry } from '../helpers/yaml.js'

// `resolution: DNS` endpoints through a real gateway (the name resolves, stops resolving and
// comes back), and consistent-hash stickiness end to end (header and generated cookie).

function dnsYaml (name: string, port: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: named }
spec:
  hosts: [named]
  location: MESH_INTERNAL
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  resolution: DNS
  endpoints:
  - address: ${name}
    ports: { http: ${port} }
    labels: { version: v1 }
---
${meshRoute('named')}
`
}

t.test('resolution: DNS — a named endpoint serves while its name resolves (system resolver)', async t => {
  const up = await startUpstream('dns-up')
  const gw = await startInlineGateway(dnsYaml('localhost', up.port), { gatewayPorts: [] })
  t.teardown(async () => { await gw.close(); await up.close() })
  const r = await rawRequest(gw.mesh, '/x', { headers: { host: 'named:9080' } })
  t.equal(r.status, 200, 'localhost resolves and is connected to by name')
  t.equal(JSON.parse(r.body).upstream, 'dns-up')
})

t.test('resolution: DNS — a name that stops resolving leaves the subset (503 UH), and returns', async t => {
  const up = await startUpstream('dns-up')
  let resolves = true
  const lookups: string[] = []
  const lookup = async (name: string): Promise<unknown> => {
    lookups.push(name)
    if (resolves) return { address: '127.0.0.1', family: 4 }
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' })
  }
  const gw = await startInlineGateway(dnsYaml('localhost', up.port), { gatewayPorts: [], dnsLookup: lookup, dnsRefreshMs: 100 })
  t.teardown(async () => { await gw.close(); await up.close() })
  const get = (): Promise<{ status: number; body: string }> => rawRequest(gw.mesh, '/x', { headers: { host: 'named:9080' } })
  t.equal((await get()).status, 200, 'served while the name resolves')
  t.ok(lookups.includes('localhost'), 'the endpoint name is resolved by the health checker')

  resolves = false
  await until('the endpoint to leave its subset', async () => (await get()).status === 503)
  const down = await get()
  t.equal(down.status, 503)
  t.equal(down.body, 'no healthy upstream')
  t.equal(gw.logs.at(-1)?.response_flags, 'UH')

  resolves = true
  await until('the endpoint to come back', async () => (await get()).status === 200)
  t.pass('served again once the name resolves')
})

function hashYaml (lb: string, ports: Record<string, number>): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: app }
spec:
  host: app
  trafficPolicy:
    loadBalancer:
      consistentHash: ${lb}
---
${meshRoute()}
---
${serviceEntry('app', ports)}`
}

async function threeUpstreams (t: { teardown: (fn: () => unknown) => void }): Promise<Record<string, number>> {
  const ports: Record<string, number> = {}
  for (const name of ['a', 'b', 'c']) {
    const up = await startUpstream(name)
    t.teardown(() => up.close())
    ports[name] = up.port
  }
  return ports
}

t.test('consistentHash httpHeaderName: one key always reaches one endpoint; keys spread', async t => {
  const ports = await threeUpstreams(t)
  const gw = await startInlineGateway(hashYaml('{ httpHeaderName: x-user }', ports), { gatewayPorts: [] })
  t.teardown(() => gw.close())
  const served = async (user: string): Promise<string> =>
    JSON.parse((await rawRequest(gw.mesh, '/', { headers: { host: 'app', 'x-user': user } })).body).upstream
  const first = await served('alice')
  for (let i = 0; i < 15; i++) t.equal(await served('alice'), first, 'alice sticks')
  const seen = new Set<string>()
  for (let i = 0; i < 40; i++) seen.add(await served(`user-${i}`))
  t.ok(seen.size >= 2, `different keys spread over endpoints (${[...seen].join(',')})`)
})

t.test('consistentHash httpCookie with ttl: the cookie is generated, set, and then sticks', async t => {
  const ports = await threeUpstreams(t)
  const gw = await startInlineGateway(hashYaml('{ httpCookie: { name: user, ttl: 60s, path: / } }', ports), { gatewayPorts: [] })
  t.teardown(() => gw.close())
  const first = await rawRequest(gw.mesh, '/', { headers: { host: 'app' } })
  t.equal(first.status, 200)
  const setCookie = String(first.headers['set-cookie'])
  t.match(setCookie, /^user=[0-9a-f]+; Max-Age=60; Path=\/; HttpOnly$/, 'cookie generated with the ttl')
  const cookie = setCookie.split(';')[0]
  const servedBy = JSON.parse(first.body).upstream
  for (let i = 0; i < 15; i++) {
    const r = await rawRequest(gw.mesh, '/', { headers: { host: 'app', cookie: `other=1; ${cookie}` } })
    t.equal(JSON.parse(r.body).upstream, servedBy, 'the cookie pins the endpoint that served the first request')
    t.equal(r.headers['set-cookie'], undefined, 'no new cookie once the client has one')
  }
})
