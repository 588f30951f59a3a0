// Hardening H2 (docs/testing.md#h-reload-under-load): invalid configurations applied under constant load — bad
// YAML, an alias bomb, schema errors, CRLF header values, a changed listener port — are
// rejected one by one while traffic flows: zero failed requests, the old routes keep serving
// every request, and each rejection is counted. Valid changes interleaved with them still land.
import { Agent, request as httpRequest } from 'node:http'
import t from 'tap'
import { routeSetFixture } from '../helpers/route-sets.js'
import { gateway, stampedRoute, virtualService } from '../helpers/yaml.js'

const TOKEN = 'h2'
const routes = (set: string, subset: string): string => virtualService(stampedRoute('x-route-set', set, subset))

let bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
for (const [i, c] of [...'bcdefghi'].entries()) bomb += `${c}: &${c} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]\n`

const INVALID: Array<[string, string]> = [
  ['syntax error', routes('bad', 'b').replace('hosts: ["app"]', 'hosts: ["app"')],
  ['tab indentation', routes('bad', 'b').replace('  hosts:', '\thosts:')],
  ['alias bomb', bomb],
  ['duplicate key', routes('bad', 'b').replace('  hosts: ["app"]', '  hosts: ["app"]\n  hosts: [x]')],
  ['unknown field', routes('bad', 'b').replace('  hosts: ["app"]', '  hostz: ["app"]')],
  ['negative weight', routes('bad', 'b').replace('subset: b }\n', 'subset: b }\n      weight: -1\n    - destination: { host: app, subset: a }\n')],
  ['non-RE2 regex', routes('bad', 'b').replace('  - headers:', '  - match: [{ uri: { regex: "(?=x)" } }]\n    headers:')],
  ['CRLF header value', routes('"bad\\r\\nx-evil: 1"', 'b')],
  ['new listener port', `${gateway({ name: 'g', port: 18080 })}---\n${routes('bad', 'b')}`]
]

t.test('H2: invalid reloads under load: zero failed requests, old routes serve, every rejection counted', async t => {
  const { gw, admin, mesh } = await routeSetFixture(t, routes('a', 'a'), TOKEN)
  const agent = new Agent({ keepAlive: true, maxSockets: 8 })
  // The route set in force, by phase: a request may land on either side of a valid change,
  // but never on a set that was rejected.
  const allowed = new Set(['a'])

  interface Outcome { ok: boolean; detail: string }
  const call = (post: boolean): Promise<Outcome> => new Promise(resolve => {
    const body = post ? 'p'.repeat(1 + Math.floor(Math.random() * 20_000)) : undefined
    const req = httpRequest({
      host: mesh.hostname, port: Number(mesh.port), agent, method: post ? 'POST' : 'GET', path: '/x',
      headers: { host: 'app', ...(body !== undefined ? { 'content-length': String(body.length) } : {}) }
    }, res => {
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString() })
      res.on('end', () => {
        const set = String(res.headers['x-route-set'])
        const up = String(res.headers['x-upstream'])
        resolve({ ok: res.statusCode === 200 && set === up && allowed.has(set) && text === `${up}:${body?.length ?? 0}`, detail: `${res.statusCode} set=${set} upstream=${up}` })
      })
      res.on('error', err => resolve({ ok: false, detail: `response error ${err.message}` }))
    })
    req.on('error', err => resolve({ ok: false, detail: `request error ${err.message}` }))
    req.end(body)
  })
  const outcomes: Outcome[] = []
  let running = true
  const loops = [false, false, true, false, true, false].map(async post => { while (running) outcomes.push(await call(post)) })

  const put = async (body: string): Promise<number> => {
    const res = await fetch(`${admin.url}/config?mode=merge`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/yaml' }, body })
    await res.text()
    return res.status
  }
  let rejected = 0
  let current = 'a'
  for (let round = 0; round < 4; round++) {
    for (const [what, yaml] of INVALID) {
      const status = await put(yaml)
      t.equal(status, 400, `round ${round}: ${what} rejected`)
      rejected++
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    // A valid change between rounds: traffic moves to the other set.
    const next = current === 'a' ? 'b' : 'a'
    allowed.add(next)
    t.equal(await put(routes(next, next)), 200, `round ${round}: a valid change to ${next} is applied`)
    await new Promise(resolve => setTimeout(resolve, 100))
    allowed.delete(current)
    current = next
  }
  running = false
  await Promise.all(loops)
  agent.destroy()

  t.ok(outcomes.length > 50, `${outcomes.length} requests during ${rejected} rejections`)
  t.same(outcomes.filter(o => !o.ok).map(o => o.detail).slice(0, 5), [], 'no failed request; every response from a route set in force')
  t.equal(gw.config.current.generation, 5, 'only the 4 valid changes made generations')
  t.equal(gw.config.reloadFailures, rejected, 'each rejection counted')
  const text = await (await fetch(`${admin.url}/stats/prometheus`, { headers: { authorization: `Bearer ${TOKEN}` } })).text()
  t.match(text, new RegExp(`\\nmeshgate_config_reload_failures_total ${rejected}\\n`))
  t.match(text, /# TYPE meshgate_config_reload_failures_total counter/, 'exposed as a Prometheus counter')
})
