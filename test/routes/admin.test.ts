import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startGateway } from '../../plugins/gateway.js'
import { adminHostCheck, parseHostHeader, startAdmin } from '../../routes/admin.js'
import { rawRequest, serviceEntry, startUpstream, waitForLogs } from '../helpers/upstream.js'
import { routeTo, stampedRoute, subsetService, virtualService } from '../helpers/yaml.js'

const TOKEN = 'test-token-123'

/** Routes to `subset` stamping `x-set: <name>`; under /fb with a fallback to v2. */
function routeSet (name: string, subset: string): string {
  return virtualService(`  - match: [{ uri: { prefix: /fb } }]
    route:
    - destination: { host: app, subset: ${subset} }
      fallback:
        target: { host: app, subset: v2 }
${stampedRoute('x-set', name, subset)}`)
}

const BASE = (p1: number, p2: number): string => subsetService('app', { v1: p1, v2: p2 })

async function setup (t: any): Promise<{ gw: Awaited<ReturnType<typeof startGateway>>; admin: Awaited<ReturnType<typeof startAdmin>>; dir: string;
  logs: Array<Record<string, string>>; v1: Awaited<ReturnType<typeof startUpstream>>; v2: Awaited<ReturnType<typeof startUpstream>> }> {
  const v1 = await startUpstream('v1')
  const v2 = await startUpstream('v2')
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-admin-'))
  await writeFile(join(dir, 'base.yaml'), BASE(v1.port, v2.port))
  await writeFile(join(dir, 'routes.yaml'), routeSet('v1', 'v1'))
  const logs: Array<Record<string, string>> = []
  const gw = await startGateway({ config: [dir], host: '127.0.0.1', meshPort: 0, accessLog: l => logs.push(JSON.parse(l)) })
  const admin = await startAdmin({ gateway: gw, port: 0, token: TOKEN })
  t.teardown(async () => { await admin.close(); await gw.close(); await v1.close(); await v2.close() })
  return { gw, admin, dir, logs, v1, v2 }
}

const auth = { authorization: `Bearer ${TOKEN}` }
const meshGet = (mesh: string, path = '/x'): ReturnType<typeof rawRequest> => rawRequest(mesh, path, { headers: { host: 'app' } })

