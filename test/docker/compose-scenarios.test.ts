import { copyFile, cp, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { type RunningService, startService } from '../../demo/bookinfo/index.js'
import { startGateway } from '../../plugins/gateway.js'
import { startAdmin } from '../../routes/admin.js'
import { ROOT, environment, readCompose } from './parse.js'

// The scenario switching for docker compose (docs/docker.md#switching-scenarios), run against
// meshgate started the way the compose file starts it: the config paths of its MESHGATE_CONFIG,
// --watch, the admin API with a token. The mount is a copy of ./gateway-config in which the
// compose registry's DNS names are replaced by loopback stand-ins (no Docker DNS here); every
// other file is the repository's.

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

async function until (what: string, cond: () => Promise<boolean>, ms = 15000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`)
    await sleep(100)
  }
}

/** GET /reviews/0 through the mesh listener with productpage's Host; the pod that answered. */
async function reviewsPod (mesh: string, headers: Record<string, string> = {}): Promise<string> {
  const u = new URL(mesh)
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: Number(u.port), path: '/reviews/0', headers: { host: 'reviews:9080', ...headers }, agent: false }, res => {
      let body = ''
      res.on('data', c => { body += c })
      res.on('end', () => { try { resolve(String(JSON.parse(body).podname)) } catch { resolve(`status ${res.statusCode}`) } })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

async function pods (mesh: string, n: number, headers: Record<string, string> = {}): Promise<Set<string>> {
  const out = new Set<string>()
  for (let i = 0; i < n; i++) out.add(await reviewsPod(mesh, headers))
  return out
}

t.test('compose scenario switching: admin API merge and reload, and the watched active/ directory', async t => {
  const compose = readCompose('docker-compose.yml')
  const meshgate = compose.services.meshgate
  const env = environment(meshgate)
  t.ok(meshgate.command?.includes('--watch'), 'compose runs meshgate with --watch')

  // Stand-ins for the six workloads, on free loopback ports. Ratings is called directly (not
  // through the mesh) so that no name needs resolving.
  const services: RunningService[] = []
  t.teardown(async () => { for (const s of services) await s.close() })
  const ratings = await startService('ratings', { port: 0 })
  services.push(ratings)
  const byName = new Map<string, RunningService>([['ratings-v1', ratings]])
  for (const v of ['v1', 'v2', 'v3']) {
    const s = await startService('reviews', { port: 0, version: v, podname: `reviews-${v}`, ratingsHostname: '127.0.0.1', ratingsPort: ratings.port })
    services.push(s)
    byName.set(`reviews-${v}`, s)
  }
  for (const name of ['productpage', 'details'] as const) {
    const s = await startService(name, { port: 0 })
    services.push(s)
    byName.set(`${name}-v1`, s)
  }

  // The mount: ./gateway-config copied, compose/services.yaml endpoints pointed at the stand-ins.
  const mount = await mkdtemp(join(tmpdir(), 'meshgate-compose-'))
  t.teardown(() => rm(mount, { recursive: true, force: true }))
  await cp(join(ROOT, 'gateway-config'), mount, { recursive: true })
  // A developer's own scenario copies in active/ are not part of the test.
  for (const f of await readdir(join(mount, 'compose', 'active'))) if (f.endsWith('.yaml') && f !== '00-none.yaml') await unlink(join(mount, 'compose', 'active', f))
  const registry = join(mount, 'compose', 'services.yaml')
  const docs = parseAllDocuments(await readFile(registry, 'utf8'))
  for (const d of docs) {
    const eps = d.getIn(['spec', 'endpoints']) as { items: unknown[] } | undefined
    eps?.items.forEach((_e, i) => {
      const name = String(d.getIn(['spec', 'endpoints', i, 'address']))
      const s = byName.get(name)
      if (s === undefined) throw new Error(`no stand-in for ${name}`)
      d.setIn(['spec', 'endpoints', i, 'address'], '127.0.0.1')
      d.setIn(['spec', 'endpoints', i, 'ports', 'http'], s.port)
    })
    d.setIn(['spec', 'resolution'], 'STATIC')
  }
  await writeFile(registry, docs.map(d => d.toString()).join('---\n'))
  const paths = env.MESHGATE_CONFIG.split(',').map(p => p.replace(/^\/etc\/meshgate/, mount))

  const reloads: string[] = []
  const rejections: string[] = []
  const gw = await startGateway({
    config: paths,
    host: '127.0.0.1',
    meshPort: 0,
    portMap: { 8080: 0 },
    accessLog: 'off',
    watch: true,
    onReload: e => { reloads.push(e.ok ? 'ok' : 'rejected'); if (!e.ok) rejections.push(e.problems.map(p => p.message).join('; ')) }
  })
  t.teardown(() => gw.close(0))
  const token = 'compose-test-token'
  const admin = await startAdmin({ gateway: gw, host: '127.0.0.1', port: 0, token })
  t.teardown(() => admin.close())
  const mesh = gw.listeners.find(l => l.kind === 'mesh')!.url
  const auth = { authorization: `Bearer ${token}` }
  const put = async (scenario: string): Promise<number> => (await fetch(`${admin.url}/config?mode=merge`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/yaml' },
    body: await readFile(join(ROOT, 'gateway-config/scenarios', `${scenario}.yaml`), 'utf8')
  })).status
  const reload = async (): Promise<number> => (await fetch(`${admin.url}/config/reload`, { method: 'POST', headers: auth })).status

  await until('base: reviews rotates over v1, v2, v3', async () => (await pods(mesh, 12)).size === 3)

  // Admin API: merge the fallback scenario; v3 only; stopping v3 falls back to v2.
  t.equal(await put('fallback-v3-to-v2'), 200, 'PUT ?mode=merge fallback-v3-to-v2')
  t.same([...await pods(mesh, 8)], ['reviews-v3'], 'fallback scenario: v3 serves')
  const v3 = byName.get('reviews-v3')!
  await v3.close()
  await until('v2 serves with v3 stopped', async () => (await reviewsPod(mesh)) === 'reviews-v2')
  t.same([...await pods(mesh, 8)], ['reviews-v2'], 'v3 stopped: v2 serves')
  const restarted = await startService('reviews', { host: '127.0.0.1', port: v3.port, version: 'v3', podname: 'reviews-v3', ratingsHostname: '127.0.0.1', ratingsPort: ratings.port })
  services.push(restarted)
  await until('v3 serves again', async () => (await reviewsPod(mesh)) === 'reviews-v3')

  // Merged scenarios do not combine for one host: the first VirtualService applies.
  t.equal(await put('reviews-jason-v2'), 200, 'PUT a second scenario without reloading')
  t.same([...await pods(mesh, 4, { 'end-user': 'jason' })], ['reviews-v3'], 'the earlier fallback VirtualService still decides (why docs/docker.md says reload first)')
  t.equal(await reload(), 200, 'POST /config/reload')
  await until('reload: back to the mounted files', async () => (await pods(mesh, 12)).size === 3)

  // The two-file request-routing task, applied in order.
  t.equal(await put('all-v1'), 200, 'PUT all-v1')
  t.equal(await put('reviews-jason-v2'), 200, 'PUT reviews-jason-v2')
  t.same([...await pods(mesh, 6)], ['reviews-v1'], 'anonymous: v1')
  t.same([...await pods(mesh, 6, { 'end-user': 'jason' })], ['reviews-v2'], 'jason: v2')
  t.equal(await reload(), 200, 'POST /config/reload')

  // The mounted directory: copy a scenario into compose/active/, meshgate reloads by itself.
  const active = join(mount, 'compose', 'active', 'fallback-v3-to-v2.yaml')
  await until('base again', async () => (await pods(mesh, 12)).size === 3)
  const before = reloads.length
  await copyFile(join(ROOT, 'gateway-config/scenarios/fallback-v3-to-v2.yaml'), active)
  await until('the watch applies the copied scenario', async () => [...await pods(mesh, 4)].join() === 'reviews-v3')
  t.ok(reloads.length > before && reloads.at(-1) === 'ok', `reloaded by the file watch (${reloads.join(',')}; ${rejections.join(' | ')})`)
  const afterCopy = reloads.length
  await unlink(active)
  await until('deleting it goes back to the base', async () => (await pods(mesh, 12)).size === 3)
  t.ok(reloads.length > afterCopy && !reloads.includes('rejected'), `the deletion reloaded too; no reload was rejected (${reloads.join(',')}; ${rejections.join(' | ')})`)
})
