import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { compile } from '../../src/compile/compile.js'
import { startInlineGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { serviceEntry } from '../helpers/yaml.js'

// Istio delegation (one level) and exportTo visibility.

t.test('delegate: the root route hands a prefix to a VirtualService in another namespace', async t => {
  const a = await startUpstream('a')
  const b = await startUpstream('b')
  const gw = await startInlineGateway(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  servers:
  - port: { number: 8080, name: http, protocol: HTTP }
    hosts: ["*/*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: root, namespace: istio-system }
spec:
  hosts: ["shop.example.com"]
  gateways: [gw]
  http:
  - match: [{ uri: { prefix: /reviews } }]
    delegate: { name: reviews, namespace: team-b }
  - route:
    - destination: { host: a.default.svc.cluster.local }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: team-b }
spec:
  http:
  - match: [{ uri: { prefix: /reviews/v2 } }]
    route:
    - destination: { host: b.default.svc.cluster.local }
  - match: [{ uri: { prefix: /ratings } }]
    route:
    - destination: { host: b.default.svc.cluster.local }
  - route:
    - destination: { host: a.default.svc.cluster.local }
      headers:
        response:
          set: { x-from: delegate-default }
---
${serviceEntry('a', { v1: a.port })}
---
${serviceEntry('b', { v1: b.port })}`)
  t.teardown(async () => { await gw.close(); await a.close(); await b.close() })
  const h = { host: 'shop.example.com' }
  t.equal(JSON.parse((await rawRequest(gw.ingress, '/reviews/v2/1', { headers: h })).body).upstream, 'b', 'delegate match within the root prefix')
  const r = await rawRequest(gw.ingress, '/reviews/1', { headers: h })
  t.equal(r.headers['x-from'], 'delegate-default', 'a delegate route without match takes the root match')
  t.equal(JSON.parse((await rawRequest(gw.ingress, '/ratings', { headers: h })).body).upstream, 'a', 'a delegate block outside the root prefix is dropped')
  t.ok(gw.problems.some(p => /dropped: does not lie within root VirtualService istio-system\/root/.test(p.message)), 'and reported')
})

t.test('delegate errors: missing delegate, two levels, hosts on a delegate', async t => {
  const r = loadConfig([{ file: 'd.yaml', text: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: root }
spec:
  hosts: [x.example.com]
  http:
  - delegate: { name: missing }
  - delegate: { name: mid }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: mid }
spec:
  hosts: [y.example.com]
  http:
  - delegate: { name: leaf }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: leaf }
spec:
  http:
  - directResponse: { status: 200 }
` }])
  const msgs = r.problems.filter(p => p.severity === 'Error').map(p => `${p.path}: ${p.message}`)
  t.ok(msgs.some(m => m.startsWith('spec.http[0].delegate: Referenced delegate VirtualService not found: "default/missing"')))
  t.ok(msgs.some(m => m.includes('delegates again; Istio allows one level')))
  t.ok(msgs.some(m => m.includes('a delegate VirtualService must have no hosts')))
})

t.test('exportTo: "." hides a VirtualService from other namespaces', async t => {
  const text = (exportTo: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: r, namespace: team-a }
spec:
  hosts: [reviews.default.svc.cluster.local]
  exportTo: ["${exportTo}"]
  http:
  - route:
    - destination: { host: reviews.default.svc.cluster.local, port: { number: 9080 } }
`
  for (const [exportTo, visible] of [['.', false], ['*', true], ['default', true], ['team-b', false]] as const) {
    const loaded = loadConfig([{ file: 'e.yaml', text: text(exportTo) }])
    const { snapshot } = compile(loaded.set, { meshNamespace: 'default' })
    const vh = snapshot.mesh.hosts.exact.get('reviews')
    t.equal(vh?.routes[0]?.virtualService === 'team-a/r', visible, `exportTo ${exportTo}: ${visible ? 'applies' : 'not visible'} on the mesh (namespace default)`)
  }
})
