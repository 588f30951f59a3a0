import { Agent, request as httpRequest } from 'node:http'
import t from 'tap'
import { routeSetFixture } from '../helpers/route-sets.js'
import { stampedRoute, virtualService } from '../helpers/yaml.js'

// Reload under load: continuous keep-alive traffic (GET, POST with bodies, streamed downloads)
// while the routes are replaced through the admin API well over 100 times, alternating two
// route sets. No request may fail, and each response must come from one route set: the
// response header set by the route and the upstream that answered belong to the same set.

const TOKEN = 't'
const routes = (set: 'a' | 'b'): string => virtualService(stampedRoute('x-route-set', set, set))

t.test('100+ reloads under load: zero failed requests, each served by one route set', async t => {
  const { gw, admin, mesh } = await routeSetFixture(t, routes('a'), TOKEN)
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })

  interface Outcome { ok: boolean; detail: string }
  const call = (kind: 'get' | 'post' | 'stream'): Promise<Outcome> => new Promise(resolve => {
    const body = kind === 'post' ? 'x'.repeat(1000 + Math.floor(Math.random() * 50_000)) : undefined
    const req = httpRequest({
      host: mesh.hostname,
      port: Number(mesh.port),
      agent,
      method: kind === 'post' ? 'POST' : 'GET',
      path: kind === 'stream' ? '/stream' : '/x',
      headers: { host: 'app', ...(body !== undefined ? { 'content-length': String(body.length) } : {}) }
    }, res => {
      let n = 0
      let text = ''
      res.on('data', (c: Buffer) => { n += c.length; if (kind !== 'stream') text += c.toString() })
      res.on('end', () => {
        const set = res.headers['x-route-set']
        const up = res.headers['x-upstream']
        const bodyOk = kind === 'stream' ? n === 20 * 16 * 1024 : text === `${up}:${body?.length ?? 0}`
        resolve({ ok: res.statusCode === 200 && set === up && bodyOk, detail: `${kind} ${res.statusCode} set=${set} upstream=${up} bytes=${n}` })
      })
      res.on('error', err => resolve({ ok: false, detail: `${kind} response error ${err.message}` }))
    })
    req.on('error', err => resolve({ ok: false, detail: `${kind} request error ${err.message}` }))
    req.end(body)
  })

  const outcomes: Outcome[] = []
  let running = true
  const kinds: Array<'get' | 'post' | 'stream'> = ['get', 'get', 'post', 'stream', 'get', 'post']
  const loops = kinds.map(async kind => { while (running) outcomes.push(await call(kind)) })

  let reloads = 0
  for (let i = 0; i < 120; i++) {
    const res = await fetch(`${admin.url}/config?mode=merge`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/yaml' }, body: routes(i % 2 === 0 ? 'b' : 'a') })
    if (res.status === 200) reloads++
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  running = false
  await Promise.all(loops)
  agent.destroy()

  t.equal(reloads, 120, '120 reloads applied')
  t.equal(gw.config.current.generation, 121)
  t.ok(outcomes.length > 300, `${outcomes.length} requests during the reloads`)
  const bad = outcomes.filter(o => !o.ok)
  t.same(bad.map(o => o.detail).slice(0, 5), [], 'no failed request, and every response from a single route set')
  const fromA = outcomes.filter(o => o.detail.includes('upstream=a')).length
  const fromB = outcomes.filter(o => o.detail.includes('upstream=b')).length
  t.ok(fromA > 0 && fromB > 0, `both route sets served (${fromA} / ${fromB})`)
})
