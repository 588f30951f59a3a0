import RE2 from 're2'
import type { StringMatch } from '../config/model.js'

/** A compiled `StringMatch`: a predicate over a value that may be absent. */
export type ValueMatcher = (value: string | undefined) => boolean

/**
 * Compile an RE2 regex that must match the whole value, as Envoy's `safe_regex` does
 * ("The rule will not match if only a subsequence ... matches"). The source was checked at
 * load time; a failure here is a bug, so it throws.
 */
export function fullMatchRegex (source: string, flags = ''): RE2 {
  return new RE2(`^(?:${source})$`, flags)
}

/**
 * Compile a StringMatch. An empty match (`{}`) and Istio's special `regex: "*"` are presence
 * checks (`canBeConvertedToPresentMatch` in istio/istio route.go).
 * `ignoreCase` applies to exact and prefix only, never to regex (virtual_service.proto).
 */
export function compileStringMatch (m: StringMatch, ignoreCase = false): ValueMatcher {
  if (m.exact !== undefined) {
    const want = ignoreCase ? m.exact.toLowerCase() : m.exact
    return ignoreCase
      ? v => v !== undefined && v.toLowerCase() === want
      : v => v === want
  }
  if (m.prefix !== undefined) {
    const want = ignoreCase ? m.prefix.toLowerCase() : m.prefix
    return ignoreCase
      ? v => v !== undefined && v.toLowerCase().startsWith(want)
      : v => v !== undefined && v.startsWith(want)
  }
  if (m.regex !== undefined && m.regex !== '*') {
    const re = fullMatchRegex(m.regex)
    return v => v !== undefined && re.test(v)
  }
  return v => v !== undefined
}

/** The kind of a StringMatch, for indexing and rewrite planning. */
export function matchKind (m: StringMatch | undefined): 'exact' | 'prefix' | 'regex' | 'presence' | 'none' {
  if (m === undefined) return 'none'
  if (m.exact !== undefined) return 'exact'
  if (m.prefix !== undefined) return 'prefix'
  if (m.regex !== undefined && m.regex !== '*') return 'regex'
  return 'presence'
}
