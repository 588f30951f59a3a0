import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ROOT, environment, networkNames, readCompose, type ComposeService } from './parse.js'
import { parseEtcdUrl } from '../../src/config/etcd-layout.js'

// The compose `ha` profile, checked statically (no Docker engine on the test machines): etcd,
// a seed job, two replicas following etcd, and an L4 load balancer whose backends are exactly
// those replicas, health-checked on /ready.

const compose = readCompose('docker-compose.yml')
type Profiled = ComposeService & { profiles?: string[] }
const ha = Object.entries(compose.services as Record<string, Profiled>).filter(([, s]) => s.profiles?.includes('ha'))
const byName = Object.fromEntries(ha)

t.test('the ha profile: etcd, a seed, two replicas and a load balancer; nothing else changes', async t => {
  t.same(ha.map(([n]) => n).sort(), ['etcd', 'etcd-seed', 'lb', 'meshgate-a', 'meshgate-b'])
  t.equal((compose.services.meshgate as Profiled).profiles, undefined, 'the default meshgate service is untouched')
  for (const [name, s] of ha) t.same(networkNames(s), networkNames(compose.services.meshgate), `${name}: on the Bookinfo network`)
})

t.test('the replicas follow the etcd service, with the admin API reachable for the health check', async t => {
  const etcdCmd = byName.etcd.command as string[]
  const client = etcdCmd[etcdCmd.indexOf('--listen-client-urls') + 1]
  t.match(client, /:2379$/)
  for (const r of ['meshgate-a', 'meshgate-b']) {
    const env = environment(byName[r])
    const loc = parseEtcdUrl(env.MESHGATE_CONFIG)
    t.same(loc, { hosts: ['etcd:2379'], prefix: '/meshgate', tls: false }, `${r}: --config etcd://etcd:2379/meshgate`)
    t.equal(env.MESHGATE_ADMIN_HOST, '0.0.0.0')
    t.equal(byName[r].image, compose.services.meshgate.image, `${r}: the meshgate image`)
    t.equal(byName[r].ports, undefined, `${r}: reached only through the load balancer`)
  }
  const seed = byName['etcd-seed'].command as string[]
  t.equal(seed[0], 'apply')
  t.same(parseEtcdUrl(seed[seed.indexOf('--config') + 1]), parseEtcdUrl(environment(byName['meshgate-a']).MESHGATE_CONFIG), 'the seed writes where the replicas read')
})

t.test('the load balancer: TCP, both replicas, checked on /ready', async t => {
  const lb = byName.lb
  t.same(lb.ports, ['8090:8080'])
  const mount = (lb.volumes ?? []).find(v => v.includes('haproxy.cfg'))!
  const cfg = readFileSync(join(ROOT, mount.split(':')[0]), 'utf8')
  t.match(cfg, /^\s*mode tcp$/m, 'L4')
  t.match(cfg, /^\s*bind :8080$/m)
  t.match(cfg, /option httpchk GET \/ready/)
  const servers = [...cfg.matchAll(/^\s*server (\S+) (\S+):(\d+) check port (\d+)/gm)].map(m => [m[1], m[2], m[3], m[4]])
  t.same(servers, [['meshgate-a', 'meshgate-a', '8080', '15000'], ['meshgate-b', 'meshgate-b', '8080', '15000']])
})
