import { readFile } from 'node:fs/promises'
import t from 'tap'
import { Ajv } from 'ajv'
import Fastify from 'fastify'
import { startGateway } from '../../plugins/gateway.js'
import { startAdmin } from '../../routes/admin.js'
import { clusterRoutes } from '../../routes/admin/clusters.js'
import { configRoutes } from '../../routes/admin/config.js'
import { explainRoutes } from '../../routes/admin/explain.js'
import { healthRoutes } from '../../routes/admin/health.js'
import { statsRoutes } from '../../routes/admin/stats.js'
import { rawRequest } from '../helpers/upstream.js'
import { startEtcd } from '../helpers/etcd.js'
import { startStallProxy } from '../helpers/stall-proxy.js'
import { GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'
import { EtcdStore } from '../../plugins/config-source/etcd.js'
import { desiredKeys, splitResources } from '../../src/config/etcd-layout.js'

// The admin API's response schemas: every operation of GET /openapi.json declares one for each
// status, real answers validate against them, and the schemas (which also drive serialization)
// drop nothing the handlers produce.

const TOKEN = 'openapi-token'
const auth = { authorization: `Bearer ${TOKEN}` }

// Routes beyond the Bookinfo files, so that /routes and /routes/explain show every kind of
// outcome: rewrite, retries, timeout, mirror, a fault, a direct response, a redirect, a header
// match with a secret value, a multi-port cluster.
const EXTRA = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: extras, namespace: default }
spec:
  hosts: [details]
  http:
  - match: [{ uri: { prefix: /rewrite }, headers: { authorization: { exact: "Bearer s3cret" } } }]
    rewrite: { uri: /v2, authority: details.internal }
    timeout: 2.5s
    retries: { attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,reset" }
    mirror: { host: reviews, subset: v2 }
    mirrorPercentage: { value: 50 }
    route: [{ destination: { host: details } }]
  - match: [{ uri: { prefix: /abort } }]
    fault: { abort: { httpStatus: 418, percentage: { value: 100 } } }
    route: [{ destination: { host: details } }]
  - match: [{ uri: { prefix: /direct } }]
    directResponse: { status: 204 }
  - match: [{ uri: { prefix: /moved } }]
    redirect: { uri: /elsewhere, redirectCode: 308 }
  - route:
    - { destination: { host: details }, weight: 70 }
    - { destination: { host: nowhere.example.com }, weight: 30 }
`

async function bookinfo (t: { teardown: (fn: () => Promise<void>) => void }): Promise<Awaited<ReturnType<typeof startGateway>>> {
  const files = ['gateway-config/bookinfo-gateway.yaml', 'gateway-config/destination-rule-all.yaml', 'gateway-config/local/services.yaml', 'gateway-config/scenarios/fallback-v3-to-v2.yaml', 'gateway-config/scenarios/ratings-test-delay.yaml']
  const inputs = await Promise.all(files.map(async file => ({ file, text: await readFile(file, 'utf8') })))
  const gw = await startGateway({ config: { inputs: [...inputs, { file: 'extras.yaml', text: EXTRA }] }, host: '127.0.0.1', meshPort: 0, portMap: { 8080: 0 }, accessLog: 'off' })
  t.teardown(() => gw.close())
  return gw
}

/** The GET requests that cover every read route, with explain queries for each outcome. */
function reads (gw: Awaited<ReturnType<typeof bookinfo>>): string[] {
  const clusters = [...gw.runtime.allClusters()].map(c => `/clusters/${encodeURIComponent(c.spec.name)}`)
  const explains = ['/rewrite/x', '/abort', '/direct', '/moved', '/other', '/%zz'].map(p => `/routes/explain?listener=mesh&authority=details:9080&path=${encodeURIComponent(p)}&header=authorization:Bearer%20s3cret`)
  return [
    '/ready', '/live', '/config', '/config/dump', '/config/resources/VirtualService/default/extras', '/routes', '/clusters', ...clusters,
    ...explains, '/routes/explain?authority=bookinfo.example&path=/productpage', '/routes/explain?listener=mesh&authority=reviews:9080&path=/reviews/1',
    '/routes/explain?listener=mesh&authority=nohost.example', '/routes/explain?listener=mesh&authority=ratings:9080&path=/ratings/0&header=end-user:jason'
  ]
}

type Doc = { paths: Record<string, Record<string, { security: unknown[]; responses: Record<string, { content?: Record<string, { schema?: unknown }> }> }>> }

t.test('every operation of the OpenAPI document declares a response schema for each status it answers', async t => {
  const gw = await bookinfo(t)
  const admin = await startAdmin({ gateway: gw, port: 0, token: TOKEN })
  t.teardown(() => admin.close())
  const doc = JSON.parse((await rawRequest(admin.url, '/openapi.json', { headers: auth })).body) as Doc
  const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ id: `${method.toUpperCase()} ${path}`, op })))
  t.same(ops.map(o => o.id).sort(), [
    'DELETE /config/resources/{kind}/{namespace}/{name}', 'GET /clusters', 'GET /clusters/{name}', 'GET /config', 'GET /config/dump', 'GET /config/history',
    'GET /config/resources/{kind}/{namespace}/{name}', 'GET /events', 'GET /graph', 'GET /live', 'GET /openapi.json', 'GET /ready', 'GET /routes', 'GET /routes/explain', 'GET /stats/prometheus',
    'POST /clusters/{name}/endpoints/{endpoint}/drain', 'POST /clusters/{name}/endpoints/{endpoint}/restore', 'POST /config/reload', 'POST /config/rollback',
    'POST /config/validate', 'PUT /config', 'PUT /config/resources/{kind}/{namespace}/{name}'
  ], 'every route is an operation')
  for (const { id, op } of ops) {
    const codes = Object.keys(op.responses)
    t.ok(codes.some(c => c.startsWith('2')), `${id}: a success response`)
    for (const [code, r] of Object.entries(op.responses)) {
      const schemas = Object.values(r.content ?? {}).map(c => c.schema)
      t.ok(schemas.length > 0 && schemas.every(s => typeof s === 'object' && s !== null && Object.keys(s).length > 0), `${id} ${code}: a schema`)
    }
    t.ok(codes.includes('500'), `${id}: 500`)
    if (op.security.length > 0) t.ok(codes.includes('401') && codes.includes('403'), `${id}: 401 and 403 (token and Host)`)
    if (!id.startsWith('GET')) t.ok(codes.includes('415') && codes.includes('413'), `${id}: 415 and 413 (body)`)
  }
  const put = doc.paths['/config'].put.responses
  t.same(put['412'].content!['application/json'].schema, { $ref: '#/components/schemas/Error' }, 'changes: 412 in the error shape')
  t.match(put['412'], { headers: { ETag: {} } }, 'with the ETag header')
  t.match(put['429'], { headers: { 'Retry-After': {} }, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }, '429 with Retry-After')
  t.match(doc.paths['/config'].get.responses['200'], { headers: { ETag: {} } }, 'GET /config answers with the ETag')
  for (const path of ['/config/reload', '/config/rollback']) t.ok(doc.paths[path].post.responses['412'] !== undefined && doc.paths[path].post.responses['429'] !== undefined, `${path}: 412 and 429`)
  t.equal(doc.paths['/config/validate'].post.responses['429'], undefined, 'a dry run is not rate limited')
  t.equal(doc.paths['/ready'].get.responses['401'], undefined, 'the probes answer no 401')
  t.ok(doc.paths['/stats/prometheus'].get.responses['200'].content!['text/plain'] !== undefined, 'the metrics are text')
})

t.test('real answers of the routes validate against their declared schemas', async t => {
  const gw = await bookinfo(t)
  const admin = await startAdmin({ gateway: gw, port: 0, token: TOKEN, reloadLimit: 3 })
  t.teardown(() => admin.close())
  const doc = JSON.parse((await rawRequest(admin.url, '/openapi.json', { headers: auth })).body) as Doc
  const ajv = new Ajv({ strict: false })
  ajv.addSchema(doc, 'doc')
  const pointer = (s: string): string => s.replace(/~/g, '~0').replace(/\//g, '~1')
  const check = (method: string, route: string, r: { status: number; headers: Record<string, unknown>; body: string }, what: string): void => {
    const type = String(r.headers['content-type']).split(';')[0]
    const declared = doc.paths[route]?.[method.toLowerCase()]?.responses[String(r.status)]?.content?.[type]
    t.ok(declared !== undefined, `${what}: ${r.status} ${type} is declared`)
    if (declared === undefined) return
    const validate = ajv.compile({ $ref: `doc#/paths/${pointer(route)}/${method.toLowerCase()}/responses/${r.status}/content/${pointer(type)}/schema` })
    const ok = validate(type === 'application/json' ? JSON.parse(r.body) : r.body)
    t.ok(ok, `${what}: ${r.status} matches its schema`, { errors: validate.errors })
  }
  const templated = (url: string): string => {
    const path = url.split('?')[0]
    return Object.keys(doc.paths).find(p => new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path)) ?? path
  }
  for (const url of [...reads(gw), '/stats/prometheus', '/clusters/nope', '/routes/explain?listener=9999&authority=x']) {
    check('GET', templated(url), await rawRequest(admin.url, url, { headers: auth }), `GET ${url}`)
  }
  const yaml = { ...auth, 'content-type': 'application/yaml' }
  const calls: Array<[string, string, Record<string, string>, string | undefined, number]> = [
    ['GET', '/config', {}, undefined, 401],
    ['GET', '/config', { ...auth, host: 'evil.example' }, undefined, 403],
    ['POST', '/config/reload', { ...auth, 'content-type': 'text/plain' }, 'x', 415],
    ['POST', '/config/validate', yaml, 'kind: VirtualService\n  bad: [', 400],
    ['POST', '/config/validate?mode=upsert', yaml, 'x: 1', 400],
    ['PUT', '/config?mode=merge', yaml, 'kind: [', 400],
    ['DELETE', '/config/resources/VirtualService/default/none', auth, undefined, 404],
    ['PUT', '/config', { ...auth, 'if-match': '"99"', 'content-type': 'application/yaml' }, EXTRA, 412],
    ['POST', '/config/reload', auth, undefined, 200],
    ['POST', '/config/rollback', auth, undefined, 429],
    ['POST', `/clusters/${encodeURIComponent('outbound|9080|v1|reviews.default.svc.cluster.local')}/endpoints/${encodeURIComponent('127.0.0.1:19082')}/drain`, auth, undefined, 200],
    ['POST', `/clusters/${encodeURIComponent('outbound|9080|v1|reviews.default.svc.cluster.local')}/endpoints/nope/restore`, auth, undefined, 404]
  ]
  for (const [method, url, headers, body, status] of calls) {
    const r = await rawRequest(admin.url, url, { method, headers, ...(body !== undefined ? { body } : {}) })
    t.equal(r.status, status, `${method} ${url}: ${status}`)
    check(method, templated(url), r, `${method} ${url}`)
  }
})

