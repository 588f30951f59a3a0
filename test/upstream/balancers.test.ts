import t from 'tap'
import {
  createBalancer, hash32, LeastRequestBalancer, MaglevBalancer, RandomBalancer, RingHashBalancer, RoundRobinBalancer,
  type LoadBalancer, type PickContext
} from '../../src/upstream/balancers.js'
import { EndpointState, HostHealth } from '../../src/upstream/endpoint.js'

// Pure balancer tests: hosts are built by hand, randomness is a scripted sequence or a seeded PRNG.

function ep (key: string, weight = 1): EndpointState {
  const [address, port] = key.split(':')
  return new EndpointState({ key, address, port: Number(port), labels: {}, weight }, new HostHealth(key))
}

/** A scripted random(): returns the values in order and fails the test if more are drawn. */
function scripted (values: number[]): () => number {
  let i = 0
  return () => {
    if (i >= values.length) throw new Error(`random() called ${i + 1} times, only ${values.length} scripted`)
    return values[i++]
  }
}

/** mulberry32: a small deterministic PRNG in [0, 1). */
function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const noRandom = (): number => { throw new Error('random() must not be called') }

function picks (lb: LoadBalancer, hosts: readonly EndpointState[], n: number, ctx: Partial<PickContext> = {}): string[] {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(lb.pick(hosts, { random: noRandom, ...ctx })?.key ?? '-')
  return out
}

function counts (keys: string[]): Record<string, number> {
  const c: Record<string, number> = {}
  for (const k of keys) c[k] = (c[k] ?? 0) + 1
  return c
}

const A = 'a:1'
const B = 'b:1'
const C = 'c:1'

t.test('createBalancer: the policy names map to balancers; no policy is LEAST_REQUEST (Istio default)', async t => {
  t.equal(createBalancer(undefined).kind, 'LEAST_REQUEST', 'no loadBalancer → LEAST_REQUEST')
  t.equal(createBalancer({}).kind, 'LEAST_REQUEST', 'empty loadBalancer → LEAST_REQUEST')
  t.equal(createBalancer({ simple: 'UNSPECIFIED' }).kind, 'LEAST_REQUEST', 'UNSPECIFIED → LEAST_REQUEST')
  t.equal(createBalancer({ simple: 'LEAST_REQUEST' }).kind, 'LEAST_REQUEST')
  t.equal(createBalancer({ simple: 'LEAST_CONN' }).kind, 'LEAST_REQUEST', 'deprecated LEAST_CONN is LEAST_REQUEST')
  t.equal(createBalancer({ simple: 'ROUND_ROBIN' }).kind, 'ROUND_ROBIN')
  t.equal(createBalancer({ simple: 'RANDOM' }).kind, 'RANDOM')
  t.equal(createBalancer({ consistentHash: { httpHeaderName: 'x-user' } }).kind, 'RING_HASH', 'consistentHash defaults to a ring')
  t.equal(createBalancer({ consistentHash: { httpHeaderName: 'x-user', ringHash: { minimumRingSize: 64 } } }).kind, 'RING_HASH')
  t.equal(createBalancer({ consistentHash: { httpHeaderName: 'x-user', maglev: { tableSize: 251 } } }).kind, 'MAGLEV')
  t.type(createBalancer(undefined), LeastRequestBalancer)
  t.type(createBalancer({ simple: 'ROUND_ROBIN' }), RoundRobinBalancer)
  t.type(createBalancer({ simple: 'RANDOM' }), RandomBalancer)
  t.type(createBalancer({ consistentHash: { useSourceIp: true } }), RingHashBalancer)
  t.type(createBalancer({ consistentHash: { useSourceIp: true, maglev: {} } }), MaglevBalancer)
})

