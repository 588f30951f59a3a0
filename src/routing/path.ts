/**
 * The request target meshgate matches on and forwards, computed once per request.
 *
 * Matching must see exactly the path that is forwarded (CVE-2019-9901 was a proxy matching
 * `/info/../private` under `/info/` and a backend serving `/private`; CVE-2021-31920 the same
 * with `%2F` and `//`). So the canonical form below is the only path the routing code reads, and
 * the only path the forwarder sends: Istio's contract ("the normalized path is used both to
 * evaluate policy and as the path forwarded to the backend").
 *
 * Steps, in Istio's fixed order (docs/operations.md#one-canonical-path):
 *  1. reject a fragment (`#`) and malformed percent escapes (`%zz`, `%`, `%4`);
 *  2. escaped slashes `%2F`/`%5C`: reject, keep, or decode per the escaped-slash policy;
 *  3. decode percent-encoded unreserved characters (`%2e` → `.`, `%41` → `A`) so that encoded
 *     dot segments are normalized like plain ones; other escapes keep their meaning, hex uppercased;
 *  4. `\` → `/`;
 *  5. RFC 3986 §5.2.4 dot-segment removal;
 *  6. merge repeated slashes (MERGE_SLASHES, DECODE_AND_MERGE_SLASHES).
 * Characters that may not appear raw in a path are percent-encoded. The query is kept verbatim.
 * A leading `//` stays a path (it is never read as a network-path reference: nothing here
 * resolves the target against a base URL).
 */

/** Istio mesh config `pathNormalization.normalization`. */
export type PathNormalization = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES'

/** Envoy `path_with_escaped_slashes_action` for `%2F`, `%2f`, `%5C`, `%5c`. */
export type EscapedSlashesAction = 'REJECT' | 'KEEP_UNCHANGED' | 'UNESCAPE_AND_FORWARD' | 'UNESCAPE_AND_REDIRECT'

export const PATH_NORMALIZATIONS: readonly PathNormalization[] = ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES']
export const ESCAPED_SLASHES_ACTIONS: readonly EscapedSlashesAction[] = ['REJECT', 'KEEP_UNCHANGED', 'UNESCAPE_AND_FORWARD', 'UNESCAPE_AND_REDIRECT']

export interface PathPolicy {
  normalization: PathNormalization
  escapedSlashes: EscapedSlashesAction
}

/** meshgate's default: Istio BASE normalization, escaped slashes rejected (Envoy REJECT_REQUEST). */
export const DEFAULT_PATH_POLICY: PathPolicy = Object.freeze({ normalization: 'BASE', escapedSlashes: 'REJECT' })

export type CanonicalResult =
  | { kind: 'ok'; target: string }
  /** 400: malformed target, malformed escape, fragment, or an escaped slash under REJECT. */
  | { kind: 'reject'; reason: string }
  /** UNESCAPE_AND_REDIRECT: the client is sent to `target` (the unescaped, normalized form). */
  | { kind: 'redirect'; target: string }

const HEX = '0123456789ABCDEF'

/** Characters kept raw in a canonical path: RFC 3986 pchar plus `/` and `%` (escapes). */
const RAW_OK = (() => {
  const ok = new Uint8Array(128)
  const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&\'()*+,;=:@/%'
  for (let i = 0; i < chars.length; i++) ok[chars.charCodeAt(i)] = 1
  return ok
})()

/**
 * Quick test: a path with nothing to change (no escape, no backslash, no `//`, no segment
 * starting with `.`, only characters kept raw) is returned as is: the common case.
 */
const NOT_PLAIN = /\/\/|\/\.|[^A-Za-z0-9\-_~!$&'()*+,;=:@/.]/

function hexVal (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 65 && c <= 70) return c - 55
  if (c >= 97 && c <= 102) return c - 87
  return -1
}

function isUnreserved (c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126
}

/**
 * Canonicalize an origin-form request target (`/path?query`) under `policy`.
 * Pure and idempotent: canonicalizing an `ok` result yields it again.
 */
