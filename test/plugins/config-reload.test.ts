// Hardening table F through a running gateway (docs/testing.md#f-configuration-and-reload, F1, F2, F10 and the reject
// counter): a rejected change — from the admin API, a reload or the file watch — leaves the
// previous configuration serving, increments meshgate_config_reload_failures_total, and
// nothing is ever applied half way, including a file caught in the middle of being written.
import { open, mkdtemp, rename, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startGateway } from '../../plugins/gateway.js'
import { ConfigError } from '../../plugins/config-manager.js'
import { MAX_CONFIG_FILE_BYTES } from '../../plugins/config-files.js'
import { startAdmin } from '../../routes/admin.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { stampedRoute, subsetService, virtualService } from '../helpers/yaml.js'

const TOKEN = 'reload-test-token'
const auth = { authorization: `Bearer ${TOKEN}` }

const base = (p1: number, p2: number): string => subsetService('app', { v1: p1, v2: p2 })

/** A VirtualService whose routes stamp `x-set: <tag>` on responses; `extra` routes go first. */
const routes = (tag: string, subset = 'v1', extra = ''): string => virtualService(extra + stampedRoute('x-set', tag, subset))

async function setup (t: { teardown: (fn: () => Promise<void>) => void }, opts: { watch?: boolean } = {}): Promise<{
  gw: Awaited<ReturnType<typeof startGateway>>
  admin: Awaited<ReturnType<typeof startAdmin>>
  dir: string
  events: Array<{ ok: boolean; generation?: number }>
  get: (path?: string) => Promise<{ status: number; set: string | undefined; upstream: string }>
  failures: () => Promise<number>
}> {
  const v1 = await startUpstream('v1')
  const v2 = await startUpstream('v2')
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-hard-reload-'))
  await writeFile(join(dir, 'base.yaml'), base(v1.port, v2.port))
  await writeFile(join(dir, 'routes.yaml'), routes('A'))
  const events: Array<{ ok: boolean; generation?: number }> = []
  const gw = await startGateway({
    config: [dir],
    host: '127.0.0.1',
    meshPort: 0,
    accessLog: 'off',
    watch: opts.watch,
    watchDebounceMs: 100,
    onReload: e => events.push(e.ok ? { ok: true, generation: e.generation.generation } : { ok: false })
  })
  const admin = await startAdmin({ gateway: gw, port: 0, token: TOKEN, reloadLimit: 1000 })
  t.teardown(async () => { await admin.close(); await gw.close(); await v1.close(); await v2.close() })
  const mesh = gw.listeners.find(l => l.kind === 'mesh')!.url
  const get = async (path = '/x'): Promise<{ status: number; set: string | undefined; upstream: string }> => {
    const r = await rawRequest(mesh, path, { headers: { host: 'app' } })
    return { status: r.status, set: r.headers['x-set'] as string | undefined, upstream: r.status === 200 ? JSON.parse(r.body).upstream : '' }
  }
  const failures = async (): Promise<number> => {
    const text = (await rawRequest(admin.url, '/stats/prometheus', { headers: auth })).body
    const line = text.split('\n').find(l => l.startsWith('meshgate_config_reload_failures_total '))
    return Number(line?.split(' ')[1])
  }
  return { gw, admin, dir, events, get, failures }
}

