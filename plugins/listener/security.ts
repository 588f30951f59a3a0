import type { IncomingMessage } from 'node:http'
import type { ClusterSpec } from '../../src/compile/snapshot.js'
import type { Plan } from '../../src/routing/decide.js'
import { type RequestFacts, queryParams } from '../../src/routing/facts.js'
import { type AuthzRequest, type PeerIdentity, evaluateAuthz, rbacDetails } from '../../src/security/authz.js'
import { type AuthAttributes, type CompiledJwtRule, authAttributes, findTokens, outputHeaders, unverifiedIssuer } from '../../src/security/jwt-rules.js'
import type { SecurityPoint, SecuritySpec } from '../../src/security/spec.js'
import { Errors, type ErrorSpec } from '../../src/errors.js'

/**
 * The security stage of the request path: RequestAuthentication (JWT) then AuthorizationPolicy,
 * at each enforcement point a request passes. On an ingress listener that is the gateway
 * workload, then the destination workload (the sidecar meshgate stands in for); on the mesh
 * listener, the destination workload, with the caller identified by its address. Runs only when
 * the snapshot has security resources; the routing decision is made first (it is pure), and a
 * denial replaces whatever it planned, as Envoy's RBAC filter runs before the router.
 */

/** Verifies one token against one rule (plugins/jwt.ts, with jose). */
export interface TokenVerifier {
  verify: (rule: CompiledJwtRule, token: string) => Promise<{ ok: true; payload: Record<string, unknown>; payloadJson: string } | { ok: false; reason: string }>
}

export interface SecurityEnv {
  mesh: boolean
  /** The listener's Gateway server port (ingress). */
  configPort: number
  numTrustedProxies: number
  verifier: TokenVerifier
  /** Counters: `allowed`/`denied` per filter, as Envoy's `rbac.*` and `jwt_authn.*` stats. */
  stats: SecurityStats
}

export interface SecurityStats {
  rbacAllowed: number
  rbacDenied: number
  rbacShadowDenied: number
  jwtAllowed: number
  jwtDenied: number
}

export function newSecurityStats (): SecurityStats {
  return { rbacAllowed: 0, rbacDenied: 0, rbacShadowDenied: 0, jwtAllowed: 0, jwtDenied: 0 }
}

/** A denial: the error to answer with (details and body name the reason), and extra headers. */
export interface Denial {
  error: ErrorSpec
  headers?: Record<string, string>
}

interface Point { point: SecurityPoint; peer: PeerIdentity; sourceIp: string; remoteIp: string; port: number }

/**
 * Check a request. Returns undefined (go on), a Denial, or a promise of either when a token
 * must be verified. Verified tokens' output headers are written into `req.headers`.
 */
export function checkSecurity (sec: SecuritySpec, plan: Plan, req: IncomingMessage, peerAddress: string, xff: string,
  clusters: ReadonlyMap<string, ClusterSpec>, env: SecurityEnv): Denial | undefined | Promise<Denial | undefined> {
  // Answered before the filters in Envoy: a malformed target, an escaped-slash redirect.
  if (plan.kind === 'reject' || plan.facts === undefined) return undefined
  const facts = plan.facts
  const points = pointsOf(sec, plan, peerAddress, xff, clusters, env, req)
  if (points.length === 0) return undefined
  // Envoy's jwt_authn lets CORS preflights through (Istio sets bypass_cors_preflight).
  const preflight = plan.kind === 'local' && plan.preflight === true
  return run(points, 0, facts, req, preflight, env)
}