t.test('ROUND_ROBIN', async t => {
  const hosts = [ep(A), ep(B), ep(C)]

  t.test('equal weights: A,B,C,A,B,C', async t => {
    t.strictSame(picks(new RoundRobinBalancer(), hosts, 6), [A, B, C, A, B, C])
  })

  t.test('weights A:2, B:1 interleave as A,B,A repeating', async t => {
    t.strictSame(picks(new RoundRobinBalancer(), [ep(A, 2), ep(B, 1)], 9), [A, B, A, A, B, A, A, B, A])
  })

  t.test('weights A:3, B:1, C:1 give each host its share per cycle', async t => {
    const seq = picks(new RoundRobinBalancer(), [ep(A, 3), ep(B, 1), ep(C, 1)], 50)
    t.strictSame(counts(seq), { [A]: 30, [B]: 10, [C]: 10 })
    t.strictSame(seq.slice(0, 5), [A, B, A, C, A], 'smooth: the heavy host is spread out, not bunched')
  })

  t.test('reset() restarts the cycle', async t => {
    const lb = new RoundRobinBalancer()
    t.strictSame(picks(lb, hosts, 2), [A, B])
    lb.reset()
    t.strictSame(picks(lb, hosts, 3), [A, B, C])
  })

  t.test('exclude (previous-host avoidance) skips tried hosts, falls back to all when every host was tried', async t => {
    const lb = new RoundRobinBalancer()
    const exclA = new Set([hosts[0]])
    for (const k of picks(lb, hosts, 6, { exclude: exclA })) t.not(k, A, 'never the excluded host')
    t.equal(new RoundRobinBalancer().pick(hosts, { random: noRandom, exclude: new Set([hosts[0], hosts[1]]) })?.key, C,
      'only the untried host is left')
    const all = new Set(hosts)
    t.strictSame(picks(new RoundRobinBalancer(), hosts, 3, { exclude: all }), [A, B, C],
      'every host tried: the plain rotation over all hosts')
    t.strictSame(picks(new RoundRobinBalancer(), hosts, 3, { exclude: new Set() }), [A, B, C], 'an empty exclude set changes nothing')
  })

  t.test('no hosts → undefined; one host → that host', async t => {
    t.equal(new RoundRobinBalancer().pick([], { random: noRandom }), undefined)
    t.strictSame(picks(new RoundRobinBalancer(), [ep(A)], 3), [A, A, A])
  })
})

t.test('RANDOM', async t => {
  const hosts = [ep(A), ep(B), ep(C)]

  t.test('scripted randoms pick by cumulative weight', async t => {
    const lb = new RandomBalancer()
    t.strictSame(picks(lb, hosts, 5, { random: scripted([0, 0.34, 0.67, 0.999, 0.33]) }), [A, B, C, C, A])
    const w = [ep(A, 2), ep(B, 1)]
    t.strictSame(picks(lb, w, 4, { random: scripted([0, 0.66, 0.67, 0.99]) }), [A, A, B, B], 'A owns [0, 2/3), B [2/3, 1)')
  })

  t.test('exclude: the draw is over the untried hosts only; all tried → all hosts', async t => {
    const lb = new RandomBalancer()
    t.equal(lb.pick(hosts, { random: scripted([0]), exclude: new Set([hosts[0]]) })?.key, B)
    t.equal(lb.pick(hosts, { random: scripted([0.99]), exclude: new Set([hosts[2]]) })?.key, B)
    t.equal(lb.pick(hosts, { random: scripted([0.99]), exclude: new Set(hosts) })?.key, C)
  })

  t.test('weighted distribution over seeded picks (A:3, B:1)', async t => {
    const lb = new RandomBalancer()
    const c = counts(picks(lb, [ep(A, 3), ep(B, 1)], 20_000, { random: seeded(7) }))
    t.ok(Math.abs(c[A] / 20_000 - 0.75) < 0.02, `A share ${c[A] / 20_000} ≈ 0.75`)
    t.ok(Math.abs(c[B] / 20_000 - 0.25) < 0.02, `B share ${c[B] / 20_000} ≈ 0.25`)
  })

  t.test('no hosts → undefined', async t => {
    t.equal(new RandomBalancer().pick([], { random: noRandom }), undefined)
  })
})

