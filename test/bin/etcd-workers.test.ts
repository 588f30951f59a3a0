import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MESHGATE_CLI, TS_LOADER, requestOnce as get, startCli } from '../helpers/cli.js'
import { startEtcd } from '../helpers/etcd.js'
import { closedPort, startUpstream } from '../helpers/upstream.js'
import { GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'
import { ctl } from '../../plugins/config-source/cli.js'

// The real CLI with --config etcd://… --workers 2: the primary holds the one etcd watch and
// relays every revision to both workers; a change written with meshgate apply, and one written
// through worker 1's admin API, reach both; SIGTERM drains and exits 0. And --watch with etcd is
// refused with the reason.

const vs = (rev: string): string => gatewayVs(`  - route:\n    - destination: { host: app }\n    headers: { response: { set: { x-rev: "${rev}" } } }\n`)

t.test('--workers 2 with etcd: one watch in the primary, every revision on both workers, writes from the CLI and the admin API', async t => {
  const etcd = await startEtcd(1)
  t.teardown(() => etcd.stop())
  const up = await startUpstream('app')
  t.teardown(() => up.close())
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-etcd-workers-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const url = etcd.url('/wk')
  const apply = async (text: string): Promise<number> => {
    const f = join(dir, `${Math.random().toString(36).slice(2)}.yaml`)
    writeFileSync(f, text)
    let out = ''
    let err = ''
    const code = await ctl('apply', ['-f', f, '--config', url], { out: s => { out += s }, err: s => { err += s }, env: {} })
    t.equal(code, 0, err)
    return Number(/revision (\d+)/.exec(out)![1])
  }
  const r1 = await apply([GATEWAY, serviceEntry('app', { v1: up.port }), vs('one')].join('---\n'))

  const port = await closedPort()
  const adminPort = await closedPort()
  const cli = await startCli(t, ['--config', url, '--workers', '2', '--host', '127.0.0.1', '--port-map', `8080=${port}`, '--mesh-port', 'off',
    '--admin-port', String(adminPort), '--admin-token', 'tok', '--access-log', 'off'], '2 workers ready')
  const lines = cli.lines
  const pids = lines().find(l => l.msg === '2 workers ready')?.workers as number[]
  t.equal(pids.length, 2, 'two worker processes')

  const auth = { authorization: 'Bearer tok' }
  const sync = async (): Promise<Record<string, unknown>> => (JSON.parse((await get(adminPort, '/config', 'GET', auth)).body) as { sync: Record<string, unknown> }).sync
  t.match(await sync(), { url, synced: true, revision: r1, watch: 'connected' }, "worker 1's view: the revision and the primary's watch state")
  t.equal((await get(adminPort, '/ready')).status, 200)
  // One watch on etcd for the whole set: the primary's.
  const metrics = await get(Number(etcd.hosts[0].split(':')[1]), '/metrics')
  t.match(metrics.body, /\netcd_debugging_mvcc_watcher_total 1\n/, 'etcd serves exactly one watcher')

  const everyWorker = async (rev: string): Promise<void> => {
    const t0 = Date.now()
    for (let ok = 0; ok < 12;) {
      const r = await get(port)
      if (r.status === 200 && r.headers['x-rev'] === rev) ok++
      else ok = 0
      if (Date.now() - t0 > 20_000) throw new Error(`not every worker on "${rev}": ${r.status} ${String(r.headers['x-rev'])}`)
    }
  }
  await everyWorker('one')

  // A change written with the CLI: both workers, through the primary's watch.
  const r2 = await apply(vs('two'))
  await everyWorker('two')
  t.equal((await sync()).revision, r2)

  // A change through worker 1's admin API: written to etcd (through the primary), then on both.
  const put = await get(adminPort, '/config?mode=merge', 'PUT', { ...auth, 'content-type': 'application/yaml' }, vs('three'))
  t.equal(put.status, 200, put.body)
  t.match(await etcd.client.get('/wk/VirtualService/default/app').string(), /x-rev: "three"/)
  await everyWorker('three')
  const s3 = await sync()
  t.ok((s3.revision as number) > r2)
  t.equal(put.headers.etag, `"${String(s3.revision)}"`, 'the ETag is the revision written')

  cli.child.kill('SIGTERM')
  t.equal(await cli.exited, 0, 'SIGTERM drains every worker and exits 0')
  const stopped = lines().filter(l => l.msg === 'worker stopped')
  t.same(stopped.map(l => l.pid).sort(), [...pids].sort(), 'both workers stopped')
  for (const s of stopped) t.ok((s.requests as number) > 0, `worker ${String(s.pid)} served requests`)
})

t.test('--watch with etcd is refused, saying why and what to do', async t => {
  const child = spawn(process.execPath, [...TS_LOADER, MESHGATE_CLI, '--config', 'etcd://127.0.0.1:2379/x', '--watch'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', c => { stderr += String(c) })
  t.equal(await new Promise<number | null>(resolve => child.on('close', c => resolve(c))), 2)
  t.equal(stderr, 'meshgate: --watch reloads configuration files when they change; with --config etcd://… there are no files to watch, and every change written to etcd is applied already through its watch: drop --watch (and MESHGATE_WATCH)\n')
})
