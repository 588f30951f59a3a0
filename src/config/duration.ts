/**
 * Durations as Istio accepts them: protobuf Duration strings ("7s", "0.5s") and Go-style
 * sequences ("100ms", "3m", "1h", "1m30s"). Units: ns, us, µs, ms, s, m, h.
 */
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y

/** Milliseconds, or undefined when malformed or negative. "0" alone is accepted as zero. */
export function parseDurationMs (s: string): number | undefined {
  if (typeof s !== 'string') return undefined
  const text = s.trim()
  if (text === '0') return 0
  if (text === '' || text.length > 64) return undefined
  let total = 0
  PART.lastIndex = 0
  let pos = 0
  while (pos < text.length) {
    PART.lastIndex = pos
    const m = PART.exec(text)
    if (m === null) return undefined
    total += Number(m[1]) * UNIT_MS[m[2]]
    pos = PART.lastIndex
  }
  return Number.isFinite(total) ? total : undefined
}