t.test('LEAST_REQUEST (power of two choices)', async t => {
  t.test('the lower `active` of the two draws wins; the first draw on a tie', async t => {
    const hosts = [ep(A), ep(B), ep(C)]
    hosts[0].active = 5
    hosts[1].active = 1
    hosts[2].active = 1
    const lb = new LeastRequestBalancer()
    t.equal(lb.pick(hosts, { random: scripted([0, 0.5]) })?.key, B, 'A(5) vs B(1) → B')
    t.equal(lb.pick(hosts, { random: scripted([0.5, 0]) })?.key, B, 'B(1) vs A(5) → B')
    t.equal(lb.pick(hosts, { random: scripted([0.5, 0.9]) })?.key, B, 'B(1) vs C(1) tie → first draw B')
    t.equal(lb.pick(hosts, { random: scripted([0.9, 0.5]) })?.key, C, 'C(1) vs B(1) tie → first draw C')
    t.equal(lb.pick(hosts, { random: scripted([0, 0]) })?.key, A, 'both draws A → A, even though it is the busiest')
  })

  t.test('one candidate: no draw at all; none → undefined', async t => {
    const lb = new LeastRequestBalancer()
    t.equal(lb.pick([ep(A)], { random: noRandom })?.key, A)
    const hosts = [ep(A), ep(B)]
    t.equal(lb.pick(hosts, { random: noRandom, exclude: new Set([hosts[0]]) })?.key, B, 'only B untried')
    t.equal(lb.pick([], { random: noRandom }), undefined)
  })

  t.test('exclude: draws are over untried hosts; everything tried → all hosts', async t => {
    const hosts = [ep(A), ep(B), ep(C)]
    const lb = new LeastRequestBalancer()
    // Untried: B, C. 0 → B, 0.99 → C; both idle → first draw.
    t.equal(lb.pick(hosts, { random: scripted([0, 0.99]), exclude: new Set([hosts[0]]) })?.key, B)
    t.equal(lb.pick(hosts, { random: scripted([0.99, 0]), exclude: new Set([hosts[0]]) })?.key, C)
    t.equal(lb.pick(hosts, { random: scripted([0, 0.99]), exclude: new Set(hosts) })?.key, A)
  })

  t.test('weighted distribution over seeded picks (idle hosts: the first draw decides)', async t => {
    const lb = new LeastRequestBalancer()
    const c = counts(picks(lb, [ep(A, 3), ep(B, 1)], 20_000, { random: seeded(11) }))
    t.ok(Math.abs(c[A] / 20_000 - 0.75) < 0.02, `A share ${c[A] / 20_000} ≈ 0.75`)
  })

  t.test('a busy host gets only the picks where both draws land on it (≈ 1/4 of two equal hosts)', async t => {
    const hosts = [ep(A), ep(B)]
    hosts[0].active = 10
    const c = counts(picks(new LeastRequestBalancer(), hosts, 20_000, { random: seeded(3) }))
    t.ok(Math.abs(c[A] / 20_000 - 0.25) < 0.02, `busy A share ${c[A] / 20_000} ≈ 0.25`)
    t.ok(Math.abs(c[B] / 20_000 - 0.75) < 0.02, `idle B share ${c[B] / 20_000} ≈ 0.75`)
  })
})

t.test('hash32 is a stable 32-bit hash', async t => {
  t.equal(hash32('user-1'), hash32('user-1'))
  t.not(hash32('user-1'), hash32('user-2'))
  for (const s of ['', 'a', 'user-1', 'ünïcödé', 'x'.repeat(1000)]) {
    const h = hash32(s)
    t.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff, `${JSON.stringify(s.slice(0, 10))} → unsigned 32-bit`)
  }
  // Pinned values: the hash must not change between versions, or sticky sessions move on upgrade.
  t.equal(hash32(''), 0xab3e7c0b)
  t.equal(hash32('a'), 0x1a80b1b3)
  t.equal(hash32('user-1'), 0x778f8aec)
  t.equal(hash32('10.0.0.1'), 0xaebc85ae)
})

