import t from 'tap'
import type { L4Listener, L4Route } from '../../src/compile/snapshot.js'
import { compileL4Match } from '../../src/compile/l4.js'
import { callerAt, l4MatchApplies, pickL4Destination, selectL4Route, sniMatches } from '../../src/routing/l4.js'
import type { CallerIdentity } from '../../src/security/spec.js'

const route = (name: string, match: Parameters<typeof compileL4Match>[0][] = [], weights: number[] = [1]): L4Route => ({
  virtualService: 'default/vs',
  name,
  match: match.map(compileL4Match),
  destinations: weights.map((weight, i) => ({ host: 'echo.default.svc.cluster.local', subset: `s${i}`, cluster: `c${i}`, weight })),
  totalWeight: weights.reduce((a, b) => a + b, 0)
})

const listener = (routes: L4Route[], mode: 'tcp' | 'sni' = 'tcp', serverHosts = ['*']): L4Listener => ({
  name: '0.0.0.0_31400', kind: 'gateway', port: 31400, mode, gatewayNames: ['default/gw'], serverHosts, destinationPort: 31400, routes
})

const callers = new Map<string, CallerIdentity>([['10.1.0.5', { principal: 'cluster.local/ns/apps/sa/sleep', namespace: 'apps', labels: { app: 'sleep', version: 'v1' } }]])

t.test('sniMatches: exact, wildcard suffix (one or more labels), any', async t => {
  t.ok(sniMatches('nginx.example.com', 'nginx.example.com'))
  t.notOk(sniMatches('nginx.example.com', 'other.example.com'))
  t.ok(sniMatches('*.example.com', 'a.example.com'))
  t.ok(sniMatches('*.example.com', 'a.b.example.com'))
  t.notOk(sniMatches('*.example.com', 'example.com'), 'the wildcard needs a label before the suffix')
  t.ok(sniMatches('*', 'anything'))
})

t.test('callerAt: the identity registered at an address, IPv4-mapped IPv6 folded', async t => {
  t.equal(callerAt(callers, '10.1.0.5')?.namespace, 'apps')
  t.equal(callerAt(callers, '::ffff:10.1.0.5')?.namespace, 'apps')
  t.equal(callerAt(callers, '10.1.0.6'), undefined)
})

t.test('a match block ANDs its conditions', async t => {
  const conn = { localAddress: '127.0.0.1', remoteAddress: '10.1.0.5' }
  const caller = callerAt(callers, conn.remoteAddress)
  t.ok(l4MatchApplies(compileL4Match({ destinationSubnets: ['127.0.0.0/8'] }), conn, caller))
  t.ok(l4MatchApplies(compileL4Match({ destinationSubnets: ['::ffff:127.0.0.1/128'] }), { ...conn, localAddress: '::ffff:127.0.0.1' }, caller), 'IPv6 subnets')
  t.notOk(l4MatchApplies(compileL4Match({ destinationSubnets: ['10.0.0.0/8'] }), conn, caller))
  t.ok(l4MatchApplies(compileL4Match({ sourceLabels: { app: 'sleep' }, sourceNamespace: 'apps' }), conn, caller))
  t.notOk(l4MatchApplies(compileL4Match({ sourceLabels: { app: 'sleep', version: 'v2' } }), conn, caller))
  t.notOk(l4MatchApplies(compileL4Match({ sourceNamespace: 'other' }), conn, caller))
  t.notOk(l4MatchApplies(compileL4Match({ sourceLabels: { app: 'sleep' } }), { ...conn, remoteAddress: '10.9.9.9' }, undefined), 'an unknown caller has no labels')
  t.notOk(l4MatchApplies(compileL4Match({ destinationSubnets: ['127.0.0.0/8'], sourceNamespace: 'other' }), conn, caller), 'both must hold')
  t.ok(l4MatchApplies(compileL4Match({ sniHosts: ['*.Example.com'] }), { ...conn, sni: 'a.example.com' }, caller), 'SNI patterns are lowercased')
  t.notOk(l4MatchApplies(compileL4Match({ sniHosts: ['a.example.com'] }), conn, caller), 'no SNI: no sniHosts match')
})

t.test('selectL4Route: first match wins, blocks are ORed, a route without blocks takes all', async t => {
  const l = listener([
    route('tcp[0]', [{ destinationSubnets: ['10.0.0.0/8'] }, { sourceLabels: { app: 'sleep' } }]),
    route('tcp[1]', [{ destinationSubnets: ['127.0.0.0/8'] }]),
    route('tcp[2]')
  ])
  t.equal(selectL4Route(l, { localAddress: '127.0.0.1', remoteAddress: '10.1.0.5' }, callers)?.name, 'tcp[0]', 'second block of the first route')
  t.equal(selectL4Route(l, { localAddress: '127.0.0.1', remoteAddress: '10.1.0.6' }, callers)?.name, 'tcp[1]')
  t.equal(selectL4Route(l, { localAddress: '192.168.1.1', remoteAddress: '10.1.0.6' }, callers)?.name, 'tcp[2]')
  t.equal(selectL4Route(listener([route('tcp[0]', [{ destinationSubnets: ['10.0.0.0/8'] }])]), { localAddress: '127.0.0.1', remoteAddress: '1.2.3.4' }, callers), undefined, 'nothing matches: no route')
})

t.test('an SNI listener needs a name among its server hosts', async t => {
  const l = listener([route('tls[0]', [{ sniHosts: ['*.example.com'] }])], 'sni', ['nginx.example.com', 'a.example.com'])
  t.equal(selectL4Route(l, { localAddress: '127.0.0.1', remoteAddress: '1.2.3.4', sni: 'nginx.example.com' }, callers)?.name, 'tls[0]')
  t.equal(selectL4Route(l, { localAddress: '127.0.0.1', remoteAddress: '1.2.3.4', sni: 'b.example.com' }, callers), undefined, 'matches the route but not the server hosts')
  t.equal(selectL4Route(l, { localAddress: '127.0.0.1', remoteAddress: '1.2.3.4' }, callers), undefined, 'no SNI')
})

t.test('pickL4Destination: relative weights, per call', async t => {
  const r = route('tcp[0]', [], [550, 500])
  t.equal(pickL4Destination(r, () => 0)?.cluster, 'c0')
  t.equal(pickL4Destination(r, () => 549 / 1050)?.cluster, 'c0')
  t.equal(pickL4Destination(r, () => 551 / 1050)?.cluster, 'c1')
  t.equal(pickL4Destination(r, () => 0.99999)?.cluster, 'c1')
})
