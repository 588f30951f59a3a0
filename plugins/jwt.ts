import { type JWTVerifyGetKey, createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify } from 'jose'
import type { CompiledJwtRule } from '../src/security/jwt-rules.js'

/**
 * JWT verification for RequestAuthentication, with jose (docs/decisions/0008-jose-for-jwt.md).
 * Key sets live as long as the gateway, shared by URI across reloads: a remote set is fetched
 * when a token first needs it, kept for `refreshMs`, and fetched again when a token names a key
 * id it lacks (at most every `cooldownMs`), so keys rotate without a restart. Failures map to
 * Envoy jwt_authn's status strings, which become the 401 body. Never throws, never logs tokens.
 */
export type JwtResult = { ok: true; payload: Record<string, unknown>; payloadJson: string } | { ok: false; reason: string }

export interface JwtVerifierOptions {
  /** JWKS cache max age (istiod refreshes every 20 minutes). */
  refreshMs?: number
  /** Least time between refetches for an unknown key id. */
  cooldownMs?: number
  /** Accepted clock skew for exp/nbf (Envoy's clock_skew_seconds). */
  clockSkewSec?: number
  now?: () => number
}

/** Asymmetric algorithms only: a JWKS of public keys can verify nothing else. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']

export const JWT_REASONS = {
  expired: 'Jwt is expired',
  notYetValid: 'Jwt not yet valid',
  malformed: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections',
  issuer: 'Jwt issuer is not configured',
  audience: 'Audiences in Jwt are not allowed',
  noKey: "Jwks doesn't have key to match kid or alg from Jwt",
  fetch: 'Jwks remote fetch is failed',
  failed: 'Jwt verification fails'
} as const

/** Envoy's `response_code_details` for a JWT failure: `jwt_authn_access_denied{Jwt_is_expired}`. */
export function detailsOf (reason: string): string {
  return `jwt_authn_access_denied{${reason.replace(/ /g, '_')}}`
}

export class JwtVerifier {
  private readonly remote = new Map<string, JWTVerifyGetKey>()
  private readonly local = new Map<string, JWTVerifyGetKey | undefined>()
  private readonly discovered = new Map<string, { uri: string; at: number }>()
  private readonly refreshMs: number
  private readonly cooldownMs: number
  private readonly skew: number
  private readonly now: () => number

  constructor (opts: JwtVerifierOptions = {}) {
    this.refreshMs = opts.refreshMs ?? 20 * 60_000
    this.cooldownMs = opts.cooldownMs ?? 30_000
    this.skew = opts.clockSkewSec ?? 60
    this.now = opts.now ?? Date.now
  }

  async verify (rule: CompiledJwtRule, token: string): Promise<JwtResult> {
    if (token.split('.').length !== 3) return { ok: false, reason: JWT_REASONS.malformed }
    let keys: JWTVerifyGetKey | undefined
    try {
      keys = await this.keysFor(rule)
    } catch {
      return { ok: false, reason: JWT_REASONS.fetch }
    }
    if (keys === undefined) return { ok: false, reason: JWT_REASONS.failed }
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: rule.issuer,
        ...(rule.audiences.length > 0 ? { audience: [...rule.audiences] } : {}),
        clockTolerance: this.skew,
        currentDate: new Date(this.now()),
        algorithms: ALGORITHMS
      })
      const p = payload as Record<string, unknown>
      return { ok: true, payload: p, payloadJson: JSON.stringify(p) }
    } catch (err) {
      return { ok: false, reason: reasonOf(err) }
    }
  }

  /** Nothing to release today (remote sets fetch on demand); kept so the gateway owns its lifetime. */
  close (): void {
    this.remote.clear()
    this.local.clear()
    this.discovered.clear()
  }

  private async keysFor (rule: CompiledJwtRule): Promise<JWTVerifyGetKey | undefined> {
    const k = rule.keys
    if (k.kind === 'inline') {
      if (!this.local.has(k.jwks)) {
        let set: JWTVerifyGetKey | undefined
        try { set = createLocalJWKSet(JSON.parse(k.jwks)) } catch { set = undefined }
        this.local.set(k.jwks, set)
      }
      return this.local.get(k.jwks)
    }
    const uri = k.kind === 'uri' ? k.uri : await this.discover(k.uri, rule.timeoutMs)
    let set = this.remote.get(uri)
    if (set === undefined) {
      set = createRemoteJWKSet(new URL(uri), { cacheMaxAge: this.refreshMs, cooldownDuration: this.cooldownMs, timeoutDuration: rule.timeoutMs })
      this.remote.set(uri, set)
    }
    return set
  }

  /** OpenID discovery: the issuer's configuration document names its `jwks_uri`. */
  private async discover (configUri: string, timeoutMs: number): Promise<string> {
    const hit = this.discovered.get(configUri)
    if (hit !== undefined && this.now() - hit.at < this.refreshMs) return hit.uri
    const res = await fetch(configUri, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })
    if (!res.ok) throw new Error(`discovery answered ${res.status}`)
    const doc = await res.json() as { jwks_uri?: unknown }
    if (typeof doc.jwks_uri !== 'string') throw new Error('no jwks_uri')
    this.discovered.set(configUri, { uri: doc.jwks_uri, at: this.now() })
    return doc.jwks_uri
  }
}

function reasonOf (err: unknown): string {
  if (err instanceof errors.JWTExpired) return JWT_REASONS.expired
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return JWT_REASONS.issuer
    if (err.claim === 'aud') return JWT_REASONS.audience
    if (err.claim === 'nbf') return JWT_REASONS.notYetValid
    return JWT_REASONS.failed
  }
  if (err instanceof errors.JWKSNoMatchingKey) return JWT_REASONS.noKey
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return JWT_REASONS.fetch
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return JWT_REASONS.malformed
  if (err instanceof errors.JOSEError) return JWT_REASONS.failed
  // A network failure of the remote set's fetch.
  return JWT_REASONS.fetch
}
