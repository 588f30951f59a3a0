import { get, type IncomingMessage } from 'node:http'
import t from 'tap'
import { startAdmin } from '../../routes/admin.js'
import { gatewayFor } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream, upstreamFor } from '../helpers/upstream.js'
import { until } from '../helpers/wait.js'
import { APP_SUBSETS, GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'

// GET /events: the live stream, read as a real SSE client over HTTP, against a gateway with
// real upstreams: traffic per route and cluster with errors and percentiles, a fallback with
// its result when the primary endpoint dies, the endpoint's health change, a new generation.

const TOKEN = 'events-token'
const P = (subset: string): string => `outbound|9080|${subset}|app.default.svc.cluster.local`

interface Received { event: string; data: any }

/** An SSE client: every event received, parsed; `close` ends the stream. */
async function openStream (url: string, headers: Record<string, string>): Promise<{ res: IncomingMessage; events: Received[]; close: () => void }> {
  return await new Promise((resolve, reject) => {
    const req = get(`${url}/events`, { headers }, res => {
      const events: Received[] = []
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buf += chunk
        let i: number
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          const event = /^event: (.*)$/m.exec(block)?.[1]
          const data = /^data: (.*)$/m.exec(block)?.[1]
          if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) })
        }
      })
      res.on('error', () => {})
      resolve({ res, events, close: () => req.destroy() })
    })
    req.on('error', reject)
  })
}