t.test('auth: every call but /ready and /live needs the token, on loopback too; public bind needs a token', async t => {
  const { gw, admin } = await setup(t)
  for (const path of ['/config', '/config/dump', '/routes', '/clusters', '/stats/prometheus', '/openapi.json', '/routes/explain?authority=app']) {
    const r = await rawRequest(admin.url, path)
    t.equal(r.status, 401, `GET ${path} on loopback without a token`)
    t.equal(r.headers['www-authenticate'], 'Bearer realm="meshgate-admin"')
    t.match(JSON.parse(r.body), { error: /missing bearer token/ }, 'the JSON error shape')
  }
  t.equal((await rawRequest(admin.url, '/config', { method: 'HEAD' })).status, 401, 'HEAD as well')
  t.equal((await rawRequest(admin.url, '/config', { headers: { authorization: 'Bearer wrong' } })).status, 401, 'GET with a wrong token')
  t.equal((await rawRequest(admin.url, '/config', { headers: auth })).status, 200, 'GET with the token')
  t.same(JSON.parse((await rawRequest(admin.url, '/ready')).body), { ready: true }, '/ready needs no token')
  t.same(JSON.parse((await rawRequest(admin.url, '/live')).body), { live: true }, '/live needs no token')
  let r = await rawRequest(admin.url, '/config/reload', { method: 'POST' })
  t.equal(r.status, 401, 'mutating call without a token')
  t.equal(r.headers['www-authenticate'], 'Bearer realm="meshgate-admin"')
  r = await rawRequest(admin.url, '/config/reload', { method: 'POST', headers: { authorization: 'Bearer wrong' } })
  t.equal(r.status, 401, 'wrong token')
  r = await rawRequest(admin.url, '/config/reload', { method: 'POST', headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' })
  t.equal(r.status, 415, 'form posts refused')
  r = await rawRequest(admin.url, '/config/reload', { method: 'POST', headers: auth })
  t.equal(r.status, 200, 'with the token')
  await t.rejects(startAdmin({ gateway: gw, host: '0.0.0.0', port: 0 }), /refusing to bind the admin API to 0\.0\.0\.0 without a token/)
  const pub = await startAdmin({ gateway: gw, host: '0.0.0.0', port: 0, token: TOKEN })
  t.teardown(() => pub.close())
  const pubUrl = pub.url.replace('0.0.0.0', '127.0.0.1')
  t.equal((await rawRequest(pubUrl, '/config')).status, 401, 'every call needs the token off loopback')
  t.equal((await rawRequest(pubUrl, '/config', { headers: auth })).status, 200)
  t.equal((await rawRequest(pubUrl, '/ready')).status, 200, 'readiness probes need no token (container healthchecks send none)')
  t.equal((await rawRequest(pubUrl, '/live')).status, 200, 'nor do liveness probes')
  t.equal((await rawRequest(pubUrl, '/ready', { method: 'POST' })).status, 401, 'anything else still does')
  const gen = await startAdmin({ gateway: gw, port: 0 })
  t.teardown(() => gen.close())
  t.ok(gen.generatedToken && gen.token.length >= 20, 'a token is generated when none is given on loopback')
  t.equal((await rawRequest(gen.url, '/config')).status, 401, 'and reads need it too')
  t.equal((await rawRequest(gen.url, '/config', { headers: { authorization: `Bearer ${gen.token}` } })).status, 200)
  t.equal((await rawRequest(gen.url, '/config/reload', { method: 'POST', headers: { authorization: `Bearer ${gen.token}` } })).status, 200)
})

t.test('Host check: localhost, loopback addresses, a non-loopback bind address and configured names', async t => {
  const local = adminHostCheck('127.0.0.1')
  for (const h of ['localhost', 'localhost:15000', 'LocalHost:1', 'localhost.', '127.0.0.1', '127.0.0.1:15000', '127.1.2.3:80', '[::1]', '[::1]:15000', '[0:0:0:0:0:0:0:1]:15000']) t.ok(local(h), `${h} accepted`)
  for (const h of [undefined, '', 'evil.example', 'evil.example:15000', 'localhost.evil.example', '127.0.0.1.evil.example', 'evil.localhost', '10.0.0.1', '0.0.0.0:15000', '[::2]:15000', '::1', '[::1', 'localhost:', 'localhost:99999', 'localhost:1x', 'user@localhost', 'local host']) t.notOk(local(h), `${JSON.stringify(h)} refused`)
  const named = adminHostCheck('127.0.0.1', ['admin.internal', 'ops.example:9000', '10.1.2.3'])
  t.ok(named('admin.internal') && named('ADMIN.internal:15000'), 'a configured name, with any port')
  t.ok(named('ops.example:9000') && !named('ops.example:9001') && !named('ops.example'), 'a configured name:port, with that port only')
  t.ok(named('10.1.2.3:15000'), 'a configured address')
  t.notOk(named('evil.example'))
  const bound = adminHostCheck('10.9.8.7')
  t.ok(bound('10.9.8.7:15000') && bound('localhost'), 'a non-loopback bind address is allowed, loopback still is')
  t.notOk(bound('10.9.8.6:15000'))
  t.ok(adminHostCheck('::')('[::]:15000'), 'an IPv6 bind address, bracketed in Host')
  t.throws(() => adminHostCheck('127.0.0.1', ['bad host']), /admin allowed host "bad host"/)
  t.same(parseHostHeader('[::1]:8080'), { name: '::1', port: 8080 })
  t.same(parseHostHeader('Example.COM.'), { name: 'example.com' })
})

t.test('config: GET, PUT replace/merge, validate, rollback, reload; a rejected change keeps the old routes', async t => {
  const { gw, admin, dir, v1, v2 } = await setup(t)
  let cfg = JSON.parse((await rawRequest(admin.url, '/config', { headers: auth })).body)
  t.equal(cfg.generation, 1)
  t.same(cfg.resources.map((r: { kind: string; name: string }) => `${r.kind}/${r.name}`).sort(), ['DestinationRule/app', 'ServiceEntry/app', 'VirtualService/app'])
  t.match(cfg.resources.find((r: { kind: string }) => r.kind === 'VirtualService').file, /routes\.yaml$/, 'source file of each resource')
  t.equal(JSON.parse((await meshGet(gw.listeners[0].url)).body).upstream, 'v1')

  // merge: replace the VirtualService only
  let r = await rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml' }, body: routeSet('v2', 'v2') })
  t.equal(r.status, 200, 'PUT merge')
  t.equal(JSON.parse(r.body).generation, 2)
  t.equal(JSON.parse((await meshGet(gw.listeners[0].url)).body).upstream, 'v2', 'new routes serve')

  // rejected: a typo'd YAML and a syntax error leave routes untouched
  r = await rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml' }, body: 'kind: VirtualService\n  bad: [' })
  t.equal(r.status, 400, 'syntax error rejected')
  t.ok(JSON.parse(r.body).problems.length > 0, 'with its problems')
  r = await rawRequest(admin.url, '/config', { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ yaml: routeSet('v1', 'v1').replace('set: {', 'sett: {'), mode: 'merge' }) })
  t.equal(JSON.parse((await meshGet(gw.listeners[0].url)).body).upstream, 'v2', 'still the last good routes')
  cfg = JSON.parse((await rawRequest(admin.url, '/config', { headers: auth })).body)
  t.equal(cfg.generation, 2, 'generation unchanged by rejections')
  t.ok(cfg.lastRejection !== undefined, 'the rejection is visible in GET /config')

  // validate: dry run
  r = await rawRequest(admin.url, '/config/validate?mode=merge', { method: 'POST', headers: { ...auth, 'content-type': 'application/yaml' }, body: routeSet('v1', 'v1') })
  t.equal(r.status, 200)
  t.equal(JSON.parse(r.body).ok, true)
  r = await rawRequest(admin.url, '/config/validate', { method: 'POST', headers: { ...auth, 'content-type': 'application/yaml' }, body: 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}, weight: -1}, {destination: {host: b}}]}]}' })
  t.equal(r.status, 400, 'invalid body fails validation')
  t.equal(JSON.parse((await rawRequest(admin.url, '/config', { headers: auth })).body).generation, 2, 'validate changes nothing')

  // rollback
  r = await rawRequest(admin.url, '/config/rollback', { method: 'POST', headers: auth })
  t.equal(r.status, 200)
  t.equal(JSON.parse((await meshGet(gw.listeners[0].url)).body).upstream, 'v1', 'rolled back to the file routes')

  // reload from files
  await writeFile(join(dir, 'routes.yaml'), routeSet('v2', 'v2'))
  r = await rawRequest(admin.url, '/config/reload', { method: 'POST', headers: auth })
  t.equal(r.status, 200)
  t.equal(JSON.parse((await meshGet(gw.listeners[0].url)).body).upstream, 'v2', 'reloaded from files')
  await writeFile(join(dir, 'routes.yaml'), routeSet('v1', 'v9'))
  const strictGw = await startGateway({ config: [dir], strict: true, host: '127.0.0.1', meshPort: null, accessLog: 'off' }).catch(e => e)
  t.match(strictGw, { name: 'ConfigError' }, 'an unknown subset is an error under --strict')
  await writeFile(join(dir, 'routes.yaml'), 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: app}\nspec: {hosts: [app], http: [{route: [{destination: {host: app, subset: v1}, wieght: 1}]}]}')
  r = await rawRequest(admin.url, '/config/reload', { method: 'POST', headers: auth })
  t.equal(r.status, 400, 'a reload with a typo is rejected')
  t.equal(JSON.parse((await meshGet(gw.listeners[0].url)).body).upstream, 'v2', 'and the old routes keep serving')
  t.ok(v1.seen.length > 0 && v2.seen.length > 0)
})

