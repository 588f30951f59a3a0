import t, { type Test } from 'tap'
import { Agent, request as httpRequest } from 'node:http'
import { readFileSync } from 'node:fs'
import { startGateway } from '../../plugins/gateway.js'
import { seeded } from '../helpers/random.js'
import { serviceEntry, startUpstream, waitForLogs, type Upstream } from '../helpers/upstream.js'

// The istio.io request-routing and traffic-shifting tasks, with the Bookinfo sample files
// unchanged (test/fixtures/istio-samples) beside a ServiceEntry that registers three real
// loopback servers as reviews v1, v2 and v3. Requests go through the mesh listener with
// Host: reviews:9080, as productpage's calls do.

const sample = (name: string): { file: string; text: string } => ({
  file: `test/fixtures/istio-samples/${name}`,
  text: readFileSync(new URL(`../fixtures/istio-samples/${name}`, import.meta.url), 'utf8')
})

let versions: Upstream[] = []
t.before(async () => {
  versions = await Promise.all(['v1', 'v2', 'v3'].map(v => startUpstream(v)))
})
t.teardown(async () => { await Promise.all(versions.map(u => u.close())) })

async function withSample (t: Test, vsFile: string | undefined, seed: number): Promise<{ get: (headers?: Record<string, string>) => Promise<string>; logs: Array<Record<string, string>> }> {
  const [v1, v2, v3] = versions
  const logs: Array<Record<string, string>> = []
  const gw = await startGateway({
    config: {
      inputs: [
        { file: 'services.yaml', text: serviceEntry('reviews', { v1: v1.port, v2: v2.port, v3: v3.port }) },
        sample('destination-rule-all.yaml'),
        ...(vsFile !== undefined ? [sample(vsFile)] : [])
      ]
    },
    host: '127.0.0.1',
    meshPort: 0,
    random: seeded(seed),
    accessLog: line => logs.push(JSON.parse(line))
  })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(async () => { agent.destroy(); await gw.close() })
  const mesh = new URL(gw.listeners.find(l => l.kind === 'mesh')!.url)
  /** GET /reviews/0 through the mesh; the version that answered (or the status when not 200). */
  const get = (headers: Record<string, string> = {}): Promise<string> => new Promise((resolve, reject) => {
    const req = httpRequest({ host: mesh.hostname, port: Number(mesh.port), path: '/reviews/0', headers: { host: 'reviews:9080', ...headers }, agent }, res => {
      let body = ''
      res.on('data', c => { body += String(c) })
      res.on('end', () => resolve(res.statusCode === 200 ? String(JSON.parse(body).upstream) : `status ${res.statusCode}`))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
  return { get, logs }
}

async function counts (get: () => Promise<string>, n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const v = await get()
    out[v] = (out[v] ?? 0) + 1
  }
  return out
}

t.test('request routing: virtual-service-all-v1.yaml sends every request to v1', async t => {
  const { get, logs } = await withSample(t, 'virtual-service-all-v1.yaml', 1)
  t.same(await counts(get, 30), { v1: 30 })
  t.same(await counts(() => get({ 'end-user': 'jason' }), 10), { v1: 10 }, 'whoever is logged in')
  await waitForLogs(logs, 40, 5000)
  t.same([...new Set(logs.map(l => l.upstream_cluster))], ['outbound|9080|v1|reviews.default.svc.cluster.local'])
  t.same([...new Set(logs.map(l => l.authority))], ['reviews:9080'])
})

t.test('request routing: virtual-service-reviews-test-v2.yaml sends jason to v2, everyone else to v1', async t => {
  const { get, logs } = await withSample(t, 'virtual-service-reviews-test-v2.yaml', 2)
  t.same(await counts(() => get({ 'end-user': 'jason' }), 20), { v2: 20 }, 'jason sees v2 (black stars)')
  t.same(await counts(() => get(), 20), { v1: 20 }, 'not logged in: v1')
  t.same(await counts(() => get({ 'end-user': 'bob' }), 10), { v1: 10 }, 'another user: v1')
  t.same(await counts(() => get({ 'end-user': 'Jason' }), 5), { v1: 5 }, 'the match is exact and case-sensitive')
  await waitForLogs(logs, 55, 5000)
  t.equal(logs[0].upstream_cluster, 'outbound|9080|v2|reviews.default.svc.cluster.local')
  t.equal(logs[20].upstream_cluster, 'outbound|9080|v1|reviews.default.svc.cluster.local')
})

t.test('traffic shifting: virtual-service-reviews-50-v3.yaml splits v1/v3 about 50/50', async t => {
  const { get } = await withSample(t, 'virtual-service-reviews-50-v3.yaml', 3)
  const c = await counts(get, 400)
  t.same(Object.keys(c).sort(), ['v1', 'v3'], `only v1 and v3: ${JSON.stringify(c)}`)
  t.ok(c.v1 >= 140 && c.v1 <= 260, `v1 ${c.v1} of 400 (expected about 200)`)
  t.equal(c.v1 + c.v3, 400)
})

t.test('traffic shifting: virtual-service-reviews-90-10.yaml sends about 10% to v2', async t => {
  const { get } = await withSample(t, 'virtual-service-reviews-90-10.yaml', 4)
  const c = await counts(get, 400)
  t.same(Object.keys(c).sort(), ['v1', 'v2'], `only v1 and v2: ${JSON.stringify(c)}`)
  t.ok(c.v2 >= 15 && c.v2 <= 75, `v2 ${c.v2} of 400 (expected about 40)`)
  t.equal(c.v1 + c.v2, 400)
})

t.test('traffic shifting: virtual-service-reviews-v2-v3.yaml splits v2/v3 and never picks v1', async t => {
  const { get } = await withSample(t, 'virtual-service-reviews-v2-v3.yaml', 5)
  const c = await counts(get, 200)
  t.same(Object.keys(c).sort(), ['v2', 'v3'], `only v2 and v3: ${JSON.stringify(c)}`)
  t.ok(c.v2 >= 60 && c.v2 <= 140, `v2 ${c.v2} of 200 (expected about 100)`)
})

t.test('without a reviews VirtualService, requests rotate among v1, v2 and v3', async t => {
  const { get } = await withSample(t, undefined, 6)
  const c = await counts(get, 90)
  t.same(Object.keys(c).sort(), ['v1', 'v2', 'v3'], JSON.stringify(c))
})
