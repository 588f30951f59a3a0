import type { HTTPMatchRequest, StringMatch } from '../config/model.js'
import { type RequestFacts, headerValue, queryParams } from './facts.js'
import { compileStringMatch, matchKind, type ValueMatcher } from './string-match.js'

/** Header keys that Istio ignores inside `headers` (they have their own fields). */
const IGNORED_HEADER_KEYS = new Set(['uri', 'scheme', 'method', 'authority'])

/** A compiled match block: one Envoy route. All conditions are ANDed. */
export interface CompiledMatch {
  /** True when the request satisfies every condition of the block. */
  test: (facts: RequestFacts) => boolean
  /** How the URI was matched; the rewrite of `rewrite.uri` depends on it. */
  uriKind: 'exact' | 'prefix' | 'regex' | 'presence' | 'none'
  /** The URI prefix when `uriKind` is 'prefix' (or '/' when there is no URI condition). */
  prefix: string
  /** Matches every request (Istio `IsCatchAllRoute`): prefix `/` or regex `.*` and nothing else. */
  catchAll: boolean
  /**
   * Set when the block would be a catch-all but for its `port`: Istio drops the block on other
   * ports and emits no Envoy matcher for the port, so on that port it is a catch-all.
   */
  portCatchAll?: number
  /** The block's `name`, for the route name in the access log. */
  name?: string
}

type Check = (facts: RequestFacts) => boolean

/**
 * Compile one `HTTPMatchRequest` (or none: match everything) into a predicate.
 * URI: prefix compares the raw path including the query; exact and regex the path alone.
 */
export function compileMatch (m: HTTPMatchRequest | undefined): CompiledMatch {
  if (m === undefined) {
    return { test: () => true, uriKind: 'none', prefix: '/', catchAll: true }
  }
  const checks: Check[] = []
  const ignoreCase = m.ignoreUriCase === true
  const uriKind = matchKind(m.uri)
  if (m.uri !== undefined) {
    const f = compileStringMatch(m.uri, ignoreCase)
    if (uriKind === 'prefix') checks.push(x => f(x.path))
    else checks.push(x => f(x.pathOnly))
  }
  if (m.scheme !== undefined) {
    const f = compileStringMatch(m.scheme)
    checks.push(x => f(x.scheme))
  }
  if (m.method !== undefined) {
    const f = compileStringMatch(m.method)
    checks.push(x => f(x.method))
  }
  if (m.authority !== undefined) {
    const f = compileStringMatch(m.authority)
    checks.push(x => f(x.authority))
  }
  for (const [name, sm] of entries(m.headers)) {
    const f = compileStringMatch(sm)
    checks.push(x => f(headerValue(x, name)))
  }
  for (const [name, sm] of entries(m.withoutHeaders)) {
    // Istio sets invert_match with treat_missing_header_as_empty: a missing header is ''.
    const f = compileStringMatch(sm)
    if (isPresence(sm)) checks.push(x => !f(headerValue(x, name)))
    else checks.push(x => !f(headerValue(x, name) ?? ''))
  }
  if (m.queryParams !== undefined) {
    for (const [name, sm] of Object.entries(m.queryParams)) {
      const f: ValueMatcher = compileStringMatch(sm)
      checks.push(x => f(queryParams(x).get(name)))
    }
  }
  if (m.port !== undefined) {
    const port = m.port
    checks.push(x => x.port === port)
  }
  const uriCatchAll = m.uri === undefined ||
    (uriKind === 'prefix' && m.uri.prefix === '/') ||
    (uriKind === 'regex' && m.uri.regex === '.*')
  const uriChecks = m.uri === undefined ? 0 : 1
  const onlyUri = checks.length === uriChecks
  const onlyUriAndPort = m.port !== undefined && checks.length === uriChecks + 1
  return {
    test: combine(checks),
    uriKind,
    prefix: uriKind === 'prefix' ? (m.uri?.prefix ?? '/') : '/',
    catchAll: uriCatchAll && onlyUri,
    ...(uriCatchAll && onlyUriAndPort ? { portCatchAll: m.port } : {}),
    name: m.name
  }
}

function entries (h: Record<string, StringMatch> | undefined): Array<[string, StringMatch]> {
  if (h === undefined) return []
  return Object.entries(h).filter(([k]) => !IGNORED_HEADER_KEYS.has(k)).map(([k, v]) => [k.toLowerCase(), v])
}

function isPresence (sm: StringMatch): boolean {
  return matchKind(sm) === 'presence'
}

/** AND the checks without allocating per request; unrolled for the common small counts. */
function combine (checks: Check[]): Check {
  switch (checks.length) {
    case 0: return () => true
    case 1: return checks[0]
    case 2: { const [a, b] = checks; return x => a(x) && b(x) }
    case 3: { const [a, b, c] = checks; return x => a(x) && b(x) && c(x) }
    default: return x => {
      for (let i = 0; i < checks.length; i++) if (!checks[i](x)) return false
      return true
    }
  }
}
