import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startEtcd } from '../helpers/etcd.js'
import { GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'
import { ctl } from '../../plugins/config-source/cli.js'

// meshgate apply / get / delete against a real etcd, as kubectl does them.

t.test('apply, get, delete', async t => {
  const etcd = await startEtcd(1)
  t.teardown(() => etcd.stop())
  const url = etcd.url('/cli')
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-cli-'))
  writeFileSync(join(dir, 'a.yaml'), [GATEWAY, serviceEntry('app', { v1: 9 })].join('---\n'))
  writeFileSync(join(dir, 'b.yaml'), gatewayVs('  - route:\n    - destination: { host: app }\n'))
  const run = async (cmd: 'apply' | 'delete' | 'get', ...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = ''
    let err = ''
    const code = await ctl(cmd, args, { out: s => { out += s }, err: s => { err += s }, env: { MESHGATE_CONFIG: url } })
    return { code, out, err }
  }
  const a = await run('apply', '-f', dir)
  t.equal(a.code, 0, a.err)
  t.match(a.out, /Gateway default\/gw created\nServiceEntry default\/app created\nVirtualService default\/app created\nrevision \d+\n/)
  const again = await run('apply', '-f', dir)
  t.match(again.out, /Gateway default\/gw unchanged/)

  const g = await run('get')
  t.same(g.out.trimEnd().split('\n').map(l => l.split(/\s+/)).slice(0, 4), [['KIND', 'NAMESPACE', 'NAME', 'LEASE'], ['Gateway', 'default', 'gw'], ['ServiceEntry', 'default', 'app'], ['VirtualService', 'default', 'app']])
  t.match(g.out, /\nrevision \d+\n$/)
  const one = await run('get', 'virtualservice', 'app', '-o', 'yaml')
  t.match(one.out, /^apiVersion: networking\.istio\.io\/v1\nkind: VirtualService/)
  t.equal((await run('get', 'VirtualService', 'nope')).code, 1)

  const d = await run('delete', '-f', join(dir, 'b.yaml'))
  t.equal(d.code, 0, d.err)
  t.match(d.out, /VirtualService default\/app deleted\nrevision \d+/)
  t.notMatch((await run('get')).out, /VirtualService/)
  t.equal((await run('delete', '-f', join(dir, 'b.yaml'))).out.split('\n')[0], 'VirtualService default/app not found')

  // --if-revision: a change based on a revision read earlier. Someone else's write since then
  // refuses it with the current revision and how to retry; nothing is written.
  const base = Number(/revision (\d+)/.exec((await run('get')).out)![1])
  writeFileSync(join(dir, 'c.yaml'), gatewayVs('  - route:\n    - destination: { host: app }\n      weight: 100\n'))
  const other = await run('apply', '-f', join(dir, 'b.yaml'))
  const now = Number(/revision (\d+)/.exec(other.out)![1])
  t.ok(now > base)
  const stale = await run('apply', '-f', join(dir, 'c.yaml'), '--if-revision', String(base))
  t.equal(stale.code, 1)
  t.equal(stale.err, `meshgate apply: not written: the configuration is at revision ${now}, not ${base} (someone else changed it): read it again (meshgate get) and retry with --if-revision ${now}, or without --if-revision to apply over the newest revision\n`)
  t.notMatch(await etcd.client.get('/cli/VirtualService/default/app').string(), /weight: 100/, 'nothing written')
  const retried = await run('apply', '-f', join(dir, 'c.yaml'), '--if-revision', String(now))
  t.equal(retried.code, 0, retried.err)
  t.match(retried.out, /VirtualService default\/app configured\nrevision \d+\n/)
  t.equal((await run('apply', '-f', join(dir, 'c.yaml'), '--if-revision', 'x')).code, 2, 'not a revision')

  // Usage errors: exit 2.
  t.equal((await ctl('apply', [], { out: () => {}, err: () => {}, env: { MESHGATE_CONFIG: url } })), 2)
  t.equal((await ctl('get', [], { out: () => {}, err: () => {}, env: {} })), 2, 'no etcd URL')
})
