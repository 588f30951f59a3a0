import t from 'tap'
import { request } from 'undici'
import { startEtcd, type EtcdCluster } from '../../helpers/etcd.js'
import { startUpstream } from '../../helpers/upstream.js'
import { GATEWAY, gatewayVs, serviceEntry } from '../../helpers/yaml.js'
import { startGateway, type RunningGateway } from '../../../plugins/gateway.js'
import { EtcdStore } from '../../../plugins/config-source/etcd.js'
import { ctl } from '../../../plugins/config-source/cli.js'
import { ConfigError, ConflictError } from '../../../plugins/config-manager.js'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// Replicas following one configuration in a real 3-member etcd (docs/scale-out.md): every
// revision applied whole by every replica, refused alike when invalid, writes guarded by
// revision, and the faults of issue 17 — a member or the leader lost, all members lost, a
// compaction, a replica started while etcd is down.

let etcd: EtcdCluster
t.before(async () => { etcd = await startEtcd(3) })
t.teardown(async () => { await etcd.stop() })

let prefixes = 0
const dir = mkdtempSync(join(tmpdir(), 'meshgate-etcd-cfg-'))

/** The route's response header `x-rev` tells which configuration answered. */
const config = (rev: number | string, upstreamPort: number): string => [
  GATEWAY,
  serviceEntry('app', { v1: upstreamPort }),
  gatewayVs(`  - route:\n    - destination: { host: app }\n    headers: { response: { set: { x-rev: "${rev}" } } }\n`)
].join('---\n')

