/**
 * IP addresses and CIDR blocks, for `ipBlocks`, `remoteIpBlocks` and the `source.ip`-style
 * conditions. Addresses are compared as 128-bit numbers: IPv4 as IPv4-mapped IPv6, so that
 * `::ffff:10.0.0.1` (how a dual-stack socket reports an IPv4 peer) matches `10.0.0.0/8`.
 */
export interface Cidr { base: bigint; bits: number }

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

function v4 (s: string): bigint | undefined {
  const m = V4.exec(s)
  if (m === null) return undefined
  let n = 0n
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i])
    if (o > 255 || (m[i].length > 1 && m[i].startsWith('0'))) return undefined
    n = (n << 8n) | BigInt(o)
  }
  return 0xffff00000000n | n
}

function v6 (s: string): bigint | undefined {
  if (s.includes('%')) s = s.slice(0, s.indexOf('%'))
  let tail4: bigint | undefined
  const lastColon = s.lastIndexOf(':')
  if (s.includes('.', lastColon)) {
    tail4 = v4(s.slice(lastColon + 1))
    if (tail4 === undefined) return undefined
    s = `${s.slice(0, lastColon + 1)}0:0`
  }
  const halves = s.split('::')
  if (halves.length > 2) return undefined
  const groups = (h: string): string[] => (h === '' ? [] : h.split(':'))
  const head = groups(halves[0])
  const rest = halves.length === 2 ? groups(halves[1]) : []
  const missing = 8 - head.length - rest.length
  if (halves.length === 1 ? head.length !== 8 : missing < 1) return undefined
  const all = [...head, ...new Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest]
  let n = 0n
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined
    n = (n << 16n) | BigInt(parseInt(g, 16))
  }
  if (tail4 !== undefined) n = (n & ~0xffffffffn) | (tail4 & 0xffffffffn)
  return n
}

/** An address as a 128-bit number, or undefined when it is not one. */
export function parseIp (s: string): bigint | undefined {
  return s.includes(':') ? v6(s) : v4(s)
}

/** `10.0.0.0/8`, `2001:db8::/32` or a single address (a /32 or /128). */
export function parseCidr (s: string): Cidr | undefined {
  const slash = s.indexOf('/')
  const addr = slash < 0 ? s : s.slice(0, slash)
  const n = parseIp(addr)
  if (n === undefined) return undefined
  const four = !addr.includes(':')
  const max = four ? 32 : 128
  if (slash >= 0 && !/^\d{1,3}$/.test(s.slice(slash + 1))) return undefined
  const len = slash < 0 ? max : Number(s.slice(slash + 1))
  if (len > max) return undefined
  const bits = four ? len + 96 : len
  return { base: bits === 0 ? 0n : (n >> BigInt(128 - bits)) << BigInt(128 - bits), bits }
}

export function inCidr (ip: bigint, c: Cidr): boolean {
  return c.bits === 0 || (ip >> BigInt(128 - c.bits)) === (c.base >> BigInt(128 - c.bits))
}
