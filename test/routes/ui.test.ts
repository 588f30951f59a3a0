import t from 'tap'
import { startAdmin } from '../../routes/admin.js'
import { gatewayFor } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { upstreamsFor } from '../helpers/upstream.js'
import { APP_SUBSETS, GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'

// The dashboard's side of the admin server over real HTTP: its files (types, caching, CSP),
// the login that trades the token for a session cookie, the cookie accepted in place of the
// token, the CSRF rules for changes made through it, logout, and the two reads it is built
// on (GET /graph, GET /config/history).

const TOKEN = 'ui-token'
const JSON_UI = { 'content-type': 'application/json', 'x-meshgate-ui': '1' }
const P = (subset: string): string => `outbound|9080|${subset}|app.default.svc.cluster.local`

t.test('the dashboard: files, login, cookie, CSRF, logout, graph and history', async t => {
  const [v1, v2] = await upstreamsFor(t, 'v1', 'v2')
  const gw = await gatewayFor(t, `${GATEWAY}---
${gatewayVs(`  - name: main
    route:
    - destination: { host: app, subset: v1 }
      weight: 90
      fallback: { target: { host: app, subset: v2 } }
    - destination: { host: app, subset: v2 }
      weight: 10`)}
---
${APP_SUBSETS}---
${serviceEntry('app', { v1: v1.port, v2: v2.port })}`)
  const admin = await startAdmin({ gateway: gw, port: 0, token: TOKEN })
  t.teardown(() => admin.close())

  // Files: no token needed, Host check kept, types, revalidation, CSP.
  const page = await rawRequest(admin.url, '/ui')
  t.equal(page.status, 200)
  t.equal(page.headers['content-type'], 'text/html; charset=utf-8')
  t.equal(page.headers['cache-control'], 'no-cache')
  t.match(page.headers['content-security-policy'], /script-src 'self'.*frame-ancestors 'none'/)
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  t.match(page.body, /<script type="module" src="\/ui\/app.js">/)
  const js = await rawRequest(admin.url, '/ui/app.js')
  t.equal(js.headers['content-type'], 'text/javascript; charset=utf-8')
  t.equal((await rawRequest(admin.url, '/ui/style.css')).headers['content-type'], 'text/css; charset=utf-8')
  t.equal((await rawRequest(admin.url, '/ui/app.js', { headers: { 'if-none-match': String(js.headers.etag) } })).status, 304, 'unchanged: 304')
  t.equal((await rawRequest(admin.url, '/ui/nope.js')).status, 404)
  t.equal((await rawRequest(admin.url, '/ui/..%2Fpackage.json')).status, 404, 'only the folder\'s own files')
  t.equal((await rawRequest(admin.url, '/ui', { headers: { host: 'evil.example' } })).status, 403, 'the Host check applies to the page')
  const doc = JSON.parse((await rawRequest(admin.url, '/openapi.json', { headers: { authorization: `Bearer ${TOKEN}` } })).body)
  t.notOk(Object.keys(doc.paths).some((p: string) => p.startsWith('/ui')), 'the page and login are not API operations')

  // Login.
  t.equal((await rawRequest(admin.url, '/graph')).status, 401, 'no session, no data')
  t.equal((await rawRequest(admin.url, '/ui/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: TOKEN }) })).status, 403, 'login without the dashboard header: 403')
  t.equal((await rawRequest(admin.url, '/ui/login', { method: 'POST', headers: { ...JSON_UI, origin: 'http://evil.example' }, body: JSON.stringify({ token: TOKEN }) })).status, 403, 'login from another origin: 403')
  const wrong = await rawRequest(admin.url, '/ui/login', { method: 'POST', headers: JSON_UI, body: JSON.stringify({ token: 'nope' }) })
  t.equal(wrong.status, 401, 'wrong token')
  t.equal(wrong.headers['set-cookie'], undefined, 'no cookie')
  const login = await rawRequest(admin.url, '/ui/login', { method: 'POST', headers: JSON_UI, body: JSON.stringify({ token: TOKEN }) })
  t.equal(login.status, 200)
  const setCookie = [login.headers['set-cookie']].flat()[0] as string
  t.match(setCookie, /^meshgate_session=[A-Za-z0-9_-]{32}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=28800$/, 'HttpOnly, SameSite=Strict, Path=/ (no Secure over plain HTTP)')
  t.notMatch(setCookie, TOKEN, 'the cookie is not the token')
  const cookie = setCookie.split(';')[0]

  // The cookie in place of the token: reads, the stream, and changes only with the header and the same origin.
  t.equal((await rawRequest(admin.url, '/config', { headers: { cookie } })).status, 200, 'reads with the cookie')
  t.equal((await rawRequest(admin.url, '/config', { headers: { cookie: 'meshgate_session=forged' } })).status, 401, 'a forged session: 401')
  const reload = (headers: Record<string, string>): Promise<{ status: number; body: string }> => rawRequest(admin.url, '/config/reload', { method: 'POST', headers: { cookie, ...headers } })
  t.equal((await reload({})).status, 403, 'a change without the header: 403')
  t.equal((await reload({ 'x-meshgate-ui': '1', origin: 'http://evil.example' })).status, 403, 'a change from another origin: 403')
  const host = new URL(admin.url).host
  const ok = await reload({ 'x-meshgate-ui': '1', origin: `http://${host}` })
  t.equal(ok.status, 200, 'a change with the header from the same origin')
  const generation = JSON.parse(ok.body).generation

  // The graph: listeners → virtual hosts → routes → destinations → clusters → endpoints, the fallback edge.
  const graph = JSON.parse((await rawRequest(admin.url, '/graph', { headers: { cookie } })).body)
  const kinds = new Set(graph.nodes.map((n: any) => n.kind))
  t.same([...kinds].sort(), ['cluster', 'destination', 'endpoint', 'listener', 'route', 'vhost'], 'every kind of node')
  const route = graph.nodes.find((n: any) => n.kind === 'route' && n.data.name === 'main')
  t.match(route.data, { listenerKey: '8080', virtualService: 'default/app' })
  const dests = graph.edges.filter((e: any) => e.kind === 'destination' && e.from === route.id)
  t.same(dests.map((e: any) => e.label), ['90%', '10%'], 'destinations with their weights')
  t.match(graph.edges.filter((e: any) => e.kind === 'fallback'), [{ from: `cluster:${P('v1')}`, to: `cluster:${P('v2')}`, data: { primary: P('v1'), fallback: P('v2') } }], 'the fallback as its own edge')
  t.match(graph.nodes.find((n: any) => n.id === `endpoint:${P('v1')} 127.0.0.1:${v1.port}`).data, { healthy: true, breaker: 'closed', drained: false, ejected: false, labels: { version: 'v1' } }, 'an endpoint with its health')

  // History: who and what changed.
  const put = await rawRequest(admin.url, '/config?mode=merge', {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/yaml' },
    body: gatewayVs('  - name: main\n    route:\n    - destination: { host: app, subset: v2 }')
  })
  t.equal(put.status, 200)
  const bad = await rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { cookie, 'x-meshgate-ui': '1', 'content-type': 'application/yaml' }, body: 'kind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [app], http: [{route: [{destination: {host: app}, weight: -1}]}]}\n' })
  t.equal(bad.status, 400, 'a refused change')
  const history = JSON.parse((await rawRequest(admin.url, '/config/history', { headers: { cookie } })).body)
  const byGen = new Map(history.history.map((h: any) => [h.generation, h]))
  t.match(byGen.get(generation), { source: 'files', who: { via: 'session', method: 'POST', url: '/config/reload' } }, 'the reload made through the session')
  const last = byGen.get(JSON.parse(put.body).generation) as any
  t.match(last, { source: 'api', who: { via: 'token', method: 'PUT' } }, 'the PUT made with the token')
  t.equal(last.changes.length, 1)
  t.match(last.changes[0], { kind: 'VirtualService', namespace: 'default', name: 'app', change: 'changed' })
  t.match(last.changes[0].diff, /^--- a\/VirtualService\/default\/app\n\+\+\+ b\/VirtualService\/default\/app\n/, 'a unified diff')
  t.match(last.changes[0].diff, /\n-\s+subset: v1\n-\s+weight: 90\n-\s+fallback:\n/, 'v1, its weight and fallback removed')
  t.match(last.changes[0].diff, /\n \s+subset: v2\n-\s+weight: 10$/, 'v2 kept, its weight removed')
  t.match(history.rejections.at(-1), { source: 'api', who: { via: 'session' } }, 'the refusal and who')
  t.ok(history.rejections.at(-1).problems.some((p: any) => p.severity === 'Error' && p.code !== ''), 'with its problems')

  // Logout ends the session.
  t.equal((await rawRequest(admin.url, '/ui/logout', { method: 'POST', headers: { cookie } })).status, 403, 'logout needs the header too')
  const out = await rawRequest(admin.url, '/ui/logout', { method: 'POST', headers: { cookie, 'x-meshgate-ui': '1' } })
  t.equal(out.status, 200)
  t.match([out.headers['set-cookie']].flat()[0], /^meshgate_session=; .*Max-Age=0/, 'the cookie cleared')
  t.equal((await rawRequest(admin.url, '/config', { headers: { cookie } })).status, 401, 'the old session no longer works')
})
