import type { JWTRule } from '../config/model.js'
import { parseDurationMs } from '../config/duration.js'

/**
 * RequestAuthentication `jwtRules`, compiled: where a token is looked for, what it must say,
 * and what is passed upstream once it is verified. Pure: verification itself (signatures, the
 * JWKS fetch and its cache) is done by the plugin layer with `jose` (plugins/jwt.ts).
 */
export interface CompiledJwtRule {
  /** `ns/name[index]` of the RequestAuthentication rule, for logs. */
  id: string
  issuer: string
  /** Accepted `aud` values; empty = any. */
  audiences: readonly string[]
  /** Where the keys come from: a JWKS URL, inline JWKS JSON, or OpenID discovery from the issuer. */
  keys: { kind: 'uri'; uri: string } | { kind: 'inline'; jwks: string } | { kind: 'discovery'; uri: string }
  /** Headers to read, with the prefix stripped (default `Authorization: Bearer `). */
  fromHeaders: ReadonlyArray<{ name: string; prefix: string }>
  /** Query parameters to read (default `access_token` when no location is configured). */
  fromParams: readonly string[]
  fromCookies: readonly string[]
  outputPayloadToHeader?: string
  forwardOriginalToken: boolean
  outputClaimToHeaders: ReadonlyArray<{ header: string; claim: string }>
  /** JWKS fetch timeout (Istio `timeout`, default 5 s). */
  timeoutMs: number
}

/** The token locations Envoy's jwt_authn uses when a rule names none. */
const DEFAULT_HEADERS = [{ name: 'authorization', prefix: 'Bearer ' }]
const DEFAULT_PARAMS = ['access_token']
export const DEFAULT_JWKS_TIMEOUT_MS = 5000

export function compileJwtRule (rule: JWTRule, id: string): CompiledJwtRule {
  const explicit = rule.fromHeaders !== undefined || rule.fromParams !== undefined || rule.fromCookies !== undefined
  return {
    id,
    issuer: rule.issuer,
    audiences: rule.audiences ?? [],
    keys: rule.jwks !== undefined
      ? { kind: 'inline', jwks: rule.jwks }
      : rule.jwksUri !== undefined
        ? { kind: 'uri', uri: rule.jwksUri }
        : { kind: 'discovery', uri: `${rule.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration` },
    fromHeaders: explicit ? (rule.fromHeaders ?? []).map(h => ({ name: h.name.toLowerCase(), prefix: h.prefix ?? '' })) : DEFAULT_HEADERS,
    fromParams: explicit ? (rule.fromParams ?? []) : DEFAULT_PARAMS,
    fromCookies: rule.fromCookies ?? [],
    ...(rule.outputPayloadToHeader !== undefined ? { outputPayloadToHeader: rule.outputPayloadToHeader.toLowerCase() } : {}),
    forwardOriginalToken: rule.forwardOriginalToken === true,
    outputClaimToHeaders: (rule.outputClaimToHeaders ?? []).map(o => ({ header: o.header.toLowerCase(), claim: o.claim })),
    timeoutMs: rule.timeout !== undefined ? (parseDurationMs(rule.timeout) ?? DEFAULT_JWKS_TIMEOUT_MS) : DEFAULT_JWKS_TIMEOUT_MS
  }
}

/** Where one token was found: enough to remove it when it is not forwarded. */
export interface FoundToken {
  token: string
  /** The rules that read this location (a token is checked against the rule of its issuer). */
  rules: readonly CompiledJwtRule[]
  where: { kind: 'header'; name: string } | { kind: 'param'; name: string } | { kind: 'cookie'; name: string }
}

type HeaderBag = Record<string, string | string[] | undefined>

/**
 * Every token present in the locations the rules name, in rule order, each location once.
 * `params` is the request's query (first value per name); cookies are parsed from the header.
 */