const until = async (what: string, cond: () => boolean, ms = 10_000): Promise<void> => {
  const start = Date.now()
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

t.test('F1/F2 through the admin API: each bad change is a 400 with located problems, counted, and the old config serves', async t => {
  const { gw, admin, get, failures } = await setup(t)
  t.equal((await get()).set, 'A')
  t.equal(await failures(), 0)
  const levels = 'abcdefghi'.split('')
  let bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
  for (let i = 1; i < levels.length; i++) bomb += `${levels[i]}: &${levels[i]} [${Array(9).fill(`*${levels[i - 1]}`).join(',')}]\n`
  const bad: Array<[string, string, RegExp]> = [
    ['syntax error', routes('B').replace('hosts: ["app"]', 'hosts: ["app"'), /MG0001/],
    ['tab indentation', routes('B').replace('  hosts:', '\thosts:'), /MG0001/],
    ['truncated mid-write', routes('B').slice(0, routes('B').indexOf('set: { x-set') + 10), /MG0001|IST0106/],
    ['alias bomb', bomb, /MG0001/],
    ['duplicate keys', routes('B').replace('  hosts: ["app"]', '  hosts: ["app"]\n  hosts: [other]'), /MG0001/],
    ['CRLF in a header value', routes('"B\\r\\nx-evil: 1"'), /IST0106/]
  ]
  let expected = 0
  for (const [what, body, code] of bad) {
    const r = await rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml' }, body })
    t.equal(r.status, 400, `${what}: 400`)
    const reply = JSON.parse(r.body)
    t.ok(reply.problems.length > 0 && reply.problems.every((p: { line: number; column: number; file: string }) => p.line >= 1 && p.column >= 1 && p.file !== ''), `${what}: problems with file, line and column`)
    t.match(reply.problems.map((p: { code: string }) => p.code).join(' '), code)
    expected++
    t.equal(await failures(), expected, `${what}: meshgate_config_reload_failures_total = ${expected}`)
    t.equal(gw.config.current.generation, 1, `${what}: no new generation`)
    t.equal((await get()).set, 'A', `${what}: the previous config keeps serving`)
  }
  // A body over the cap is refused by the admin server's body limit before it is parsed.
  const huge = `# ${'x'.repeat(MAX_CONFIG_FILE_BYTES)}\n`
  const r = await rawRequest(admin.url, '/config', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml' }, body: huge }).catch(() => ({ status: 413 }))
  t.equal(r.status, 413, 'an 8 MiB+ body: 413')
  t.equal((await get()).set, 'A')
  // The last rejection stays visible in GET /config.
  const cfg = JSON.parse((await rawRequest(admin.url, '/config', { headers: auth })).body)
  t.equal(cfg.lastRejection.source, 'api')
  // A good change still goes through afterwards.
  const ok = await rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml' }, body: routes('B') })
  t.equal(ok.status, 200)
  t.equal((await get()).set, 'B')
})

t.test('F1 through files: POST /config/reload and gateway.reload() reject a broken file; a huge file is refused unread', async t => {
  const { gw, admin, dir, get, failures } = await setup(t)
  await writeFile(join(dir, 'routes.yaml'), routes('B').replace('  hosts:', '\thosts:'))
  let r = await rawRequest(admin.url, '/config/reload', { method: 'POST', headers: auth })
  t.equal(r.status, 400)
  t.match(JSON.parse(r.body).problems[0], { code: 'MG0001', file: join(dir, 'routes.yaml'), line: 5 })
  t.equal(await failures(), 1)
  t.equal((await get()).set, 'A')
  await t.rejects(gw.reload(), ConfigError, 'gateway.reload() throws ConfigError')
  t.equal(await failures(), 2)
  t.equal((await get()).set, 'A')

  // 50 MB: refused from its size, before it is read or parsed.
  const fh = await open(join(dir, 'zz-huge.yaml'), 'w')
  await fh.truncate(50 * 1024 * 1024)
  await fh.close()
  await writeFile(join(dir, 'routes.yaml'), routes('C'))
  const start = Date.now()
  r = await rawRequest(admin.url, '/config/reload', { method: 'POST', headers: auth })
  t.equal(r.status, 400)
  t.match(JSON.parse(r.body).problems, [{ code: 'MG0006', file: join(dir, 'zz-huge.yaml'), message: /52428800 bytes or more; the limit is 8388608/ }])
  t.ok(Date.now() - start < 5000, 'answered quickly')
  t.equal((await get()).set, 'A', 'all or nothing: the good routes.yaml beside it is not applied either')
  t.equal(await failures(), 3)
})

t.test('F1 --watch: write-then-rename applies once; a file caught mid-write is never half-applied; a bad file is rejected', async t => {
  const { gw, dir, events, get, failures } = await setup(t, { watch: true })
  const file = join(dir, 'routes.yaml')
  // Atomic update: write a temporary file beside it (ignored: not .yaml), then rename over.
  await writeFile(join(dir, '.routes.yaml.tmp'), routes('B'))
  await rename(join(dir, '.routes.yaml.tmp'), file)
  await until('the renamed file to be applied', () => events.length >= 1)
  t.same(events, [{ ok: true, generation: 2 }])
  t.equal((await get()).set, 'B')

  // A slow writer: the first half of the new file is itself valid YAML (the VirtualService
  // without its last route), then a pause longer than the debounce, then the rest.
  const full = routes('C', 'v2', '  - match: [{ uri: { prefix: /extra } }]\n    route: [{ destination: { host: app, subset: v1 } }]\n')
  const half = full.slice(0, full.indexOf('  - headers:'))
  const before = events.length
  const fh = await open(file, 'w')
  await fh.write(half)
  await fh.sync()
  await new Promise(resolve => setTimeout(resolve, 150))
  await fh.write(full.slice(half.length))
  await fh.close()
  await until('the completed file to be applied', () => events.slice(before).some(e => e.ok) && gw.config.current.inputs.some(i => i.text === full))
  await new Promise(resolve => setTimeout(resolve, 600))
  const applied = gw.config.history.filter(g => g.generation > 2)
  t.ok(applied.length >= 1, 'applied')
  t.ok(applied.every(g => g.inputs.find(i => i.file === file)?.text === full), 'every generation applied holds the whole file, never its first half')
  t.same(events.slice(before).filter(e => !e.ok), [], 'and nothing was rejected on the way')
  const now = await get()
  t.equal(now.set, 'C')
  t.equal(now.upstream, 'v2')

  // A truncated (syntactically broken) file written atomically: rejected, counted, old config serves.
  const fails = await failures()
  const rejectedBefore = events.filter(e => !e.ok).length
  await writeFile(join(dir, '.routes.yaml.tmp'), routes('D').slice(0, routes('D').indexOf('x-set: D') + 3))
  await rename(join(dir, '.routes.yaml.tmp'), file)
  await until('the rejection', () => events.filter(e => !e.ok).length > rejectedBefore)
  t.equal(await failures(), fails + 1, 'meshgate_config_reload_failures_total counts watch rejections')
  t.equal(gw.config.lastRejection?.source, 'watch')
  t.equal((await get()).set, 'C', 'the previous config keeps serving')
})

t.test('F10: concurrent changes are serialised, never interleaved', async t => {
  const { gw, admin, dir, get } = await setup(t)
  const put = (tag: string): Promise<{ status: number; body: string }> => rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml' }, body: routes(tag) })
  // Several admin changes at once: each gets its own generation, the last one applied is what serves.
  const replies = await Promise.all(['B', 'C', 'D', 'E'].map(tag => put(tag).then(r => ({ tag, ...r }))))
  t.ok(replies.every(r => r.status === 200), 'all accepted (queued, not refused)')
  const gens = replies.map(r => ({ tag: r.tag, generation: JSON.parse(r.body).generation as number })).sort((a, b) => a.generation - b.generation)
  t.same(gens.map(g => g.generation), [2, 3, 4, 5], 'consecutive generations, one per change')
  t.equal((await get()).set, gens[gens.length - 1].tag, 'the change applied last is the one serving')

  // A file reload racing an API change: the queue keeps them apart. The file read is
  // deliberately slow here (a watch reload waits for the files to settle), so an
  // interleaving implementation would let the API change land in the middle.
  await writeFile(join(dir, 'routes.yaml'), routes('F'))
  const order: string[] = []
  const slow = gw.config.reload('watch').then(g => { order.push(`watch:${g.generation}`) })
  const fast = gw.config.applyText(routes('G'), 'merge').then(g => { order.push(`api:${g.generation}`) })
  await Promise.all([slow, fast])
  t.same(order, ['watch:6', 'api:7'], 'the API change waited for the reload queued before it')
  t.equal((await get()).set, 'G')

  // A rejected change in the queue does not disturb the ones around it.
  const results = await Promise.allSettled([
    gw.config.applyText(routes('H'), 'merge'),
    gw.config.applyText('kind: VirtualService\n  bad: [', 'merge'),
    gw.config.applyText(routes('I'), 'merge')
  ])
  t.same(results.map(r => r.status), ['fulfilled', 'rejected', 'fulfilled'])
  t.equal(gw.config.current.generation, 9)
  t.equal((await get()).set, 'I')
})

t.test('repeated merges do not accumulate bodies', async t => {
  const { gw, admin } = await setup(t)
  for (let i = 0; i < 30; i++) {
    const r = await rawRequest(admin.url, '/config?mode=merge', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml' }, body: routes(`T${i}`) })
    t.equal(r.status, 200)
  }
  t.ok(gw.config.current.inputs.length <= 3, `inputs kept: ${gw.config.current.inputs.length} (2 files + the last body)`)
  t.equal(gw.config.current.set.virtualServices.length, 1)
})
