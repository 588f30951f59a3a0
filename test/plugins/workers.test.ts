import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MESHGATE_CLI, TS_LOADER, requestOnce as get, startCli } from '../helpers/cli.js'
import { closedPort, startUpstream } from '../helpers/upstream.js'
import { gateway, gatewayVs } from '../helpers/yaml.js'

// The real CLI with --workers 2: the primary forks two workers running the TypeScript entry
// point through tap's loader (cluster workers inherit the primary's execArgv).


function config (up: Record<string, number>, responseTag: string): string {
  const eps = Object.entries(up).map(([v, port]) => `
  - address: 127.0.0.1
    ports: { http: ${port} }
    labels: { app: web, version: ${v} }`).join('')
  return `${gateway({ namespace: 'default', selector: { istio: 'ingressgateway' } })}---
${gatewayVs(`  - route: [{ destination: { host: web.default.svc.cluster.local } }]
    # No retries: a request sent to a dead endpoint fails, so only health probes can avoid it.
    retries: { attempts: 0 }
    headers: { response: { set: { x-config: ${responseTag} } } }
`, 'web')}---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: web
  namespace: default
  annotations:
    meshgate.io/probe: '{"tcpSocket": {}, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1, "successThreshold": 1}'
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints:${eps}
`
}

t.test('--workers 2: both workers serve, admin reloads reach both, a dead endpoint is avoided by both, SIGTERM exits 0', async t => {
  const a = await startUpstream('a')
  const b = await startUpstream('b')
  t.teardown(async () => { await a.close(); await b.close().catch(() => {}) })
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-workers-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'web.yaml')
  writeFileSync(file, config({ v1: a.port, v2: b.port }, 'one'))
  const port = await closedPort()
  const adminPort = await closedPort()
  const { child, exited, lines } = await startCli(t, ['--config', dir, '--workers', '2', '--host', '127.0.0.1',
    '--port-map', `8080=${port}`, '--mesh-port', 'off', '--admin-port', String(adminPort), '--admin-token', 'secret-token',
    '--access-log', join(dir, 'access.log')], '2 workers ready')
  const waitForLine = async (pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown> | undefined> => {
    for (let i = 0; i < 200; i++) {
      const hit = lines().find(pred)
      if (hit !== undefined) return hit
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    return undefined
  }
  const ready = lines().find(l => l.msg === '2 workers ready')
  const pids = ready?.workers as number[]
  t.equal(pids.length, 2, 'two worker processes')
  t.not(pids[0], pids[1])
  t.notOk(pids.includes(child.pid!), 'the workers are not the primary')

  // Connections are dealt out round-robin: 20 fresh connections reach both workers.
  for (let i = 0; i < 20; i++) {
    const r = await get(port)
    t.equal(r.status, 200)
    t.equal(r.headers['x-config'], 'one')
  }

  // An admin reload goes through the primary to both workers before it is answered.
  writeFileSync(file, config({ v1: a.port, v2: b.port }, 'two'))
  const reload = await get(adminPort, '/config/reload', 'POST', { authorization: 'Bearer secret-token' })
  t.equal(reload.status, 200, reload.body)
  t.equal(JSON.parse(reload.body).generation, 2)
  // The primary logs before it answers; the log may still be in the stderr pipe: wait for it.
  const applied = await waitForLine(l => l.msg === 'configuration applied on every worker')
  t.same([...((applied?.workers ?? []) as number[])].sort(), [...pids].sort(), 'both workers acknowledged the change')
  t.equal(applied?.generation, 2)
  const seen = new Set<string>()
  for (let i = 0; i < 20; i++) {
    const r = await get(port)
    t.equal(r.status, 200)
    seen.add(String(r.headers['x-config']))
  }
  t.same([...seen], ['two'], 'every request after the reload runs the new configuration, whichever worker serves it')

  // A rejected change (invalid YAML) leaves both workers on the running configuration.
  writeFileSync(file, 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: bad }\nspec: { http: [{ route: 3 }] }\n')
  const bad = await get(adminPort, '/config/reload', 'POST', { authorization: 'Bearer secret-token' })
  t.equal(bad.status, 400, 'an invalid change is refused')
  t.ok(JSON.parse(bad.body).problems.length > 0, 'with its problems')
  for (let i = 0; i < 6; i++) t.equal((await get(port)).headers['x-config'], 'two')
  writeFileSync(file, config({ v1: a.port, v2: b.port }, 'two'))

  // Health coherence: endpoint b dies; each worker's own 1 s probe takes it out of rotation.
  await b.close()
  await new Promise(resolve => setTimeout(resolve, 4000))
  let ok = 0
  for (let i = 0; i < 30; i++) {
    const r = await get(port)
    if (r.status === 200 && JSON.parse(r.body).upstream === 'a') ok++
  }
  t.equal(ok, 30, 'no worker sends to the dead endpoint once the probe interval has passed')

  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM to the primary drains every worker and exits 0')
  const stopped = lines().filter(l => l.msg === 'worker stopped')
  t.same(stopped.map(l => l.pid).sort(), [...pids].sort(), 'both workers stopped')
  for (const s of stopped) t.ok((s.requests as number) > 0, `worker ${String(s.pid)} served requests (${String(s.requests)})`)
})

t.test('--workers values', async t => {
  const { parseWorkers } = await import('../../plugins/workers.js')
  const { availableParallelism } = await import('node:os')
  t.equal(parseWorkers(undefined), 1, 'default 1')
  t.equal(parseWorkers('3'), 3)
  t.equal(parseWorkers('auto'), availableParallelism(), 'auto = one per core')
  for (const bad of ['0', '-1', '1.5', 'many', '257']) t.throws(() => parseWorkers(bad), /--workers/, `"${bad}" is refused`)
  // The CLI refuses a bad value before forking anything.
  const child = spawn(process.execPath, [...TS_LOADER, MESHGATE_CLI, '--config', 'nowhere.yaml', '--workers', 'zero'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', c => { stderr += String(c) })
  const code = await new Promise<number | null>(resolve => child.on('close', c => resolve(c)))
  t.equal(code, 2, 'exit 2 on a bad --workers')
  t.match(stderr, /--workers "zero"/)
})
