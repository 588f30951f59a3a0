import t from 'tap'
import { request } from 'undici'
import { startEtcd } from '../../helpers/etcd.js'
import { startStallProxy } from '../../helpers/stall-proxy.js'
import { startUpstream } from '../../helpers/upstream.js'
import { GATEWAY, gatewayVs, serviceEntry } from '../../helpers/yaml.js'
import { startGateway } from '../../../plugins/gateway.js'
import { EtcdStore } from '../../../plugins/config-source/etcd.js'
import { desiredKeys, splitResources } from '../../../src/config/etcd-layout.js'
import { startAdmin } from '../../../routes/admin.js'

// A replica whose watch falls behind etcd (docs/scale-out.md, "a watch that falls behind"): its
// connections to etcd stall (a TCP proxy holds back what etcd sends on them, as a member that
// stopped answering would), changes are written and the history is compacted past the
// replica's revision. The replica reports `lagging` on GET /config and in its metrics, says so
// in its log, re-reads the prefix and ends in sync with the newest configuration.

const config = (rev: string, port: number): string => [GATEWAY, serviceEntry('app', { v1: port }), gatewayVs(`  - route:\n    - destination: { host: app }\n    headers: { response: { set: { x-rev: "${rev}" } } }\n`)].join('---\n')

async function until (what: string, ok: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const t0 = Date.now()
  while (!(await ok())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

t.test('a stalled watch is reported lagging past the bound, logged, and recovered by a re-list at the current revision', async t => {
  const etcd = await startEtcd(1)
  t.teardown(() => etcd.stop())
  const proxy = await startStallProxy(etcd.hosts[0])
  t.teardown(() => proxy.close())
  const up = await startUpstream('app')
  t.teardown(() => up.close())
  const writer = EtcdStore.connect(etcd.url('/lag'))
  t.teardown(() => writer.close())
  const write = async (rev: string): Promise<number> => {
    const now = await writer.list()
    return await writer.commit(now.revision, { puts: [...desiredKeys('/lag', splitResources([{ file: 'c.yaml', text: config(rev, up.port) }]).resources)], deletes: [] })
  }
  const r1 = await write('one')

  const logs: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = []
  const log = { info: (obj: object, msg: string) => logs.push({ level: 'info', obj: obj as Record<string, unknown>, msg }), warn: (obj: object, msg: string) => logs.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }) }
  const store = EtcdStore.connect(`etcd://${proxy.host}/lag`, {}, { lagCheckMs: 800, lagBoundMs: 1000, log })
  const gw = await startGateway({ config: { store }, host: '127.0.0.1', meshPort: null, portMap: { 8080: 0 }, accessLog: () => {} })
  t.teardown(() => gw.close(0))
  const admin = await startAdmin({ gateway: gw, port: 0, token: 'tok' })
  t.teardown(() => admin.close())
  const sync = async (): Promise<Record<string, unknown>> => {
    const r = await request(admin.url + '/config', { headers: { authorization: 'Bearer tok' } })
    return (await r.body.json() as { sync: Record<string, unknown> }).sync
  }
  const served = async (): Promise<string> => {
    const r = await request(gw.listeners.find(l => l.kind === 'gateway')!.url + '/')
    await r.body.text()
    return String(r.headers['x-rev'])
  }
  t.match(await sync(), { revision: r1, watch: 'connected' })
  t.equal(await served(), 'one')

  // Stall every connection the replica has to etcd, then change the configuration and compact
  // the history past the replica's revision.
  proxy.stall()
  const t0 = Date.now()
  const r2 = await write('two')
  await etcd.compact()
  t.equal(gw.config.current.revision, r1, 'the stalled watch brings nothing')

  // Lagging once it has been behind for longer than the bound: on GET /config, /ready and the
  // metrics, read together (lagging lasts until the next check after the re-list).
  await until('lagging', () => gw.config.syncStatus()?.watch === 'lagging', 15_000)
  t.ok(Date.now() - t0 >= 1000, 'not before the bound (from the write the watch missed)')
  const [cfg, ready, metrics] = await Promise.all([sync(), request(admin.url + '/ready').then(async r => ({ status: r.statusCode, json: await r.body.json() })), gw.metrics.text()])
  t.match(cfg, { watch: 'lagging', reason: /^the watch is at revision \d+, etcd's configuration at revision \d+, for \d+ ms$/ }, 'GET /config: lagging, and why')
  t.same(ready.status, 200, 'still ready: it serves the configuration it has')
  t.match(ready.json, { ready: true, watch: 'lagging' }, '/ready shows the watch state')
  t.match(metrics, /meshgate_config_watch_state\{state="lagging"\} 1/)
  t.match(metrics, /meshgate_config_watch_state\{state="connected"\} 0/)

  // Recovered: the prefix re-read at the current revision, the newest configuration running,
  // the state back to connected.
  await until('in sync again', async () => { const s = await sync(); return s.watch === 'connected' && s.revision === r2 })
  t.equal(gw.config.current.revision, r2)
  t.equal(await served(), 'two')
  t.match(await gw.metrics.text(), /meshgate_config_relists_total [1-9]/)
  t.match(await gw.metrics.text(), new RegExp(`meshgate_config_revision ${r2}\\n`))
  const behind = logs.find(l => l.level === 'warn' && /behind etcd/.test(l.msg))
  t.ok(behind, 'the lag is logged')
  t.match(behind?.obj, { revision: r1, etcdRevision: r2 })
  t.ok(logs.some(l => l.level === 'info' && /re-read/.test(l.msg) && l.obj.revision === r2 && l.obj.why === 'lag'), 'the re-list is logged')
  t.ok(logs.some(l => l.level === 'info' && /in sync again/.test(l.msg)), 'and the return to sync')

  // The new watch follows later changes as usual.
  const r3 = await write('three')
  await until('the next change', () => gw.config.current.revision === r3)
  t.equal(await served(), 'three')
  t.equal((await sync()).watch, 'connected')

  // A deletion alone (written around meshgate, so no other key moves) is noticed too: the key
  // the watch delivered is gone from etcd.
  proxy.stall()
  const del = await etcd.client.delete().key('/lag/VirtualService/default/app').exec()
  const r4 = Number(del.header.revision)
  await until('lagging after the deletion', async () => (await sync()).watch === 'lagging')
  await until('in sync without the VirtualService', async () => { const s = await sync(); return s.watch === 'connected' && s.revision === r4 })
  const r = await request(gw.listeners.find(l => l.kind === 'gateway')!.url + '/')
  await r.body.text()
  t.equal(r.statusCode, 404, 'the route left with its VirtualService')
})
