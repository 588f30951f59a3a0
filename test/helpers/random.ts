// A seeded random source for tests that pass `random` to the gateway (weighted picks, fault
// and mirror percentages), so a run is reproducible.

/** mulberry32: a small, fast PRNG; the same seed gives the same sequence in [0, 1). */
export function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
