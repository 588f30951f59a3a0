import t from 'tap'
import { startInlineGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitForLogs } from '../helpers/wait.js'
import { meshRoute, serviceEntry } from '../helpers/yaml.js'

// A reload that removes a subset: the retiring cluster keeps serving requests that started on
// the older snapshot, but a request that starts after the reload sees the new configuration at
// once — its route to the removed subset is 503 NC, never the retiring cluster.

const yaml = (subsets: string, ports: Record<string, number>): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: app }
spec:
  host: app
  subsets:${subsets}
---
${meshRoute('app', 'v2')}
---
${serviceEntry('app', ports)}`

t.test('after a reload that drops a subset, new requests get 503 NC at once', async t => {
  const v1 = await startUpstream('v1')
  const v2 = await startUpstream('v2')
  t.teardown(async () => { await v1.close(); await v2.close() })
  const ports = { v1: v1.port, v2: v2.port }
  const both = '\n  - { name: v1, labels: { version: v1 } }\n  - { name: v2, labels: { version: v2 } }'
  const onlyV1 = '\n  - { name: v1, labels: { version: v1 } }'
  const gw = await startInlineGateway(yaml(both, ports), { gatewayPorts: [] })
  t.teardown(() => gw.close())
  const get = (): Promise<{ status: number; body: string }> => rawRequest(gw.mesh, '/x', { headers: { host: 'app' } })
  t.equal(JSON.parse((await get()).body).upstream, 'v2')

  await gw.reload({ inputs: [{ file: 'inline.yaml', text: yaml(onlyV1, ports) }] })
  t.ok(gw.runtime.retiringClusters().includes('outbound|9080|v2|app.default.svc.cluster.local'), 'the removed cluster is retiring')
  const r = await get()
  t.equal(r.status, 503, 'the route to the removed subset is NC for a request of the new snapshot')
  await waitForLogs(gw.logs, 2)
  t.equal(gw.logs.at(-1)?.response_flags, 'NC')
  t.equal(v2.seen.length, 1, 'the retiring cluster got nothing after the reload')
})