async function apply (url: string, yaml: string): Promise<{ code: number; out: string; err: string }> {
  const f = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`)
  writeFileSync(f, yaml)
  let out = ''
  let err = ''
  const code = await ctl('apply', ['-f', f, '--config', url], { out: s => { out += s }, err: s => { err += s }, env: {} })
  return { code, out, err }
}

async function replica (url: string, initialSyncMs = 5000): Promise<RunningGateway & { ingress: string }> {
  const gw = await startGateway({ config: { store: EtcdStore.connect(url) }, host: '127.0.0.1', meshPort: null, portMap: { 8080: 0 }, accessLog: () => {}, initialSyncMs, overload: false })
  // A getter: a replica that starts before its first sync opens its Gateway listener later.
  return Object.defineProperty(gw, 'ingress', { get: () => gw.listeners.find(l => l.kind === 'gateway')?.url ?? '' }) as RunningGateway & { ingress: string }
}

async function until (what: string, ok: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const t0 = Date.now()
  while (!(await ok())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

async function rev (gw: { ingress: string }): Promise<string> {
  const r = await request(gw.ingress + '/x')
  await r.body.text()
  return `${r.statusCode} ${String(r.headers['x-rev'])}`
}

/** Requests in a loop against the replicas until stopped; counts failures. */
function load (gws: Array<{ ingress: string }>): { stop: () => Promise<{ ok: number; failed: string[] }> } {
  let running = true
  const failed: string[] = []
  let ok = 0
  const loops = gws.map(async gw => {
    while (running) {
      try {
        const r = await request(gw.ingress + '/x')
        await r.body.text()
        if (r.statusCode === 200) ok++
        else failed.push(String(r.statusCode))
      } catch (err) { failed.push((err as Error).message) }
    }
  })
  return { stop: async () => { running = false; await Promise.all(loops); return { ok, failed } } }
}

t.test('replicas apply each revision whole; an invalid one is refused by all; writes are guarded by revision', async t => {
  const up = await startUpstream('app')
  t.teardown(() => up.close())
  const url = etcd.url(`/mg${++prefixes}`)
  const a0 = await apply(url, config(1, up.port))
  t.equal(a0.code, 0, a0.err)
  t.match(a0.out, /Gateway default\/gw created\nServiceEntry default\/app created\nVirtualService default\/app created\nrevision \d+/)
  const gws = [await replica(url), await replica(url)]
  t.teardown(async () => { for (const g of gws) await g.close(0) })
  for (const g of gws) {
    t.ok(g.ready, 'ready after the first sync')
    t.equal(await rev(g), '200 1')
  }
  // A change from the CLI reaches both replicas.
  const a1 = await apply(url, config(2, up.port))
  t.match(a1.out, /VirtualService default\/app configured/)
  t.match(a1.out, /ServiceEntry default\/app unchanged/)
  const r1 = Number(/revision (\d+)/.exec(a1.out)![1])
  await until('both replicas on the change', () => gws.every(g => g.config.current.revision === r1))
  for (const g of gws) t.equal(await rev(g), '200 2')

  // The CLI validates before writing: file:line and field, exit 1, nothing written.
  const bad = await apply(url, gatewayVs('  - route:\n    - destination: { host: app }\n      weight: -1\n'))
  t.equal(bad.code, 1)
  t.match(bad.err, /c[a-z0-9]+\.yaml:\d+:\d+\) spec\.http\[0\]\.route\[0\]\.weight/)
  t.equal((await etcd.client.get(`/mg${prefixes}/VirtualService/default/app`).string())?.includes('weight: -1'), false)

  // A revision written around meshgate (etcdctl) that is invalid: refused by every replica,
  // which keep serving the last good one and show the refusal.
  const put = await etcd.client.put(`/mg${prefixes}/VirtualService/default/app`).value(gatewayVs('  - route:\n    - destination: { host: nowhere-known }\n      weight: -1\n')).exec()
  const badRev = Number(put.header.revision)
  await until('the refusal on both', () => gws.every(g => g.config.lastRejection?.revision === badRev))
  for (const g of gws) {
    t.equal(g.config.current.revision, r1, 'last good revision kept')
    t.equal(await rev(g), '200 2')
    t.equal(g.config.syncStatus()?.refusedRevision, badRev)
    t.match(await g.metrics.text(), new RegExp(`meshgate_config_refused_revision ${badRev}`))
    t.match(await g.metrics.text(), new RegExp(`meshgate_config_revision ${r1}`))
    t.match(await g.metrics.text(), /meshgate_config_watch_state\{state="connected"\} 1/)
  }

  // Writes through a replica's manager (what the admin API calls) go to etcd and reach the other.
  const g3 = await gws[0].config.applyText(config(3, up.port), 'replace')
  t.ok((g3.revision ?? 0) > badRev, 'written as a new revision, repairing the refused one')
  await until('the other replica', () => gws[1].config.current.revision === g3.revision)
  t.equal(await rev(gws[1]), '200 3')
  // An invalid change through the API is refused before anything is written.
  await t.rejects(gws[1].config.applyText('kind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [a], http: 7}\n', 'merge'), ConfigError)

  // A stale base: someone wrote with meshgate after the revision this replica saw.
  const store = EtcdStore.connect(url)
  t.teardown(() => store.close())
  const conflict = await store.commit(r1, { puts: [], deletes: [] }).then(() => undefined, (e: unknown) => e)
  t.ok(conflict instanceof ConflictError, 'a write based on a stale revision is refused')
  t.equal((conflict as ConflictError).statusCode, 409)
  t.ok((conflict as ConflictError).currentRevision >= g3.revision!, 'with the current revision')

  // Rollback to a named earlier revision: the configuration of r1 again, as a new revision.
  const back = await gws[1].config.rollback(r1)
  t.ok(back.revision! > g3.revision!)
  await until('rollback everywhere', () => gws.every(g => g.config.current.revision === back.revision))
  for (const g of gws) t.equal(await rev(g), '200 2')
})

t.test('a replica started while etcd is down is not ready and says why; it syncs when etcd returns', async t => {
  const up = await startUpstream('app')
  t.teardown(() => up.close())
  const url = etcd.url(`/mg${++prefixes}`)
  t.equal((await apply(url, config('late', up.port))).code, 0)
  for (let i = 0; i < 3; i++) await etcd.kill(i)
  const gw = await replica(url, 300)
  t.teardown(() => gw.close(0))
  t.equal(gw.ready, false)
  t.match(gw.notReadyReason, /no configuration yet: etcd unreachable since \d{4}-/)
  t.equal(gw.config.syncStatus()?.watch, 'disconnected')
  t.match(gw.config.syncStatus()?.reason, /./, 'the error, for GET /config')
  t.match(await gw.metrics.text(), /meshgate_config_synced 0/)
  t.equal(gw.listeners.filter(l => l.kind === 'gateway').length, 0, 'no Gateway listener before a configuration')
  await etcd.restart(0, 1, 2)
  await until('ready once etcd is back', () => gw.ready && gw.ingress !== '', 15_000)
  t.equal(gw.notReadyReason, undefined)
  t.equal(await rev(gw), '200 late', 'the Gateway listener opened with the first configuration')
})

t.test('faults: a member, then the leader, lost under load; all members down and back: no failed request, no missed change', async t => {
  const up = await startUpstream('app')
  t.teardown(() => up.close())
  const url = etcd.url(`/mg${++prefixes}`)
  t.equal((await apply(url, config(0, up.port))).code, 0)
  const gws = [await replica(url), await replica(url)]
  t.teardown(async () => { for (const g of gws) await g.close(0) })
  const traffic = load(gws)
  const seen: number[][] = gws.map(() => [])
  const timer = setInterval(() => gws.forEach((g, i) => { const r = g.config.current.revision ?? 0; if (seen[i].at(-1) !== r) seen[i].push(r) }), 5)
  t.teardown(() => clearInterval(timer))
  let n = 0
  // The CLI's apply, retried while the cluster elects a leader or is down.
  const change = async (): Promise<number> => {
    n++
    for (let i = 0; ; i++) {
      const a = await apply(url, config(n, up.port))
      if (a.code === 0) return Number(/revision (\d+)/.exec(a.out)![1])
      if (i > 40) throw new Error(a.err)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
  const converged = async (what: string, last: number): Promise<void> => {
    await until(what, () => gws.every(g => g.config.current.revision === last), 15_000)
    for (const g of gws) t.equal(await rev(g), `200 ${n}`, what)
  }
  const follower = ((await etcd.leader()) + 1) % 3
  await etcd.kill(follower)
  await change()
  await converged('a follower lost', await change())
  await etcd.restart(follower)
  const leader = await etcd.leader()
  await etcd.kill(leader)
  await change()
  await converged('the leader lost', await change())
  await etcd.restart(leader)

  // All members down: the replicas keep serving their configuration, stay ready, and say they
  // are disconnected.
  for (let i = 0; i < 3; i++) await etcd.kill(i)
  await until('disconnected', () => gws.every(g => g.config.syncStatus()?.watch === 'disconnected'))
  for (const g of gws) t.equal(await rev(g), `200 ${n}`, 'still serving with etcd down')
  t.ok(gws.every(g => g.ready), 'still ready: the configuration they have is whole')
  t.match(await gws[0].metrics.text(), /meshgate_config_watch_state\{state="disconnected"\} 1/)
  await etcd.restart(0, 1, 2)
  await change()
  await converged('etcd back', await change())
  const stats = await traffic.stop()
  t.same(stats.failed.slice(0, 5), [], `no failed request (${stats.ok} served)`)
  t.ok(stats.ok > 50)
  for (const s of seen) t.same(s, [...s].sort((a, b) => a - b), 'revisions applied in order')
})

t.test('compaction: a watch whose resume point was compacted re-lists and misses nothing', async t => {
  const prefix = `/mg${++prefixes}`
  const logs: string[] = []
  const store = EtcdStore.connect(etcd.url(prefix), {}, { log: { info: (o, m) => logs.push(`info ${m} ${JSON.stringify(o)}`), warn: (o, m) => logs.push(`warn ${m} ${JSON.stringify(o)}`) } })
  t.teardown(() => store.close())
  const old = await store.list()
  await store.commit(old.revision, { puts: [[`${prefix}/ServiceEntry/default/a`, 'a']], deletes: [] })
  const r2 = await store.commit(old.revision + 1, { puts: [[`${prefix}/ServiceEntry/default/b`, 'b']], deletes: [] })
  await etcd.compact()
  // Resuming from `old` is impossible now: etcd cancels the watch, the store re-lists.
  const got: Array<{ revision: number; keys: string[] }> = []
  store.watch(old, s => got.push({ revision: s.revision, keys: [...s.keys.keys()].sort() }))
  await until('the re-list', () => got.length > 0)
  t.equal(store.relists, 1)
  t.ok(got[0].revision >= r2)
  t.match(logs[0], /^warn etcd watch cancelled \(its resume revision was compacted away\): re-reading the whole prefix at the current revision \{"revision":\d+,"err":"Watcher canceled/, 'the cancellation is logged')
  t.match(logs[1], new RegExp(`^info etcd prefix re-read: watching again from its revision \\{"revision":${got[0].revision},"why":"compaction"\\}$`), 'and the re-list')
  t.same(got[0].keys, [`${prefix}/ServiceEntry/default/a`, `${prefix}/ServiceEntry/default/b`])
  // And the watch goes on from there.
  const r3 = await store.commit(got[0].revision, { puts: [], deletes: [`${prefix}/ServiceEntry/default/a`] })
  await until('the next change', () => got.some(g => g.revision === r3))
  t.same(got.at(-1)?.keys, [`${prefix}/ServiceEntry/default/b`])
})
t.test('3 replicas under load, 100 applied changes: zero failed requests, all converge', async t => {
  const up = await startUpstream('app')
  t.teardown(() => up.close())
  const url = etcd.url(`/mg${++prefixes}`)
  const writer = EtcdStore.connect(url)
  t.teardown(() => writer.close())
  t.equal((await apply(url, config(0, up.port))).code, 0)
  const gws = [await replica(url), await replica(url), await replica(url)]
  t.teardown(async () => { for (const g of gws) await g.close(0) })
  const traffic = load(gws)
  const times: number[] = []
  let last = 0
  for (let i = 1; i <= 100; i++) {
    // The write the CLI does, without re-reading the files each time.
    const now = await writer.list()
    const t0 = performance.now()
    last = await writer.commit(now.revision, { puts: [[`${writer.prefix}/VirtualService/default/app`, gatewayVs(`  - route:\n    - destination: { host: app }\n    headers: { response: { set: { x-rev: "${i}" } } }\n`)]], deletes: [] })
    await until(`change ${i} on every replica`, () => gws.every(g => (g.config.current.revision ?? 0) >= last))
    times.push(performance.now() - t0)
  }
  const stats = await traffic.stop()
  t.same(stats.failed.slice(0, 5), [], `no failed request (${stats.ok} served)`)
  t.ok(stats.ok > 100)
  t.same(gws.map(g => g.config.current.revision), [last, last, last], 'all on the same revision')
  for (const g of gws) t.equal(await rev(g), '200 100')
  times.sort((a, b) => a - b)
  const p = (q: number): number => Math.round(times[Math.min(times.length - 1, Math.floor(q * times.length))] * 10) / 10
  t.comment(`convergence (commit → applied on all 3 replicas) over 100 changes: p50 ${p(0.5)} ms, p99 ${p(0.99)} ms`)
})