const hashKinds: Array<[string, () => LoadBalancer]> = [
  ['ring hash', () => new RingHashBalancer(1024)],
  ['maglev', () => new MaglevBalancer(65537)]
]

for (const [name, make] of hashKinds) {
  t.test(`consistent hash (${name})`, async t => {
    const hosts = ['h1:80', 'h2:80', 'h3:80', 'h4:80', 'h5:80'].map(k => ep(k))
    const keys = Array.from({ length: 1000 }, (_, i) => `user-${i}`)
    const lb = make()
    const first = keys.map(k => lb.pick(hosts, { random: noRandom, hashKey: k })!.key)

    t.test('stickiness: the same key maps to the same host every time, and across instances', async t => {
      const again = keys.map(k => lb.pick(hosts, { random: noRandom, hashKey: k })!.key)
      t.strictSame(again, first, 'same balancer, second pass')
      const other = make()
      t.strictSame(keys.map(k => other.pick(hosts, { random: noRandom, hashKey: k })!.key), first, 'a fresh balancer agrees')
      lb.reset()
      t.strictSame(keys.map(k => lb.pick(hosts, { random: noRandom, hashKey: k })!.key), first, 'after reset() (table rebuilt)')
      const copy = [...hosts]
      t.strictSame(keys.map(k => lb.pick(copy, { random: noRandom, hashKey: k })!.key), first, 'a new array with the same hosts')
    })

    t.test('keys spread over every host', async t => {
      const c = counts(first)
      t.equal(Object.keys(c).length, 5, 'all five hosts get keys')
      for (const h of hosts) t.ok(c[h.key] >= keys.length / 5 / 2, `${h.key} has ${c[h.key]} of ${keys.length} keys (≥ half its fair share)`)
    })

    t.test('no hash key (header/cookie absent) → a random host', async t => {
      t.equal(lb.pick(hosts, { random: scripted([0]) })?.key, 'h1:80')
      t.equal(lb.pick(hosts, { random: scripted([0.999]) })?.key, 'h5:80')
      t.equal(lb.pick(hosts, { random: scripted([0.5]) })?.key, 'h3:80')
    })

    t.test('exclude: a tried host is avoided, deterministically for the key', async t => {
      const k = keys[0]
      const home = hosts.find(h => h.key === first[0])!
      const retry1 = lb.pick(hosts, { random: noRandom, hashKey: k, exclude: new Set([home]) })
      t.ok(retry1 !== undefined && retry1 !== home, 'another host on retry')
      t.equal(lb.pick(hosts, { random: noRandom, hashKey: k, exclude: new Set([home]) }), retry1, 'the same other host every time')
      const notTried = lb.pick(hosts, { random: noRandom, hashKey: k, exclude: new Set(hosts.filter(h => h !== home)) })
      t.equal(notTried, home, 'the home host when only others were tried')
      t.ok(lb.pick(hosts, { random: noRandom, hashKey: k, exclude: new Set(hosts) }) !== undefined, 'everything tried: still a host')
    })

    t.test('weights: a host with weight 3 gets about three times the keys', async t => {
      const w = [ep('w1:80', 3), ep('w2:80', 1)]
      const wlb = make()
      const c = counts(keys.map(k => wlb.pick(w, { random: noRandom, hashKey: k })!.key))
      const share = c['w1:80'] / keys.length
      t.ok(share > 0.65 && share < 0.85, `weight-3 host share ${share} ≈ 0.75`)
    })

    t.test('no hosts → undefined', async t => {
      t.equal(lb.pick([], { random: noRandom, hashKey: 'x' }), undefined)
    })
  })
}