t.test('state: routes, explain, clusters, drain and restore, metrics, readiness, openapi', async t => {
  const { gw, admin, logs } = await setup(t)
  const mesh = gw.listeners[0].url
  const routes = JSON.parse((await rawRequest(admin.url, '/routes', { headers: auth })).body)
  const meshL = routes.listeners.find((l: { kind: string }) => l.kind === 'mesh')
  const vh = meshL.virtualHosts.find((v: { name: string }) => v.name === 'app.default.svc.cluster.local')
  t.same(vh.routes.map((r: { virtualService: string; httpIndex: number; matchIndex: number }) => [r.virtualService, r.httpIndex, r.matchIndex]), [['default/app', 0, 0], ['default/app', 1, 0]], 'routes in match order with origin and index')

  let ex = JSON.parse((await rawRequest(admin.url, '/routes/explain?listener=mesh&authority=app:9080&path=/fb/1', { headers: auth })).body)
  t.equal(ex.virtualHost, 'app.default.svc.cluster.local')
  t.equal(ex.route.httpIndex, 0)
  t.match(ex.destinations[0], { subset: 'v1', weight: 1, decision: { serves: 'outbound|9080|v1|app.default.svc.cluster.local', fallbackPath: null } })

  // drain v1: the fallback decision changes, without sending a request
  const v1Cluster = 'outbound|9080|v1|app.default.svc.cluster.local'
  const c = JSON.parse((await rawRequest(admin.url, `/clusters/${encodeURIComponent(v1Cluster)}`, { headers: auth })).body)
  const ep = c.endpoints[0].endpoint
  t.equal(c.endpoints[0].healthy, true)
  let r = await rawRequest(admin.url, `/clusters/${encodeURIComponent(v1Cluster)}/endpoints/${encodeURIComponent(ep)}/drain`, { method: 'POST', headers: auth })
  t.equal(r.status, 200)
  t.same(JSON.parse(r.body).endpoints[0].flags, ['Drained'])
  ex = JSON.parse((await rawRequest(admin.url, '/routes/explain?listener=mesh&authority=app&path=/fb', { headers: auth })).body)
  t.match(ex.destinations[0].decision, { serves: 'outbound|9080|v2|app.default.svc.cluster.local', fallbackResult: 'fallback cluster is healthy' }, 'explain shows the fallback decision')
  t.equal(JSON.parse((await meshGet(mesh, '/fb')).body).upstream, 'v2', 'drained endpoint gets no traffic; fallback serves')
  t.equal((await meshGet(mesh, '/other')).status, 503, 'no fallback on that route: 503 UH')
  r = await rawRequest(admin.url, `/clusters/${encodeURIComponent(v1Cluster)}/endpoints/${encodeURIComponent(ep)}/restore`, { method: 'POST', headers: auth })
  t.equal(JSON.parse(r.body).endpoints[0].healthy, true, 'restored')
  t.equal(JSON.parse((await meshGet(mesh, '/fb')).body).upstream, 'v1')
  const list = JSON.parse((await rawRequest(admin.url, '/clusters', { headers: auth })).body)
  t.ok(list.clusters.some((x: { name: string }) => x.name === v1Cluster))
  t.equal((await rawRequest(admin.url, '/clusters/nope', { headers: auth })).status, 404)

  await waitForLogs(logs, 3)
  const text = (await rawRequest(admin.url, '/stats/prometheus', { headers: auth })).body
  const count = (re: RegExp): number => text.split('\n').filter(l => re.test(l)).reduce((s, l) => s + Number(l.split(' ').pop()), 0)
  t.equal(count(/^istio_requests_total\{reporter="source".*destination_service_name="app".*response_code="200".*\}/), 2, 'istio_requests_total counts the 200s')
  t.equal(count(/^istio_requests_total\{reporter="destination".*destination_service_name="app".*response_code="200".*\}/), 2, 'and the destination reports them')
  t.equal(count(/^istio_requests_total\{.*response_code="503".*response_flags="UH".*\}/), 1, 'and the 503 UH, which no destination saw')
  // Every stand-in listens on 127.0.0.1: the caller's namespace is known, not which workload it is.
  t.match(text, /istio_requests_total\{reporter="source",source_workload="unknown",source_workload_namespace="default"/)
  t.match(text, /destination_version="v2"/)
  t.equal(count(/^meshgate_fallback_total\{.*result="taken".*\}/), 1, 'fallbacks taken')
  t.match(text, /istio_request_duration_milliseconds_bucket\{/)
  t.match(text, /meshgate_config_generation 1/)
  t.match(text, /meshgate_endpoint_healthy\{cluster="outbound\|9080\|v1\|app.default.svc.cluster.local",endpoint="127.0.0.1:\d+"\} 1/)
  t.match(text, /meshgate_process_cpu_seconds_total/)

  t.same(JSON.parse((await rawRequest(admin.url, '/ready')).body), { ready: true })
  t.same(JSON.parse((await rawRequest(admin.url, '/live')).body), { live: true })
  const doc = JSON.parse((await rawRequest(admin.url, '/openapi.json', { headers: auth })).body)
  t.equal(doc.openapi, '3.1.0')
  for (const p of ['/config', '/config/reload', '/config/validate', '/config/rollback', '/routes', '/routes/explain', '/clusters', '/clusters/{name}', '/stats/prometheus', '/ready', '/live']) t.ok(doc.paths[p] !== undefined, `openapi documents ${p}`)
})

t.test('health and ejection state survive a reload of an unrelated VirtualService', async t => {
  const { gw, admin } = await setup(t)
  const v1Cluster = 'outbound|9080|v1|app.default.svc.cluster.local'
  const c = gw.runtime.cluster(v1Cluster)!
  c.endpoints[0].ejections = 3
  const host = c.endpoints[0].host
  host.set(16, true) // Drained: operator state no writer clears on its own
  const r = await rawRequest(admin.url, '/config?mode=merge', {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/yaml' },
    body: virtualService(routeTo('app'), { name: 'other', hosts: ['other.example.com'] })
  })
  t.equal(r.status, 200)
  const after = gw.runtime.cluster(v1Cluster)!
  t.equal(after, c, 'same cluster state object')
  t.equal(after.endpoints[0].ejections, 3, 'ejection count kept')
  t.equal(after.endpoints[0].host.flags & 16, 16, 'drain kept')
  t.equal(after.healthy.length, 0)
})

t.test('graceful shutdown: readiness false, a slow request in flight completes', async t => {
  const slow = await startUpstream('slow', (_req, res) => { setTimeout(() => res.end('done'), 1500) })
  const gw = await startGateway({ config: { inputs: [{ file: 'x.yaml', text: `${virtualService(routeTo('slow'), { name: 's', hosts: ['slow'] })}---\n${serviceEntry('slow', { v1: slow.port })}` }] }, host: '127.0.0.1', meshPort: 0, accessLog: 'off' })
  const admin = await startAdmin({ gateway: gw, port: 0, token: TOKEN })
  t.teardown(async () => { await admin.close(); await slow.close() })
  const mesh = gw.listeners[0].url
  const inflight = rawRequest(mesh, '/slow', { headers: { host: 'slow' } })
  await new Promise(resolve => setTimeout(resolve, 200))
  const started = Date.now()
  const closing = gw.close(5000)
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal((await rawRequest(admin.url, '/ready')).status, 503, 'not ready while draining')
  await t.rejects(rawRequest(mesh, '/new', { headers: { host: 'slow' } }), 'new connections are refused')
  const res = await inflight
  t.equal(res.status, 200, 'the request in flight completed')
  t.equal(res.body, 'done')
  await closing
  t.ok(Date.now() - started < 4000, 'closed once the request finished, before the deadline')
})

t.test('--watch: a file change reloads (debounced); a bad change is rejected and visible', async t => {
  const v1 = await startUpstream('v1')
  const v2 = await startUpstream('v2')
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-watch-'))
  await writeFile(join(dir, 'base.yaml'), BASE(v1.port, v2.port))
  await writeFile(join(dir, 'routes.yaml'), routeSet('v1', 'v1'))
  const events: string[] = []
  const gw = await startGateway({ config: [dir], host: '127.0.0.1', meshPort: 0, accessLog: 'off', watch: true, watchDebounceMs: 100, onReload: e => events.push(e.ok ? 'ok' : 'rejected') })
  t.teardown(async () => { await gw.close(); await v1.close(); await v2.close() })
  const mesh = gw.listeners[0].url
  const until = async (cond: () => boolean): Promise<void> => {
    const start = Date.now()
    while (!cond()) { if (Date.now() - start > 5000) throw new Error('timed out'); await new Promise(resolve => setTimeout(resolve, 20)) }
  }
  // Several quick writes are debounced into one reload.
  await writeFile(join(dir, 'routes.yaml'), routeSet('v2', 'v1'))
  await writeFile(join(dir, 'routes.yaml'), routeSet('v2', 'v2'))
  await until(() => events.length >= 1)
  await new Promise(resolve => setTimeout(resolve, 300))
  t.same(events, ['ok'], 'one debounced reload')
  t.equal(JSON.parse((await meshGet(mesh)).body).upstream, 'v2')
  await writeFile(join(dir, 'routes.yaml'), 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: app}\nspec: {hosts: [app], htp: []}')
  await until(() => events.length >= 2)
  t.equal(events[1], 'rejected')
  t.ok(gw.config.lastRejection?.problems.some(p => p.message === 'unknown field "htp"'), 'the rejection and its problems are kept for GET /config')
  t.equal(JSON.parse((await meshGet(mesh)).body).upstream, 'v2', 'old routes keep serving')
})