export function findTokens (rules: readonly CompiledJwtRule[], headers: HeaderBag, params: () => ReadonlyMap<string, string>): FoundToken[] {
  const found = new Map<string, FoundToken>()
  const add = (key: string, token: string, rule: CompiledJwtRule, where: FoundToken['where']): void => {
    const f = found.get(key)
    if (f === undefined) found.set(key, { token, rules: [rule], where })
    else if (!f.rules.includes(rule)) (f.rules as CompiledJwtRule[]).push(rule)
  }
  let cookies: Map<string, string> | undefined
  for (const rule of rules) {
    for (const h of rule.fromHeaders) {
      const raw = headers[h.name]
      const v = Array.isArray(raw) ? raw[0] : raw
      if (v === undefined) continue
      // The prefix is matched case-insensitively for the default `Bearer ` scheme, as Envoy does.
      if (h.prefix !== '' && v.slice(0, h.prefix.length).toLowerCase() !== h.prefix.toLowerCase()) continue
      const token = v.slice(h.prefix.length).trim()
      if (token !== '') add(`h:${h.name}:${h.prefix}`, token, rule, { kind: 'header', name: h.name })
    }
    if (rule.fromParams.length > 0) {
      const q = params()
      for (const p of rule.fromParams) {
        const token = q.get(p)
        if (token !== undefined && token !== '') add(`p:${p}`, token, rule, { kind: 'param', name: p })
      }
    }
    if (rule.fromCookies.length > 0) {
      cookies ??= parseCookies(headers.cookie)
      for (const c of rule.fromCookies) {
        const token = cookies.get(c)
        if (token !== undefined && token !== '') add(`c:${c}`, token, rule, { kind: 'cookie', name: c })
      }
    }
  }
  return [...found.values()]
}

function parseCookies (raw: string | string[] | undefined): Map<string, string> {
  const out = new Map<string, string>()
  if (raw === undefined) return out
  for (const line of Array.isArray(raw) ? raw : [raw]) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=')
      if (eq < 0) continue
      const name = part.slice(0, eq).trim()
      if (!out.has(name)) out.set(name, part.slice(eq + 1).trim())
    }
  }
  return out
}

/** The issuer a token claims, read without verifying (to pick the rule); undefined when it is not a JWT. */
export function unverifiedIssuer (token: string): string | undefined {
  const parts = token.split('.')
  if (parts.length !== 3) return undefined
  try {
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { iss?: unknown }
    return typeof payload.iss === 'string' ? payload.iss : undefined
  } catch {
    return undefined
  }
}

/** What a verified token stands for, as Istio's `request.auth.*` attributes. */
export interface AuthAttributes {
  /** `iss/sub`. */
  principal: string
  audiences: readonly string[]
  presenter?: string
  claims: Readonly<Record<string, unknown>>
}

export function authAttributes (payload: Readonly<Record<string, unknown>>): AuthAttributes {
  const aud = payload.aud
  return {
    principal: `${String(payload.iss ?? '')}/${String(payload.sub ?? '')}`,
    audiences: typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [],
    ...(typeof payload.azp === 'string' ? { presenter: payload.azp } : {}),
    claims: payload
  }
}

/**
 * The header changes a verified token makes: the payload (base64url JSON) and claims copied to
 * headers, and the token itself removed from its header unless `forwardOriginalToken`.
 * Claim paths use `.` for nesting; strings, numbers and booleans are copied, lists joined with `,`.
 */
export function outputHeaders (rule: CompiledJwtRule, found: FoundToken, payloadJson: string, payload: Readonly<Record<string, unknown>>): { set: Array<[string, string]>; remove?: string } {
  const set: Array<[string, string]> = []
  if (rule.outputPayloadToHeader !== undefined) set.push([rule.outputPayloadToHeader, Buffer.from(payloadJson, 'utf8').toString('base64url')])
  for (const o of rule.outputClaimToHeaders) {
    let v: unknown = payload
    for (const k of o.claim.split('.')) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined
    const text = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v)
      : Array.isArray(v) && v.every(x => typeof x === 'string') ? v.join(',') : undefined
    if (text !== undefined) set.push([o.header, text])
  }
  const remove = !rule.forwardOriginalToken && found.where.kind === 'header' ? found.where.name : undefined
  return { set, ...(remove !== undefined ? { remove } : {}) }
}