/** The points from `i` on; each authenticates with its own rules (request.auth does not cross workloads). */
function run (points: Point[], i: number, facts: RequestFacts, req: IncomingMessage, preflight: boolean, env: SecurityEnv):
  Denial | undefined | Promise<Denial | undefined> {
  for (; i < points.length; i++) {
    const p = points[i]
    if (p.point.jwt !== undefined && !preflight) {
      const found = findTokens(p.point.jwt, req.headers, () => queryParams(facts))
      if (found.length > 0) {
        const f = found[0]
        const issuer = unverifiedIssuer(f.token)
        const rule = f.rules.find(r => r.issuer === issuer)
        if (rule === undefined) return jwtDenial(env, issuer === undefined ? 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections' : 'Jwt issuer is not configured', facts)
        const at = i
        return env.verifier.verify(rule, f.token).then(r => {
          if (!r.ok) return jwtDenial(env, r.reason, facts)
          env.stats.jwtAllowed++
          const out = outputHeaders(rule, f, r.payloadJson, r.payload)
          if (out.remove !== undefined) delete req.headers[out.remove]
          for (const [k, v] of out.set) req.headers[k] = v
          return authorize(p, authAttributes(r.payload), facts, req, env) ?? run(points, at + 1, facts, req, preflight, env)
        })
      }
    }
    const d = authorize(p, undefined, facts, req, env)
    if (d !== undefined) return d
  }
  return undefined
}

function authorize (p: Point, auth: AuthAttributes | undefined, facts: RequestFacts, req: IncomingMessage, env: SecurityEnv): Denial | undefined {
  const authz = p.point.authz
  if (authz === undefined) return undefined
  const r: AuthzRequest = {
    method: facts.method,
    authority: facts.authority.toLowerCase(),
    path: facts.pathOnly,
    port: p.port,
    headers: req.headers,
    sourceIp: p.sourceIp,
    remoteIp: p.remoteIp,
    peer: p.peer,
    ...(auth !== undefined ? { auth } : {})
  }
  const v = evaluateAuthz(authz, r)
  if (v.shadowDenied !== undefined) env.stats.rbacShadowDenied++
  if (v.allowed) { env.stats.rbacAllowed++; return undefined }
  env.stats.rbacDenied++
  return { error: { ...Errors.RbacDenied, details: rbacDetails(v.policy) } }
}

function jwtDenial (env: SecurityEnv, reason: string, facts: RequestFacts): Denial {
  env.stats.jwtDenied++
  return {
    error: { ...Errors.JwtDenied, body: reason, details: `jwt_authn_access_denied{${reason.replace(/ /g, '_')}}` },
    headers: { 'www-authenticate': `Bearer realm="${facts.scheme}://${facts.authority}${facts.pathOnly}", error="invalid_token"` }
  }
}

/** The enforcement points of a request, in the order it meets them. */
function pointsOf (sec: SecuritySpec, plan: Plan, peerAddress: string, xff: string, clusters: ReadonlyMap<string, ClusterSpec>, env: SecurityEnv, req: IncomingMessage): Point[] {
  const out: Point[] = []
  const facts = plan.facts!
  const hops = xff === '-' ? [] : xff.split(',')
  if (!env.mesh && sec.gateway !== undefined) {
    // use_remote_address: the client is the entry numTrustedProxies hops left of the peer.
    const n = env.numTrustedProxies
    const remote = n > 0 && hops.length > n ? hops[hops.length - 1 - n].trim() : peerAddress
    out.push({ point: sec.gateway, peer: {}, sourceIp: peerAddress, remoteIp: remote, port: env.configPort })
  }
  if (plan.kind === 'forward') {
    const name = plan.resolution.cluster ?? plan.resolution.primary
    const point = sec.clusters.get(name)
    if (point !== undefined) {
      const port = clusters.get(name)?.port ?? facts.port
      // A destination's sidecar does not use the remote address: the client is X-Forwarded-For's last entry.
      const last = hops.length > 0 ? hops[hops.length - 1].trim() : peerAddress
      if (env.mesh) out.push({ point, peer: sec.sources.get(unmapped(peerAddress)) ?? {}, sourceIp: peerAddress, remoteIp: last, port })
      else out.push({ point, peer: sec.gatewayIdentity, sourceIp: req.socket.localAddress ?? peerAddress, remoteIp: last, port })
    }
  }
  return out
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) as `10.0.0.1`. */
function unmapped (a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a
}
