import t from 'tap'
import { diffKeys, headKey, inputsOfKeys, isEtcdUrl, parseEtcdUrl, parseResourceKey, resourceKey, splitResources } from '../../../src/config/etcd-layout.js'

// The pure half of the etcd source: URL parsing, the key layout, cutting files into one
// resource per key, and the diff a change writes.

t.test('etcd URLs', async t => {
  t.ok(isEtcdUrl('etcd://a:2379/p'))
  t.notOk(isEtcdUrl('gateway-config/'))
  t.same(parseEtcdUrl('etcd://10.0.0.1:2379,etcd-2:2379,[::1]:2379/meshgate/prod/'), { hosts: ['10.0.0.1:2379', 'etcd-2:2379', '[::1]:2379'], prefix: '/meshgate/prod', tls: false })
  t.same(parseEtcdUrl('etcds://e:2379/m'), { hosts: ['e:2379'], prefix: '/m', tls: true })
  t.match(parseEtcdUrl('etcd://e:2379'), /prefix is required/)
  t.match(parseEtcdUrl('etcd://e/m'), /member "e" must be HOST:PORT/)
  t.match(parseEtcdUrl('etcd://e:99999/m'), /HOST:PORT/)
  t.match(parseEtcdUrl('etcd:///m'), /no etcd member/)
  t.match(parseEtcdUrl('http://e:1/m'), /not an etcd URL/)
})

t.test('keys: PREFIX/<kind>/<namespace>/<name>; the head key is not a resource', async t => {
  const k = resourceKey('/mg', { kind: 'VirtualService', namespace: 'default', name: 'reviews' })
  t.equal(k, '/mg/VirtualService/default/reviews')
  t.same(parseResourceKey('/mg', k), { kind: 'VirtualService', namespace: 'default', name: 'reviews' })
  t.equal(parseResourceKey('/mg', headKey('/mg')), undefined)
  t.equal(parseResourceKey('/mg', '/mgx/VirtualService/default/reviews'), undefined)
  t.equal(parseResourceKey('/mg', '/mg/VirtualService//reviews'), undefined)
})

t.test('splitResources: one text per document, namespace defaulted, positions kept', async t => {
  const text = `# leading comment
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a}
spec: {hosts: [a]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: shop}
spec: {hosts: [b]}
---
kind: Gateway
spec: {}
`
  const r = splitResources([{ file: 'f.yaml', text }])
  t.same(r.resources.map(x => [x.kind, x.namespace, x.name, x.line]), [['ServiceEntry', 'default', 'a', 2], ['VirtualService', 'shop', 'b', 7]])
  t.match(r.resources[1].text, /kind: VirtualService/)
  t.notMatch(r.resources[1].text, /ServiceEntry/)
  t.equal(r.problems.length, 1)
  t.match(r.problems[0], { file: 'f.yaml', line: 12, path: 'metadata.name' })
})

t.test('diffKeys: replace deletes what is not desired, never a leased key; merge only puts; unchanged values are not rewritten', async t => {
  const cur = new Map([['/p/A/d/x', { value: '1', lease: '0' }], ['/p/A/d/y', { value: '2', lease: '0' }], ['/p/WorkloadEntry/d/vm1', { value: 'w', lease: '7587' }]])
  const desired = new Map([['/p/A/d/x', '1'], ['/p/A/d/z', '3']])
  t.same(diffKeys(cur, desired, 'replace'), { puts: [['/p/A/d/z', '3']], deletes: ['/p/A/d/y'] })
  t.same(diffKeys(cur, desired, 'merge'), { puts: [['/p/A/d/z', '3']], deletes: [] })
  t.same(inputsOfKeys('/p', cur).map(i => i.file), ['/p/A/d/x', '/p/A/d/y', '/p/WorkloadEntry/d/vm1'])
})