t.test('ring hash: removing a host remaps that host\'s keys and leaves most others in place', async t => {
  const hosts = ['h1:80', 'h2:80', 'h3:80', 'h4:80', 'h5:80'].map(k => ep(k))
  const keys = Array.from({ length: 2000 }, (_, i) => `session-${i}`)
  const lb = new RingHashBalancer(1024)
  const before = keys.map(k => lb.pick(hosts, { random: noRandom, hashKey: k })!.key)
  const rest = hosts.filter(h => h.key !== 'h3:80')
  const after = keys.map(k => lb.pick(rest, { random: noRandom, hashKey: k })!.key)
  let kept = 0
  let others = 0
  for (let i = 0; i < keys.length; i++) {
    if (before[i] === 'h3:80') continue
    others++
    if (after[i] === before[i]) kept++
  }
  // Every host gets more ring points when one leaves (Envoy scales the ring the same way), so
  // a few keys move; the large majority must stay.
  t.ok(kept / others >= 0.75, `${kept} of ${others} keys of the remaining hosts stay (${(kept / others).toFixed(3)})`)
  const orphans = before.filter(h => h === 'h3:80').length
  t.ok(orphans > 0, `the removed host had ${orphans} keys`)
  t.equal(after.filter(h => h === 'h3:80').length, 0, 'none of them (nor any other key) still maps to it')
})

t.test('maglev: removing a host keeps most keys in place too', async t => {
  const hosts = ['h1:80', 'h2:80', 'h3:80', 'h4:80', 'h5:80'].map(k => ep(k))
  const keys = Array.from({ length: 2000 }, (_, i) => `session-${i}`)
  const lb = new MaglevBalancer(65537)
  const before = keys.map(k => lb.pick(hosts, { random: noRandom, hashKey: k })!.key)
  const rest = hosts.filter(h => h.key !== 'h3:80')
  const after = keys.map(k => lb.pick(rest, { random: noRandom, hashKey: k })!.key)
  const others = before.filter(h => h !== 'h3:80').length
  const kept = before.filter((h, i) => h !== 'h3:80' && after[i] === h).length
  t.ok(kept / others >= 0.75, `${kept} of ${others} keys stay (${(kept / others).toFixed(3)})`)
})

t.test('maglev table sizes: 0 means Envoy\'s default, a non-prime size still builds (no hang)', async t => {
  const hosts = ['h1:80', 'h2:80', 'h3:80', 'h4:80', 'h5:80'].map(k => ep(k))
  // A non-prime table with a skip sharing a factor with it never visits every slot: the fill
  // loop used to spin forever (tableSize 6 with these five hosts froze the process).
  for (const size of [1, 4, 6, 8, 9, 10, 12, 100, 1000]) {
    const lb = new MaglevBalancer(size)
    const got = new Set(Array.from({ length: 200 }, (_, i) => lb.pick(hosts, { random: noRandom, hashKey: `k${i}` })?.key))
    t.notOk(got.has(undefined), `tableSize ${size}: every key maps to a host`)
  }
  const lb = createBalancer({ consistentHash: { httpHeaderName: 'x', maglev: { tableSize: 0 } } })
  t.equal(lb.pick(hosts, { random: noRandom, hashKey: 'k' })?.key, new MaglevBalancer(65537).pick(hosts, { random: noRandom, hashKey: 'k' })?.key,
    'tableSize 0 behaves as 65537')
  const ring0 = createBalancer({ consistentHash: { httpHeaderName: 'x', ringHash: { minimumRingSize: 0 } } })
  const ring1024 = new RingHashBalancer(1024)
  const ks = Array.from({ length: 100 }, (_, i) => `k${i}`)
  t.strictSame(ks.map(k => ring0.pick(hosts, { random: noRandom, hashKey: k })?.key),
    ks.map(k => ring1024.pick(hosts, { random: noRandom, hashKey: k })?.key), 'minimumRingSize 0 behaves as 1024')
})
