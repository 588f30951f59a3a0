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
