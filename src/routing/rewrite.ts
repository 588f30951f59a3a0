import RE2 from 're2'
import type { HTTPRewrite } from '../config/model.js'
import type { RequestFacts } from './facts.js'
import type { CompiledMatch } from './match.js'

/** A compiled `HTTPRewrite` (plus an authority taken from `headers.request.set.host`). */
export interface CompiledRewrite {
  uri?: string
  authority?: string
  regex?: { re: RE2; substitution: string }
}

/**
 * Compile a rewrite. `uriRegexRewrite` becomes a global RE2 replace (Envoy
 * `RegexMatchAndSubstitute` uses RE2::GlobalReplace) with `\1` groups turned into `$1`.
 */
export function compileRewrite (rw: HTTPRewrite | undefined, hostOverride: string | undefined): CompiledRewrite | undefined {
  if (rw === undefined && hostOverride === undefined) return undefined
  const out: CompiledRewrite = {}
  if (rw?.uri !== undefined) out.uri = rw.uri
  const authority = rw?.authority ?? hostOverride
  if (authority !== undefined) out.authority = authority
  if (rw?.uriRegexRewrite !== undefined) {
    out.regex = {
      re: new RE2(rw.uriRegexRewrite.match, 'g'),
      substitution: toJsSubstitution(rw.uriRegexRewrite.rewrite)
    }
  }
  return out
}

/**
 * RE2 substitution (`\0`…`\9`, `\\`) → JS replace pattern, literal `$` escaped. `\0` is the whole
 * match (`$&`); groups are written two-digit (`$01`) so a digit that follows (`\10` is group 1,
 * then `0`, in RE2) is never read as part of the group number.
 */
export function toJsSubstitution (s: string): string {
  let out = ''
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === '$') out += '$$'
    else if (c === '\\' && i + 1 < s.length && /[0-9]/.test(s[i + 1])) { out += s[i + 1] === '0' ? '$&' : '$0' + s[i + 1]; i++ }
    else if (c === '\\' && s[i + 1] === '\\') { out += '\\'; i++ }
    else out += c
  }
  return out
}

/**
 * The path (with query) sent upstream.
 * `rewrite.uri` replaces the matched prefix for a prefix match, and for a block without a URI
 * condition (Istio matches those with prefix `/`, so `/a` with rewrite `/x` becomes `/xa`);
 * for exact and regex matches it replaces the whole path and keeps the query (Envoy prefix_rewrite).
 */
export function rewritePath (rw: CompiledRewrite | undefined, match: CompiledMatch, facts: RequestFacts): string {
  if (rw === undefined) return facts.path
  if (rw.uri !== undefined) {
    if (match.uriKind === 'prefix' || match.uriKind === 'none' || match.uriKind === 'presence') {
      return rw.uri + facts.path.slice(match.prefix.length)
    }
    return facts.query === '' && !facts.path.endsWith('?') ? rw.uri : `${rw.uri}?${facts.query}`
  }
  if (rw.regex !== undefined) {
    const p = facts.pathOnly.replace(rw.regex.re, rw.regex.substitution)
    return facts.path.length > facts.pathOnly.length ? p + facts.path.slice(facts.pathOnly.length) : p
  }
  return facts.path
}
