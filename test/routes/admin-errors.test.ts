import t from 'tap'
import { startAdmin } from '../../routes/admin.js'
import { rawRequest, serviceEntry, startInlineGateway } from '../helpers/upstream.js'

// One JSON error shape across the admin API: `{ error, problems }` with the failure's status.

t.test('errors share one shape', async t => {
  const gw = await startInlineGateway(serviceEntry('app', { v1: 1 }), { gatewayPorts: [] })
  const admin = await startAdmin({ gateway: gw, port: 0, token: 'tok' })
  t.teardown(async () => { await admin.close(); await gw.close() })
  const auth = { authorization: 'Bearer tok', 'content-type': 'application/yaml' }
  const cases: Array<[string, string, string, number]> = [
    ['PUT', '/config?mode=upsert', 'kind: x', 400],
    ['POST', '/config/validate?mode=upsert', 'kind: x', 400],
    ['GET', '/no/such/route', '', 404],
    ['GET', '/clusters/nope', '', 404]
  ]
  for (const [method, path, body, status] of cases) {
    const r = await rawRequest(admin.url, path, { method, headers: auth, ...(body !== '' ? { body } : {}) })
    t.equal(r.status, status, `${method} ${path}: ${status}`)
    t.match(r.headers['content-type'], /application\/json/)
    const json = JSON.parse(r.body)
    t.type(json.error, 'string', `${method} ${path}: an error message`)
  }
  const r = await rawRequest(admin.url, '/config?mode=upsert', { method: 'PUT', headers: auth, body: 'kind: x' })
  t.match(JSON.parse(r.body), { error: /mode/, problems: [] }, 'the refused query names the field')
})

t.test('the OpenAPI document marks the probes public and every other call as needing the token', async t => {
  const gw = await startInlineGateway(serviceEntry('app', { v1: 1 }), { gatewayPorts: [] })
  const admin = await startAdmin({ gateway: gw, port: 0, token: 'tok' })
  t.teardown(async () => { await admin.close(); await gw.close() })
  const doc = JSON.parse((await rawRequest(admin.url, '/openapi.json', { headers: { authorization: 'Bearer tok' } })).body)
  t.same(doc.paths['/ready'].get.security, [], '/ready is public')
  t.same(doc.paths['/live'].get.security, [], '/live is public')
  t.same(doc.paths['/config'].get.security, [{ bearer: [] }], '/config needs the token')
})

t.test('changes guarded by the generation: ETag on GET /config, If-Match on changes, 412 when stale', async t => {
  const gw = await startInlineGateway(serviceEntry('app', { v1: 1 }), { gatewayPorts: [] })
  const admin = await startAdmin({ gateway: gw, port: 0, token: 'tok' })
  t.teardown(async () => { await admin.close(); await gw.close() })
  const auth = { authorization: 'Bearer tok' }
  const yaml = { ...auth, 'content-type': 'application/yaml' }
  const first = await rawRequest(admin.url, '/config', { headers: auth })
  const tag = first.headers.etag as string
  t.match(tag, /^"\d+"$/, 'GET /config has an ETag')
  const ok = await rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { ...yaml, 'if-match': tag }, body: serviceEntry('other', { v1: 2 }) })
  t.equal(ok.status, 200, 'a change based on the current generation applies')
  t.not(ok.headers.etag, tag, 'and answers with the new ETag')
  const stale = await rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { ...yaml, 'if-match': tag }, body: serviceEntry('third', { v1: 3 }) })
  t.equal(stale.status, 412, 'a change based on a stale generation: 412')
  t.match(JSON.parse(stale.body), { error: /generation/, problems: [] })
  t.equal(stale.headers.etag, ok.headers.etag, 'with the current ETag')
  t.equal((await rawRequest(admin.url, '/config/rollback', { method: 'POST', headers: { ...auth, 'if-match': '"1"' } })).status, 412, 'rollback is guarded too')
  t.equal((await rawRequest(admin.url, '/config/rollback', { method: 'POST', headers: auth })).status, 200, 'without If-Match a change is not guarded')
})

t.test('per-resource GET, PUT and DELETE under /config/resources/<kind>/<namespace>/<name>', async t => {
  const gw = await startInlineGateway(serviceEntry('app', { v1: 1 }), { gatewayPorts: [] })
  const admin = await startAdmin({ gateway: gw, port: 0, token: 'tok' })
  t.teardown(async () => { await admin.close(); await gw.close() })
  const auth = { authorization: 'Bearer tok' }
  const yaml = { ...auth, 'content-type': 'application/yaml' }
  const path = '/config/resources/ServiceEntry/default/app'
  let r = await rawRequest(admin.url, path, { headers: auth })
  t.equal(r.status, 200, 'GET one resource')
  t.match(JSON.parse(r.body), { kind: 'ServiceEntry', metadata: { name: 'app', namespace: 'default' }, source: { file: 'inline.yaml' } })
  t.equal((await rawRequest(admin.url, '/config/resources/ServiceEntry/default/nope', { headers: auth })).status, 404, 'an unknown one: 404')

  r = await rawRequest(admin.url, '/config/resources/ServiceEntry/default/other', { method: 'PUT', headers: yaml, body: serviceEntry('other', { v1: 2 }) })
  t.equal(r.status, 200, 'PUT creates')
  t.ok(gw.runtime.cluster('outbound|9080||other.default.svc.cluster.local') !== undefined, 'and it runs')
  r = await rawRequest(admin.url, '/config/resources/ServiceEntry/default/other', { method: 'PUT', headers: yaml, body: serviceEntry('other', { v1: 3 }) })
  t.equal(r.status, 200, 'PUT replaces')
  t.equal(gw.runtime.cluster('outbound|9080||other.default.svc.cluster.local')!.endpoints[0].spec.port, 3, 'with the new spec')
  r = await rawRequest(admin.url, '/config/resources/ServiceEntry/default/mismatch', { method: 'PUT', headers: yaml, body: serviceEntry('other', { v1: 3 }) })
  t.equal(r.status, 400, 'a body that names another resource: 400')
  r = await rawRequest(admin.url, '/config/resources/ServiceEntry/default/other', { method: 'PUT', headers: yaml, body: serviceEntry('other', { v1: 3 }).replace('resolution: STATIC', 'resolution: SOMETIMES') })
  t.equal(r.status, 400, 'an invalid resource: 400 with its problems')
  t.ok(JSON.parse(r.body).problems.length > 0)

  r = await rawRequest(admin.url, '/config/resources/ServiceEntry/default/other', { method: 'DELETE', headers: auth })
  t.equal(r.status, 200, 'DELETE')
  t.equal(gw.runtime.cluster('outbound|9080||other.default.svc.cluster.local') !== undefined && gw.store.current.clusters.has('outbound|9080||other.default.svc.cluster.local'), false, 'the cluster left the configuration')
  t.equal((await rawRequest(admin.url, path, { headers: auth })).status, 200, 'the other resource is still there')
  t.equal((await rawRequest(admin.url, '/config/resources/ServiceEntry/default/other', { method: 'DELETE', headers: auth })).status, 404, 'deleting it again: 404')
})