t.test('the event stream: traffic, fallbacks, health and generations as they happen', async t => {
  const v1 = await startUpstream('v1', (req, res) => { res.writeHead(req.url === '/boom' ? 500 : 200); res.end('v1') })
  const v2 = await upstreamFor(t, 'v2')
  t.teardown(() => v1.close())
  const gw = await gatewayFor(t, `${GATEWAY}---
${gatewayVs(`  - name: ok
    match: [{ uri: { prefix: /ok } }]
    route:
    - destination: { host: app, subset: v1 }
      fallback: { target: { host: app, subset: v2 } }
  - name: boom
    match: [{ uri: { prefix: /boom } }]
    route:
    - destination: { host: app, subset: v1 }`)}
---
${APP_SUBSETS}---
${serviceEntry('app', { v1: v1.port, v2: v2.port })}`)
  const admin = await startAdmin({ gateway: gw, port: 0, token: TOKEN })
  t.teardown(() => admin.close())

  const refused = await rawRequest(admin.url, '/events')
  t.equal(refused.status, 401, 'no token, no stream')

  t.notOk(Object.hasOwn(gw.metrics, 'record'), 'nobody listens: the request path is untouched')
  const stream = await openStream(admin.url, { authorization: `Bearer ${TOKEN}` })
  t.teardown(() => stream.close())
  t.equal(stream.res.statusCode, 200)
  t.match(stream.res.headers['content-type'], /^text\/event-stream/)
  t.equal(stream.res.headers['cache-control'], 'no-store')
  await until('hello', () => stream.events.length > 0)
  t.same(stream.events[0], { event: 'hello', data: { generation: gw.config.current.generation, intervalMs: 1000 } }, 'hello first, with the generation')
  t.ok(Object.hasOwn(gw.metrics, 'record'), 'while someone listens, finished requests are tallied')

  // Traffic: 10 good requests on route ok, 3 answered 500 on route boom, in one interval.
  const mark = stream.events.length
  for (let i = 0; i < 10; i++) t.equal((await rawRequest(gw.ingress, '/ok')).status, 200)
  for (let i = 0; i < 3; i++) t.equal((await rawRequest(gw.ingress, '/boom')).status, 500)
  const traffic = (): any[] => stream.events.slice(mark).filter(e => e.event === 'traffic').map(e => e.data)
  await until('the requests in traffic events', () => traffic().reduce((n, d) => n + d.routes.reduce((m: number, r: any) => m + r.requests, 0), 0) >= 13, 5000)
  const routes = traffic().flatMap(d => d.routes)
  const sum = (rows: any[], key: string): number => rows.reduce((n, r) => n + r[key], 0)
  const ok = routes.filter(r => r.route === 'ok')
  const boom = routes.filter(r => r.route === 'boom')
  t.equal(sum(ok, 'requests'), 10, 'route ok: 10 requests')
  t.equal(sum(ok, 'errors'), 0, 'route ok: no error')
  t.equal(sum(boom, 'requests'), 3, 'route boom: 3 requests')
  t.equal(sum(boom, 'errors'), 3, 'route boom: 3 errors (500)')
  t.ok(ok.every(r => r.cluster === P('v1') && r.listener === '8080'), 'per listener, route and cluster')
  const cluster = traffic().flatMap(d => d.clusters).filter(c => c.cluster === P('v1'))
  t.equal(sum(cluster, 'requests'), 13, 'cluster v1: 13 requests')
  t.equal(sum(cluster, 'errors'), 3, 'cluster v1: 3 errors')
  const busy = traffic().find(d => d.routes.some((r: any) => r.route === 'ok'))
  const okRow = busy.routes.find((r: any) => r.route === 'ok')
  t.ok(okRow.p50 > 0 && okRow.p99 >= okRow.p50, `percentiles: p50 ${okRow.p50} ms, p99 ${okRow.p99} ms`)
  t.ok(okRow.rps > 0 && okRow.errorRate === 0, 'a rate and an error rate')
  t.ok(traffic().every(d => d.intervalMs >= 500 && d.intervalMs <= 2500), 'one event a second')

  // v1 dies: its endpoint turns unhealthy (a failed connect) and route ok falls back to v2.
  const before = stream.events.length
  await v1.close()
  await until('fallbacks in the stream', async () => {
    await rawRequest(gw.ingress, '/ok')
    return stream.events.slice(before).some(e => e.event === 'traffic' && e.data.fallbacks.length > 0)
  }, 8000, 100)
  const fb = stream.events.slice(before).filter(e => e.event === 'traffic').flatMap(e => e.data.fallbacks)
  t.match(fb[0], { route: 'ok', primary: P('v1'), fallback: P('v2'), result: 'fallback cluster is healthy', finalCluster: P('v2') }, 'the fallback with its path and result')
  t.ok(fb[0].count > 0, 'and its count')
  await until('a health event', () => stream.events.slice(before).some(e => e.event === 'health'), 3000)
  const change = stream.events.slice(before).filter(e => e.event === 'health').flatMap(e => e.data.changes).find((c: any) => c.cluster === P('v1'))
  t.match(change, { endpoint: `127.0.0.1:${v1.port}`, healthy: false, drained: false, breaker: 'closed' }, 'v1 endpoint: unhealthy')
  t.ok(change.flags.includes('FailedConnect'), `flags ${change.flags}`)

  // Draining an endpoint is a health change too; a reload is a new generation.
  const mark2 = stream.events.length
  const drain = await rawRequest(admin.url, `/clusters/${encodeURIComponent(P('v2'))}/endpoints/127.0.0.1:${v2.port}/drain`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(drain.status, 200)
  await until('drained', () => stream.events.slice(mark2).some(e => e.event === 'health' && e.data.changes.some((c: any) => c.drained && c.cluster === P('v2'))), 3000)
  const put = await rawRequest(admin.url, '/config/reload', { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(put.status, 200, 'a reload')
  await until('config event', () => stream.events.slice(mark2).some(e => e.event === 'config'), 3000)
  t.match(stream.events.slice(mark2).find(e => e.event === 'config')!.data, { generation: JSON.parse(put.body).generation, source: 'files' }, 'the new generation')

  stream.close()
  await until('the tally removed', () => !Object.hasOwn(gw.metrics, 'record'), 3000)
  t.pass('the last subscriber gone, the request path is untouched again')
})

t.test('closing the admin server ends open streams', async t => {
  const up = await upstreamFor(t, 'v1')
  const gw = await gatewayFor(t, `${GATEWAY}---
${gatewayVs('  - route: [{ destination: { host: app, subset: v1 } }]')}
---
${APP_SUBSETS}---
${serviceEntry('app', { v1: up.port })}`)
  const admin = await startAdmin({ gateway: gw, port: 0, token: TOKEN })
  const stream = await openStream(admin.url, { authorization: `Bearer ${TOKEN}` })
  const ended = new Promise<void>(resolve => stream.res.on('end', resolve))
  const started = Date.now()
  await admin.close()
  await ended
  t.ok(Date.now() - started < 3000, 'closed promptly')
  t.notOk(Object.hasOwn(gw.metrics, 'record'), 'no tally left behind')
})
