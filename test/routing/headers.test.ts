import t from 'tap'
import { parse } from 'yaml'
import type { Headers } from '../../src/config/model.js'
import { applyHeaderOps, compileHeaders, type HeaderMap } from '../../src/routing/headers.js'

// Header operations (Istio Headers.HeaderOperations, Envoy HeaderParser): names lowercased and
// sorted by name; remove first, then set (overwrite), then add (append another value); pseudo
// headers and host are never set directly (host becomes an authority rewrite).

const rows: Array<[string, string, HeaderMap, HeaderMap]> = [
  ['set overwrites', '{set: {x-a: new}}', { 'x-a': 'old', 'x-b': 'b' }, { 'x-a': 'new', 'x-b': 'b' }],
  ['set adds when absent', '{set: {x-a: new}}', {}, { 'x-a': 'new' }],
  ['add appends another value', '{add: {x-a: two}}', { 'x-a': 'one' }, { 'x-a': ['one', 'two'] }],
  ['add to a repeated header', '{add: {x-a: three}}', { 'x-a': ['one', 'two'] }, { 'x-a': ['one', 'two', 'three'] }],
  ['add when absent', '{add: {x-a: one}}', {}, { 'x-a': 'one' }],
  ['remove', '{remove: [x-a, x-missing]}', { 'x-a': '1', 'x-b': '2' }, { 'x-b': '2' }],
  ['remove happens before set and add', '{remove: [x-a], set: {x-a: s}, add: {x-a: a}}', { 'x-a': 'old' }, { 'x-a': ['s', 'a'] }],
  ['names are lowercased', '{set: {X-Api-Key: k}, remove: [X-Old]}', { 'x-old': '1' }, { 'x-api-key': 'k' }],
  ['host and pseudo-headers are never set, added or removed', '{set: {host: h, ":path": /p}, add: {":authority": a}, remove: [host]}', { host: 'orig' }, { host: 'orig' }]
]

t.test('header operations table', async t => {
  for (const [name, yaml, before, after] of rows) {
    const h = compileHeaders({ request: parse(yaml) } as Headers)
    const headers = structuredClone(before)
    applyHeaderOps(h?.request, headers)
    t.same(headers, after, `${name}: ${yaml}`)
  }
})

t.test('compiled form: sorted by name, empty operations dropped, host becomes an authority rewrite', async t => {
  t.same(compileHeaders({ response: { set: { 'x-b': '2', 'x-a': '1' }, add: { 'x-d': '4', 'x-c': '3' } } }), {
    response: { remove: [], set: [['x-a', '1'], ['x-b', '2']], add: [['x-c', '3'], ['x-d', '4']] }
  })
  t.equal(compileHeaders(undefined), undefined)
  t.equal(compileHeaders({}), undefined)
  t.equal(compileHeaders({ request: {}, response: { remove: [] } }), undefined)
  t.same(compileHeaders({ request: { set: { Host: 'reviews.internal' } } }), { hostRewrite: 'reviews.internal' })
  const noOps = compileHeaders(undefined)
  const h: HeaderMap = { a: '1' }
  applyHeaderOps(noOps?.request, h)
  t.same(h, { a: '1' }, 'no operations leave headers alone')
})