t.test('the response schemas drop nothing the handlers answer', async t => {
  // The route modules on a server that records each answer before it is serialized: the
  // answer sent (serialized through the schema) must be the whole answer.
  const gw = await bookinfo(t)
  const app = Fastify({ logger: false })
  const before = new Map<string, unknown>()
  app.addHook('preSerialization', async (req, _reply, payload) => { before.set(req.url, JSON.parse(JSON.stringify(payload))); return payload })
  for (const routes of [healthRoutes, configRoutes, explainRoutes, clusterRoutes, statsRoutes]) await app.register(routes, { gw })
  t.teardown(() => app.close())
  const urls = reads(gw)
  for (const url of urls) {
    const r = await app.inject({ method: 'GET', url })
    t.equal(r.statusCode, 200, `GET ${url}: 200`)
    t.same(r.json(), before.get(url), `GET ${url}: nothing dropped or changed by serialization`)
  }
  const explained = urls.filter(u => u.startsWith('/routes/explain')).map(u => (before.get(u) as { result: string }).result)
  t.same([...new Set(explained)].sort(), ['bad request', 'forward', 'local reply', 'no virtual host'], 'the explain outcomes covered')
})

t.test('etcd mode: a change etcd refuses as stale answers 409 with the current revision in the body and the ETag, as declared', async t => {
  const etcd = await startEtcd(1)
  t.teardown(() => etcd.stop())
  // The replica reaches etcd through a proxy whose connections the test stalls, so that another
  // writer's change is committed before this replica has heard of it: a real conflict.
  const proxy = await startStallProxy(etcd.hosts[0])
  t.teardown(() => proxy.close())
  const writer = EtcdStore.connect(etcd.url('/oa'))
  t.teardown(() => writer.close())
  const vs = (rev: string): string => gatewayVs(`  - route:\n    - destination: { host: app }\n    headers: { response: { set: { x-rev: "${rev}" } } }\n`)
  const put = async (base: number, text: string): Promise<number> => await writer.commit(base, { puts: [...desiredKeys('/oa', splitResources([{ file: 'c.yaml', text }]).resources)], deletes: [] })
  const r1 = await put(0, [GATEWAY, serviceEntry('app', { v1: 9 }), vs('one')].join('---\n'))
  const gw = await startGateway({ config: { store: EtcdStore.connect(`etcd://${proxy.host}/oa`, {}, { lagCheckMs: 0 }) }, host: '127.0.0.1', meshPort: null, portMap: { 8080: 0 }, accessLog: 'off' })
  t.teardown(() => gw.close(0))
  const admin = await startAdmin({ gateway: gw, port: 0, token: TOKEN })
  t.teardown(() => admin.close())
  const doc = JSON.parse((await rawRequest(admin.url, '/openapi.json', { headers: auth })).body) as Doc
  for (const [path, method] of [['/config', 'put'], ['/config/reload', 'post'], ['/config/rollback', 'post'], ['/config/resources/{kind}/{namespace}/{name}', 'put'], ['/config/resources/{kind}/{namespace}/{name}', 'delete']]) {
    t.match(doc.paths[path][method].responses['409'], { headers: { ETag: {} }, content: { 'application/json': { schema: { required: ['error', 'problems', 'revision', 'baseRevision'] } } } }, `${method.toUpperCase()} ${path}: 409 declared`)
  }
  const cfg = await rawRequest(admin.url, '/config', { headers: auth })
  t.equal(cfg.headers.etag, `"${r1}"`, 'in etcd mode the ETag is the revision')

  proxy.stall()
  const r2 = await put(r1, vs('two'))
  const yaml = { ...auth, 'content-type': 'application/yaml', 'if-match': `"${r1}"` }
  const answer = rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: yaml, body: vs('three') })
  // The replica's transaction has gone out (based on r1); let etcd's answers through again.
  const t0 = Date.now()
  while (proxy.sentWhileStalled() === 0 && Date.now() - t0 < 10_000) await new Promise(resolve => setTimeout(resolve, 10))
  proxy.resume()
  const r = await answer
  t.equal(r.status, 409)
  t.equal(r.headers.etag, `"${r2}"`, 'the current revision in the ETag')
  const body = JSON.parse(r.body) as Record<string, unknown>
  t.match(body, { revision: r2, baseRevision: r1, problems: [], error: new RegExp(`changed since revision ${r1} \\(it is now at revision ${r2}\\)`) })
  const ajv = new Ajv({ strict: false })
  ajv.addSchema(doc, 'doc')
  const validate = ajv.compile({ $ref: 'doc#/paths/~1config/put/responses/409/content/application~1json/schema' })
  t.ok(validate(body), '409 matches its schema', { errors: validate.errors })
  t.match(await etcd.client.get('/oa/VirtualService/default/app').string(), /x-rev: "two"/, 'nothing written')

  // The retry a client does: wait for the replica to run that revision, send it as If-Match.
  const t1 = Date.now()
  while (gw.config.current.revision !== r2 && Date.now() - t1 < 10_000) await new Promise(resolve => setTimeout(resolve, 10))
  const again = await rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { ...yaml, 'if-match': String(r.headers.etag) }, body: vs('three') })
  t.equal(again.status, 200, again.body)
  t.equal(again.headers.etag, `"${gw.config.current.revision}"`)
  t.match(await etcd.client.get('/oa/VirtualService/default/app').string(), /x-rev: "three"/)
})
