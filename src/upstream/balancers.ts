import type { LoadBalancerSettings } from '../config/model.js'
import type { EndpointState } from './endpoint.js'

/** What a pick may use besides the healthy hosts. */
export interface PickContext {
  random: () => number
  /** The consistent-hash key of the request (header, cookie, source IP or query value). */
  hashKey?: string
  /** Hosts already tried by this request: avoided while another host is available (retry previous-host predicate). */
  exclude?: ReadonlySet<EndpointState>
}

/** A load balancer over a cluster's healthy hosts. `reset` runs when that set changes. */
export interface LoadBalancer {
  readonly kind: string
  pick: (hosts: readonly EndpointState[], ctx: PickContext) => EndpointState | undefined
  reset: () => void
}

/**
 * The balancer for a policy. Istio's default when none is set is LEAST_REQUEST
 * (destination_rule.proto SimpleLB: UNSPECIFIED lets Istio choose; Istio chooses LEAST_REQUEST).
 */
export function createBalancer (lb: LoadBalancerSettings | undefined): LoadBalancer {
  if (lb?.consistentHash !== undefined) {
    const ch = lb.consistentHash
    // Istio treats 0 as unset (cluster_traffic_policy.go ApplyRingHashLoadBalancer): Envoy's defaults apply.
    const positive = (n: number | undefined, d: number): number => (n !== undefined && n > 0 ? n : d)
    if (ch.maglev !== undefined) return new MaglevBalancer(positive(ch.maglev.tableSize, 65537))
    return new RingHashBalancer(positive(ch.ringHash !== undefined ? ch.ringHash.minimumRingSize : ch.minimumRingSize, 1024))
  }
  switch (lb?.simple) {
    case 'ROUND_ROBIN': return new RoundRobinBalancer()
    case 'RANDOM': return new RandomBalancer()
    case 'PASSTHROUGH': return new RandomBalancer()
    case 'LEAST_CONN':
    case 'LEAST_REQUEST':
    default: return new LeastRequestBalancer()
  }
}

/** Hosts not yet tried; all of them when every host was tried (Envoy accepts after its attempts). */
function candidates (hosts: readonly EndpointState[], exclude: ReadonlySet<EndpointState> | undefined): readonly EndpointState[] {
  if (exclude === undefined || exclude.size === 0) return hosts
  const out = hosts.filter(h => !exclude.has(h))
  return out.length > 0 ? out : hosts
}

function weightedRandom (hosts: readonly EndpointState[], random: () => number): EndpointState {
  let total = 0
  for (const h of hosts) total += h.spec.weight
  let r = random() * total
  for (const h of hosts) {
    r -= h.spec.weight
    if (r < 0) return h
  }
  return hosts[hosts.length - 1]
}

/**
 * Weighted round robin, smooth (each pick adds every weight to its host's credit and takes
 * the total from the winner), so weights interleave: A:2,B:1 → A,B,A. Ties go to the first
 * host, so sequences are deterministic.
 */
export class RoundRobinBalancer implements LoadBalancer {
  readonly kind = 'ROUND_ROBIN'
  private credit = new Map<string, number>()

  pick (hosts: readonly EndpointState[], ctx: PickContext): EndpointState | undefined {
    const cs = candidates(hosts, ctx.exclude)
    if (cs.length === 0) return undefined
    if (cs.length === 1) return cs[0]
    let total = 0
    let best: EndpointState | undefined
    let bestCredit = -Infinity
    for (const h of cs) {
      const c = (this.credit.get(h.key) ?? 0) + h.spec.weight
      this.credit.set(h.key, c)
      total += h.spec.weight
      if (c > bestCredit) { bestCredit = c; best = h }
    }
    this.credit.set(best!.key, bestCredit - total)
    return best
  }

  reset (): void {
    this.credit = new Map()
  }
}

/** Weighted random choice. */
export class RandomBalancer implements LoadBalancer {
  readonly kind = 'RANDOM'
  pick (hosts: readonly EndpointState[], ctx: PickContext): EndpointState | undefined {
    const cs = candidates(hosts, ctx.exclude)
    return cs.length === 0 ? undefined : weightedRandom(cs, ctx.random)
  }

  reset (): void {}
}

/**
 * Least request, power of two choices (Envoy's default choice_count 2): draw two hosts at
 * random (weighted) and take the one with fewer requests in flight; the first on a tie.
 */
export class LeastRequestBalancer implements LoadBalancer {
  readonly kind = 'LEAST_REQUEST'
  pick (hosts: readonly EndpointState[], ctx: PickContext): EndpointState | undefined {
    const cs = candidates(hosts, ctx.exclude)
    if (cs.length <= 1) return cs[0]
    const a = weightedRandom(cs, ctx.random)
    const b = weightedRandom(cs, ctx.random)
    return b.active < a.active ? b : a
  }

