import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { request } from 'undici'
import { startEtcd } from '../helpers/etcd.js'
import { startUpstream } from '../helpers/upstream.js'
import { GATEWAY, gatewayVs } from '../helpers/yaml.js'
import { startGateway } from '../../plugins/gateway.js'
import { EtcdStore } from '../../plugins/config-source/etcd.js'
import { desiredKeys, splitResources } from '../../src/config/etcd-layout.js'

// `meshgate register` keeps a WorkloadEntry under an etcd lease; when the process dies (SIGKILL:
// no goodbye), the endpoint leaves the replica's cluster within the TTL.

const bin = fileURLToPath(new URL('../../bin/meshgate.ts', import.meta.url))

t.test('a registered endpoint joins the cluster, and leaves within the TTL when its process dies', async t => {
  const etcd = await startEtcd(3)
  t.teardown(() => etcd.stop())
  const up = await startUpstream('reg')
  t.teardown(() => up.close())
  const url = etcd.url('/reg')
  const yaml = [GATEWAY, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: app }
spec:
  hosts: [app]
  location: MESH_INTERNAL
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  resolution: STATIC
  workloadSelector: { labels: { app: reg } }
`, gatewayVs('  - route:\n    - destination: { host: app }\n')].join('---\n')
  const writer = EtcdStore.connect(url)
  t.teardown(() => writer.close())
  await writer.commit(0, { puts: [...desiredKeys('/reg', splitResources([{ file: 'c.yaml', text: yaml }]).resources)], deletes: [] })
  const gw = await startGateway({ config: { store: EtcdStore.connect(url) }, host: '127.0.0.1', meshPort: null, portMap: { 8080: 0 }, accessLog: () => {} })
  t.teardown(() => gw.close(0))
  const ingress = gw.listeners.find(l => l.kind === 'gateway')!.url
  const status = async (): Promise<number> => { const r = await request(ingress + '/'); await r.body.text(); return r.statusCode }
  t.equal(await status(), 503, 'no endpoint yet')

  const child = fork(bin, ['register', '--config', url, '--address', '127.0.0.1', '--labels', 'app=reg,version=v1', '--ports', `http=${up.port}`, '--ttl', '2s'], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  let out = ''
  child.stdout!.on('data', c => { out += c })
  child.stderr!.on('data', c => { out += c })
  const exited = new Promise(resolve => child.once('exit', resolve))
  t.teardown(() => { child.kill('SIGKILL') })
  const until = async (what: string, ok: () => Promise<boolean>, ms: number): Promise<number> => {
    const t0 = Date.now()
    while (!(await ok())) {
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}: ${out}`)
      await new Promise(resolve => setTimeout(resolve, 25))
    }
    return Date.now() - t0
  }
  await until('the registered endpoint', async () => await status() === 200, 10_000)
  t.match(out, /WorkloadEntry default\/reg-127-0-0-1 registered under lease \d+ \(ttl 2s\)/)
  const stored = await etcd.client.get('/reg/WorkloadEntry/default/reg-127-0-0-1').string()
  t.match(stored, /address: 127\.0\.0\.1/)
  // Kept alive past its TTL while the process runs.
  await new Promise(resolve => setTimeout(resolve, 2500))
  t.equal(await status(), 200, 'still registered after more than one TTL')

  child.kill('SIGKILL')
  await exited
  const gone = await until('the endpoint to leave', async () => await status() === 503, 5000)
  t.ok(gone <= 2000 + 1000, `left ${gone} ms after the process died (TTL 2 s, plus the lease check)`)
  t.equal(await etcd.client.get('/reg/WorkloadEntry/default/reg-127-0-0-1').string(), null, 'the key expired with its lease')
})
