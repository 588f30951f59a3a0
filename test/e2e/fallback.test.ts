import { request as httpRequest, Agent } from 'node:http'
import t from 'tap'
import { startDemo } from '../../demo/demo.js'
import { rawRequest } from '../helpers/upstream.js'
import { sleep } from '../helpers/wait.js'

// The ASM fallback walkthrough against real stand-ins that are really stopped and started.

/** GET reviews through the mesh listener, as productpage does; returns status and podname. */
async function reviews (mesh: string, agent?: Agent): Promise<{ status: number; pod: string }> {
  const u = new URL(mesh)
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: Number(u.port), path: '/reviews/0', headers: { host: 'reviews:9080' }, agent: agent ?? false }, res => {
      let body = ''
      res.on('data', c => { body += c })
      res.on('end', () => {
        let pod = '-'
        try { pod = JSON.parse(body).podname } catch { /* an error body */ }
        resolve({ status: res.statusCode ?? 0, pod })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

async function until (what: string, cond: () => Promise<boolean>, ms = 6000): Promise<number> {
  const start = Date.now()
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for: ${what}`)
    await sleep(50)
  }
  return Date.now() - start
}

t.test('sample 1: v3 falls back to v2 under continuous load, and comes back', async t => {
  const logs: Array<Record<string, string>> = []
  const demo = await startDemo({ freePorts: true, ingressPort: 0, meshPort: 0, scenarios: ['fallback-v3-to-v2'], accessLog: l => logs.push(JSON.parse(l)) })
  t.teardown(() => demo.close())
  for (let i = 0; i < 10; i++) t.equal((await reviews(demo.meshUrl)).pod, 'reviews-v3-local', 'all traffic on v3')

  // Continuous keep-alive load from 4 clients while v3 is killed.
  const agent = new Agent({ keepAlive: true, maxSockets: 4 })
  const results: Array<{ status: number; pod: string }> = []
  let running = true
  const loops = Array.from({ length: 4 }, async () => {
    while (running) results.push(await reviews(demo.meshUrl, agent))
  })
  await sleep(300)
  const killedAt = results.length
  await demo.stop('reviews-v3')
  await sleep(2500)
  running = false
  await Promise.all(loops)
  agent.destroy()
  const after = results.slice(killedAt)
  t.ok(after.length > 20, `load continued (${after.length} requests after the kill)`)
  t.same(results.filter(r => r.status !== 200), [], 'no client saw an error')
  t.equal(after.slice(-10).every(r => r.pod === 'reviews-v2-local'), true, 'served by v2 once v3 is gone')
  const fb = logs.find(l => l.fallback_result === 'fallback cluster is healthy')
  t.match(fb, {
    fallback_path: 'outbound|9080|v3|reviews.default.svc.cluster.local:outbound|9080|v2|reviews.default.svc.cluster.local',
    fallback_final_cluster_name: 'outbound|9080|v2|reviews.default.svc.cluster.local',
    upstream_cluster: 'outbound|9080|v2|reviews.default.svc.cluster.local',
    response_code: '200'
  }, 'fallback logged')

  // Page level: v2's black stars with no error.
  const page = await rawRequest(demo.ingressUrl, '/productpage')
  t.match(page.body, 'reviews-v2-local')
  t.match(page.body, 'text-black-500')

  await demo.start('reviews-v3')
  const back = await until('v3 serves again', async () => (await reviews(demo.meshUrl)).pod === 'reviews-v3-local')
  t.ok(back < 3000, `traffic returned to v3 within ${back} ms of its restart (probe interval 1 s)`)
})

t.test('sample 2: weighted 50/50 with per-destination fallback, no cascade', async t => {
  const logs: Array<Record<string, string>> = []
  const demo = await startDemo({ freePorts: true, ingressPort: 0, meshPort: 0, scenarios: ['fallback-50-50'], accessLog: l => logs.push(JSON.parse(l)) })
  t.teardown(() => demo.close())
  const tally = async (n: number): Promise<Record<string, number>> => {
    const out: Record<string, number> = {}
    for (let i = 0; i < n; i++) {
      const r = await reviews(demo.meshUrl)
      const k = r.status === 200 ? r.pod : String(r.status)
      out[k] = (out[k] ?? 0) + 1
    }
    return out
  }
  let c = await tally(200)
  t.ok((c['reviews-v3-local'] ?? 0) > 70 && (c['reviews-v2-local'] ?? 0) > 70, `all up: about 50/50 v3/v2 ${JSON.stringify(c)}`)
  t.equal(c['reviews-v1-local'], undefined, 'v1 gets nothing while v3 and v2 are up')

  await demo.stop('reviews-v3')
  await until('v3 leaves', async () => { const r = await reviews(demo.meshUrl); return r.status === 200 && r.pod !== 'reviews-v3-local' && (await tally(10))['reviews-v3-local'] === undefined })
  c = await tally(100)
  t.same(c, { 'reviews-v2-local': 100 }, 'v3 down: all served by v2')

  await demo.stop('reviews-v2')
  await until('v2 leaves', async () => (await tally(10))['reviews-v2-local'] === undefined)
  logs.length = 0
  c = await tally(200)
  t.same(Object.keys(c).sort(), ['503', 'reviews-v1-local'], `v3 and v2 down: v1 or 503 ${JSON.stringify(c)}`)
  t.ok(c['503'] > 70 && c['reviews-v1-local'] > 70, 'about half each')
  const uh = logs.filter(l => l.response_code === '503')
  t.ok(uh.length > 0)
  for (const l of uh) {
    t.match(l, {
      fallback_path: 'outbound|9080|v3|reviews.default.svc.cluster.local:outbound|9080|v2|reviews.default.svc.cluster.local',
      fallback_result: 'fallback cluster is unhealthy',
      response_flags: 'UH',
      response_code: '503',
      upstream_cluster: 'outbound|9080|v3|reviews.default.svc.cluster.local',
      fallback_final_cluster_name: '-'
    })
    if (l.fallback_result !== 'fallback cluster is unhealthy') break
  }
  const v1 = logs.filter(l => l.response_code === '200')
  t.ok(v1.every(l => l.fallback_path === 'outbound|9080|v2|reviews.default.svc.cluster.local:outbound|9080|v1|reviews.default.svc.cluster.local'),
    'v1 serves only v2\'s share (the chain never extends from v3 to v1)')
  const body = await rawRequest(demo.meshUrl, '/reviews/0', { headers: { host: 'reviews:9080' } })
  if (body.status === 503) t.equal(body.body, 'no healthy upstream')
})