  reset (): void {}
}

/** 32-bit FNV-1a, then a murmur3 finaliser for spread. Stable across processes and versions. */
export function hash32 (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Cache keyed by the identity and order of the host list (the healthy set is rebuilt on change). */
abstract class HashBalancer<T> implements LoadBalancer {
  abstract readonly kind: string
  private table: T | undefined
  private built: readonly EndpointState[] | undefined

  protected abstract build (hosts: readonly EndpointState[]): T
  protected abstract lookup (table: T, hosts: readonly EndpointState[], h: number): EndpointState

  pick (hosts: readonly EndpointState[], ctx: PickContext): EndpointState | undefined {
    if (hosts.length === 0) return undefined
    // No hash key (header or cookie absent): Envoy falls back to a random host.
    if (ctx.hashKey === undefined) return weightedRandom(candidates(hosts, ctx.exclude), ctx.random)
    if (this.built !== hosts || this.table === undefined) {
      this.table = this.build(hosts)
      this.built = hosts
    }
    const chosen = this.lookup(this.table, hosts, hash32(ctx.hashKey))
    if (ctx.exclude?.has(chosen) === true) {
      const cs = candidates(hosts, ctx.exclude)
      return cs[hash32(ctx.hashKey + '#retry') % cs.length]
    }
    return chosen
  }

  reset (): void {
    this.table = undefined
    this.built = undefined
  }
}

/** Ketama-style ring: each host gets ring entries in proportion to its weight. */
export class RingHashBalancer extends HashBalancer<{ points: Uint32Array; owners: Uint32Array }> {
  readonly kind = 'RING_HASH'
  constructor (private readonly minRingSize: number) { super() }

  protected build (hosts: readonly EndpointState[]): { points: Uint32Array; owners: Uint32Array } {
    const total = hosts.reduce((s, h) => s + h.spec.weight, 0)
    const entries: Array<[number, number]> = []
    hosts.forEach((h, i) => {
      const n = Math.max(1, Math.ceil(this.minRingSize * h.spec.weight / total))
      for (let r = 0; r < n; r++) entries.push([hash32(`${h.key}_${r}`), i])
    })
    entries.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    return { points: Uint32Array.from(entries.map(e => e[0])), owners: Uint32Array.from(entries.map(e => e[1])) }
  }

  protected lookup (t: { points: Uint32Array; owners: Uint32Array }, hosts: readonly EndpointState[], h: number): EndpointState {
    let lo = 0
    let hi = t.points.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (t.points[mid] < h) lo = mid + 1
      else hi = mid
    }
    return hosts[t.owners[lo === t.points.length ? 0 : lo]]
  }
}

/** Maglev (Eisenbud et al., NSDI 2016): a lookup table filled from per-host permutations. */
export class MaglevBalancer extends HashBalancer<Int32Array> {
  readonly kind = 'MAGLEV'
  private readonly tableSize: number
  /**
   * Envoy requires a prime table size (a host's permutation visits every slot only then); a
   * non-prime size would make the fill loop below spin forever, so it is rounded up to a prime.
   */
  constructor (tableSize: number) {
    super()
    this.tableSize = nextPrime(Math.max(2, Math.floor(tableSize)))
  }

  protected build (hosts: readonly EndpointState[]): Int32Array {
    const m = this.tableSize
    const table = new Int32Array(m).fill(-1)
    const offset = hosts.map(h => hash32(`${h.key}#offset`) % m)
    const skip = hosts.map(h => (hash32(`${h.key}#skip`) % (m - 1)) + 1)
    const next = new Array<number>(hosts.length).fill(0)
    const maxW = Math.max(...hosts.map(h => h.spec.weight))
    const credit = new Array<number>(hosts.length).fill(0)
    let filled = 0
    while (filled < m) {
      for (let i = 0; i < hosts.length && filled < m; i++) {
        // Weighted Maglev: a host takes a slot only when its weight credit allows.
        credit[i] += hosts[i].spec.weight / maxW
        if (credit[i] < 1) continue
        credit[i] -= 1
        let c = (offset[i] + next[i] * skip[i]) % m
        while (table[c] >= 0) { next[i]++; c = (offset[i] + next[i] * skip[i]) % m }
        table[c] = i
        next[i]++
        filled++
      }
    }
    return table
  }

  protected lookup (t: Int32Array, hosts: readonly EndpointState[], h: number): EndpointState {
    return hosts[t[h % t.length]]
  }
}

function nextPrime (n: number): number {
  const isPrime = (k: number): boolean => {
    if (k < 2) return false
    for (let d = 2; d * d <= k; d++) if (k % d === 0) return false
    return true
  }
  while (!isPrime(n)) n++
  return n
}
