import t from 'tap'
import { request } from 'undici'
import { startEtcd } from '../../helpers/etcd.js'
import { startUpstream } from '../../helpers/upstream.js'
import { GATEWAY, gatewayVs, serviceEntry } from '../../helpers/yaml.js'
import { startGateway } from '../../../plugins/gateway.js'
import { EtcdStore } from '../../../plugins/config-source/etcd.js'
import { desiredKeys, splitResources } from '../../../src/config/etcd-layout.js'
import { startAdmin } from '../../../routes/admin.js'

// The admin API of a replica following etcd: /ready with its reason, GET /config with the
// revision and watch state, changes (PUT, rollback to a named revision) written to etcd.

const vs = (rev: string): string => gatewayVs(`  - route:\n    - destination: { host: app }\n    headers: { response: { set: { x-rev: "${rev}" } } }\n`)

t.test('admin API of an etcd replica', async t => {
  const etcd = await startEtcd(1)
  t.teardown(() => etcd.stop())
  const up = await startUpstream('app')
  t.teardown(() => up.close())
  const url = etcd.url('/adm')
  const writer = EtcdStore.connect(url)
  t.teardown(() => writer.close())
  const text = [GATEWAY, serviceEntry('app', { v1: up.port }), vs('one')].join('---\n')
  const first = await writer.commit(0, { puts: [...desiredKeys('/adm', splitResources([{ file: 'c.yaml', text }]).resources)], deletes: [] })
  const gw = await startGateway({ config: { store: EtcdStore.connect(url) }, host: '127.0.0.1', meshPort: null, portMap: { 8080: 0 }, accessLog: () => {} })
  t.teardown(() => gw.close(0))
  const admin = await startAdmin({ gateway: gw, port: 0, token: 'tok' })
  t.teardown(() => admin.close())
  const call = async (method: 'GET' | 'PUT' | 'POST', path: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> => {
    const r = await request(admin.url + path, { method, headers: { authorization: 'Bearer tok', ...(body !== undefined ? { 'content-type': 'application/yaml' } : {}) }, body })
    return { status: r.statusCode, json: await r.body.json() as Record<string, unknown> }
  }
  t.same(await call('GET', '/ready'), { status: 200, json: { ready: true, revision: first, watch: 'connected' } })
  const cfg = await call('GET', '/config')
  t.equal(cfg.json.source, 'etcd')
  t.match(cfg.json.sync, { url, synced: true, revision: first, watch: 'connected' })

  // A change through this replica's API is written to etcd and answered once it runs here.
  const put = await call('PUT', '/config?mode=merge', vs('two'))
  t.equal(put.status, 200)
  t.match(await etcd.client.get('/adm/VirtualService/default/app').string(), /x-rev: "two"/)
  t.match((await call('GET', '/config')).json.sync, { revision: Number((gw.config.current.revision)) })
  t.ok(gw.config.current.revision! > first)
  // An invalid change: 400 with its problems, nothing written.
  const bad = await call('PUT', '/config?mode=merge', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: app}\nspec: {hosts: ["*"], http: 7}\n')
  t.equal(bad.status, 400)
  t.match(await etcd.client.get('/adm/VirtualService/default/app').string(), /x-rev: "two"/)
  // Rollback to a named revision.
  const back = await call('POST', `/config/rollback?revision=${first}`)
  t.equal(back.status, 200)
  t.match(await etcd.client.get('/adm/VirtualService/default/app').string(), /x-rev: "one"/)
  const r = await request(gw.listeners.find(l => l.kind === 'gateway')!.url + '/')
  await r.body.text()
  t.equal(r.headers['x-rev'], 'one')

  // A replica with etcd unreachable: /ready is 503 and says why.
  const down = await startGateway({ config: { store: EtcdStore.connect('etcd://127.0.0.1:1/adm') }, host: '127.0.0.1', meshPort: null, portMap: { 8080: 0 }, accessLog: () => {}, initialSyncMs: 200 })
  t.teardown(() => down.close(0))
  const admin2 = await startAdmin({ gateway: down, port: 0, token: 'tok' })
  t.teardown(() => admin2.close())
  const ready = await request(admin2.url + '/ready')
  t.equal(ready.statusCode, 503)
  t.match(await ready.body.json(), { ready: false, reason: /no configuration yet: etcd unreachable since/, revision: 0, watch: 'disconnected' })
})