export function canonicalize (target: string, policy: PathPolicy = DEFAULT_PATH_POLICY): CanonicalResult {
  if (target.length === 0 || target.charCodeAt(0) !== 47 /* / */) return { kind: 'reject', reason: 'not origin-form' }
  if (target.includes('#')) return { kind: 'reject', reason: 'fragment in request target' }
  const q = target.indexOf('?')
  const rawPath = q >= 0 ? target.slice(0, q) : target
  const query = q >= 0 ? target.slice(q) : ''
  if (!NOT_PLAIN.test(rawPath)) return { kind: 'ok', target }
  const norm = policy.normalization
  const action: EscapedSlashesAction = norm === 'DECODE_AND_MERGE_SLASHES' && policy.escapedSlashes !== 'UNESCAPE_AND_REDIRECT'
    ? 'UNESCAPE_AND_FORWARD'
    : policy.escapedSlashes

  // Steps 1–4 in one pass over the characters.
  let out = ''
  let unescapedSlash = false
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i)
    if (c === 37 /* % */) {
      const h = i + 2 < rawPath.length ? hexVal(rawPath.charCodeAt(i + 1)) : -1
      const l = h >= 0 ? hexVal(rawPath.charCodeAt(i + 2)) : -1
      if (l < 0) return { kind: 'reject', reason: 'malformed percent escape' }
      const byte = h * 16 + l
      i += 2
      if (byte === 0x2f || byte === 0x5c) {
        if (action === 'REJECT') return { kind: 'reject', reason: 'escaped slash in path' }
        if (action === 'KEEP_UNCHANGED') { out += byte === 0x2f ? '%2F' : '%5C'; continue }
        unescapedSlash = true
        // A decoded backslash is a slash under every normalizing mode, as a raw one is.
        out += byte === 0x5c && norm === 'NONE' ? '\\' : '/'
        continue
      }
      if (norm !== 'NONE' && isUnreserved(byte)) { out += String.fromCharCode(byte); continue }
      out += '%' + HEX[h] + HEX[l]
      continue
    }
    if (c === 92 /* \ */) { out += norm === 'NONE' ? '\\' : '/'; continue }
    if (c < 128 && RAW_OK[c] === 1) { out += rawPath[i]; continue }
    // Anything else (space, controls, non-ASCII bytes as Node hands them over in latin1, `"<>` …)
    // is percent-encoded, so the forwarded request line carries exactly what was matched.
    if (c > 255) {
      for (const b of Buffer.from(rawPath[i], 'utf8')) out += '%' + HEX[b >> 4] + HEX[b & 15]
      continue
    }
    out += '%' + HEX[c >> 4] + HEX[c & 15]
  }
  if (norm !== 'NONE') out = removeDotSegments(out)
  if (norm === 'MERGE_SLASHES' || norm === 'DECODE_AND_MERGE_SLASHES') out = out.replace(/\/{2,}/g, '/')
  const canonical = out + query
  if (action === 'UNESCAPE_AND_REDIRECT' && unescapedSlash) return { kind: 'redirect', target: canonical }
  return { kind: 'ok', target: canonical }
}

/** RFC 3986 §5.2.4 remove_dot_segments, for an absolute path. */
export function removeDotSegments (path: string): string {
  if (!path.includes('.')) return path
  const segs = path.split('/')
  // segs[0] is '' (the path starts with '/').
  const out: string[] = []
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]
    const last = i === segs.length - 1
    if (s === '.') { if (last) out.push(''); continue }
    if (s === '..') { out.pop(); if (last) out.push(''); continue }
    out.push(s)
  }
  return '/' + out.join('/')
}

/**
 * The canonical target under `policy`, or undefined when it must be answered 400 (a redirect
 * counts as not routable here). For callers that only need the routable form (admin explain).
 */
export function canonicalTarget (target: string, policy: PathPolicy = DEFAULT_PATH_POLICY): string | undefined {
  const r = canonicalize(target, policy)
  return r.kind === 'ok' ? r.target : undefined
}
