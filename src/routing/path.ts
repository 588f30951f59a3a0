/**
 * The request target meshgate matches on and forwards, computed once.
 *
 * The forwarder builds its URL with WHATWG `URL`, which removes dot segments, turns `\` into `/`
 * and percent-encodes a few characters. Matching must see exactly the path that is forwarded
 * (CVE-2019-9901 was a proxy matching `/info/../private` as `/info/...`), so the same
 * canonical form is produced here, before matching. Malformed percent escapes are rejected.
 */

/** Characters that make WHATWG URL parsing change a path, or need a check. */
const NEEDS_CANONICAL = /\\|\/\.|[^\x21-\x7e]|["<>`{}^|]/
const BAD_ESCAPE = /%(?![0-9a-fA-F]{2})/

/**
 * Canonical origin-form target (`/path?query`), or undefined when the target is malformed
 * (not origin-form, bad percent escape, or an escape that does not decode as UTF-8).
 */
export function canonicalTarget (target: string): string | undefined {
  if (target.length === 0 || target.charCodeAt(0) !== 47 /* / */) return undefined
  if (target.includes('%')) {
    if (BAD_ESCAPE.test(target)) return undefined
    try {
      decodeURIComponent(target)
    } catch {
      return undefined
    }
  }
  if (!NEEDS_CANONICAL.test(target)) return target
  let u: URL
  try {
    u = new URL(target, 'http://canonical.invalid')
  } catch {
    return undefined
  }
  if (u.host !== 'canonical.invalid') return undefined
  return u.pathname + u.search
}
