import type { CompiledDestination, CompiledRoute, DestinationTarget, ListenerSpec, VirtualHost } from '../compile/snapshot.js'
import { clusterFor } from '../compile/compile.js'
import { hostMatches } from '../config/hosts.js'
import { type ErrorSpec, Errors } from '../errors.js'
import { type FallbackDecision, type HealthView, resolveFallback } from '../resilience/fallback.js'
import { type RetryPolicy, retryPolicy } from '../resilience/retry.js'
import { GRPC_CODES, corsAllows, corsPreflightHeaders, corsResponseHeaders, redirectLocation } from './actions.js'
import { type RequestFacts, buildFacts } from './facts.js'
import { type PathPolicy, canonicalize } from './path.js'
import { rewritePath } from './rewrite.js'
import { pickDestination, selectRoute } from './select.js'

/**
 * What the decision reads of a request. Every entry point (HTTP request, upgrade, the admin
 * API's explain) fills the same fields, so they cannot disagree on what a request is.
 */
export interface RequestInput {
  method: string
  /** `http` or `https`: the downstream scheme of the listener. */
  scheme: string
  /** Host / :authority as received. */
  authority: string
  /** The request target as received (before normalization). */
  target: string
  /** Headers for matching (lowercase names; repeated headers as arrays). */
  headers: Record<string, string | string[] | undefined>
  /** The Gateway server port of an ingress listener; undefined on the mesh listener. */
  listenerPort: number | undefined
  /** The port the client connected to (a redirect's FROM_REQUEST_PORT on ingress listeners). */
  localPort: number | undefined
}

export type { HealthView }

/** The snapshot-side facts a decision needs (the request's own snapshot, read once). */
export interface DecisionContext {
  listener: ListenerSpec | undefined
  /** The clusters of the request's snapshot: they alone decide what exists (NC). */
  clusters: ReadonlyMap<string, unknown>
  health: HealthView
  pathPolicy: PathPolicy
  random: () => number
}

/** Answered before any route is consulted: a bad target, a normalization or HTTPS redirect. */
export interface PreRoutePlan {
  kind: 'reject' | 'redirect'
  error?: ErrorSpec
  status?: number
  location?: string
  facts?: RequestFacts
}

/** Fields every routed plan has. */
interface Routed {
  facts: RequestFacts
  vhost?: VirtualHost
  route?: CompiledRoute
  /** Fault delay drawn for this request (ms), served before the rest of the plan. */
  delayMs?: number
  /** Response flags the decision already implies (DI, FI). */
  flags: string
}

/** A router error: NR (no virtual host/route), NC (no cluster). */
export interface ErrorPlan extends Routed {
  kind: 'error'
  error: ErrorSpec
  /** `%UPSTREAM_CLUSTER%` to log, '-' when unknown. */
  upstreamCluster: string
}

/** A reply the gateway makes itself: direct response, redirect, fault abort, CORS preflight. */
export interface LocalPlan extends Routed {
  kind: 'local'
  route: CompiledRoute
  status: number
  body?: Buffer
  headers: Record<string, string>
  upstreamCluster: string
  /** A CORS preflight answer. */
  preflight?: boolean
}

/** Forward upstream: everything the stages after the decision need. */
export interface ForwardPlan extends Routed {
  kind: 'forward'
  vhost: VirtualHost
  route: CompiledRoute
  dest: CompiledDestination
  /** The port the caller addressed (picks the cluster of multi-port services). */
  port: number
  /** Fallback resolution as of the decision (each retry resolves again, by the same rule). */
  resolution: FallbackDecision
  /** Path sent upstream, after rewrite. */
  path: string
  /** The path before the rewrite when it changed (`x-envoy-original-path`). */
  originalPath?: string
  /** Authority sent upstream (rewrite.authority, a weighted destination's host rewrite, or as sent). */
  authority: string
  retry: RetryPolicy
  /** Route timeout, 0 = none. */
  timeoutMs: number
  mirrors?: ReadonlyArray<{ target: DestinationTarget; fraction: number }>
  /** CORS headers added to the response (the origin is allowed). */
  cors?: Record<string, string>
}

export type Plan = PreRoutePlan | ErrorPlan | LocalPlan | ForwardPlan

const DEFAULT_RETRY = retryPolicy(undefined)

/**
 * The routing decision, for every entry point alike: path normalization, HTTPS redirect,
 * virtual host and first matching route, CORS, fault injection, redirect and direct response,
 * weighted destination, fallback resolution against the request's own snapshot, rewrite,
 * authority, retry and timeout policy, mirrors. Pure: it reads the snapshot and the health
 * view and draws from `random` (fault delay, fault abort, destination, in that order), and
 * changes nothing.
 */
export function decide (req: RequestInput, ctx: DecisionContext): Plan {
  const canon = canonicalize(req.target, ctx.pathPolicy)
  if (canon.kind === 'reject') return { kind: 'reject', error: Errors.BadRequest }
  // UNESCAPE_AND_REDIRECT: the client comes back with the unescaped path, which every hop sees alike.
  if (canon.kind === 'redirect') return { kind: 'redirect', status: 307, location: canon.target }
  const target = canon.target
  const facts = buildFacts(req.method, req.scheme, req.authority, target, req.headers, req.listenerPort)
  const l = ctx.listener
  if (l === undefined) return { kind: 'error', error: Errors.NoRoute, facts, flags: '', upstreamCluster: '-' }
  // Gateway `tls.httpsRedirect`: plain-HTTP requests for those hosts get a 301 (Envoy require_tls).
  if (l.httpsRedirectHosts !== undefined && l.httpsRedirectHosts.some(h => hostMatches(h, facts.host))) {
    return { kind: 'redirect', status: 301, location: `https://${facts.host}${target}`, facts }
  }
  const { vhost, route } = selectRoute(l, facts)
  if (route === undefined) return { kind: 'error', error: Errors.NoRoute, facts, ...(vhost !== undefined ? { vhost } : {}), flags: '', upstreamCluster: '-' }

  // CORS (Envoy cors filter): preflights are answered here; allowed origins get response headers.
  let cors: Record<string, string> | undefined
  const origin = req.headers.origin
  if (route.cors !== undefined && typeof origin === 'string') {
    const allowed = corsAllows(route.cors, origin)
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      if (allowed) return preflight(local(facts, vhost!, route, 200, undefined, corsPreflightHeaders(route.cors, origin), '', '-'))
      if (route.cors.unmatchedPreflights === 'IGNORE') return preflight(local(facts, vhost!, route, 200, undefined, {}, '', '-'))
    } else if (allowed) {
      cors = corsResponseHeaders(route.cors, origin)
    }
  }

  // Fault injection: delay, then abort, each drawn independently (Envoy fault filter).
  let delayMs: number | undefined
  let flags = ''
  const fault = route.fault
  if (fault !== undefined) {
    if (fault.delayMs !== undefined && fault.delayFraction > 0 && ctx.random() < fault.delayFraction) {
      delayMs = fault.delayMs
      flags = 'DI'
    }
    if (fault.abortFraction > 0 && ctx.random() < fault.abortFraction) {
      flags = flags === 'DI' ? 'DI,FI' : 'FI'
      // Envoy resolved the route's cluster before the fault filter ran, and logs it.
      const cluster = route.destinations.length === 1 ? clusterFor(route.destinations[0], facts.port) : '-'
      const plan = fault.abortGrpc !== undefined
        ? local(facts, vhost!, route, 200, undefined, { 'content-type': 'application/grpc', 'grpc-status': String(GRPC_CODES[fault.abortGrpc] ?? 2), 'grpc-message': 'fault filter abort', ...cors }, flags, cluster)
        : local(facts, vhost!, route, fault.abortStatus ?? 503, Buffer.from('fault filter abort'), { 'content-type': 'text/plain', ...cors }, flags, cluster)
      if (delayMs !== undefined) plan.delayMs = delayMs
      return plan
    }
  }
  if (route.redirect !== undefined) {
    const location = redirectLocation(route.redirect, route.match, facts, req.listenerPort === undefined ? facts.port : (req.localPort ?? facts.port))
    return withDelay(delayMs, local(facts, vhost!, route, route.redirect.code, undefined, { location, ...cors }, flags, '-'))
  }
  if (route.directResponse !== undefined) {
    const d = route.directResponse
    return withDelay(delayMs, local(facts, vhost!, route, d.status, d.body, { ...(d.body !== undefined ? { 'content-type': 'text/plain' } : {}), ...cors }, flags, '-'))
  }

  const dest = pickDestination(route, ctx.random)
  if (dest === undefined) return withDelay<ErrorPlan>(delayMs, { kind: 'error', error: Errors.NoCluster, facts, vhost: vhost!, route, flags, upstreamCluster: '-' })
  const path = rewritePath(route.rewrite, route.match, facts)
  const plan: ForwardPlan = {
    kind: 'forward',
    facts,
    vhost: vhost!,
    route,
    dest,
    port: facts.port,
    resolution: resolveDestination(dest, facts.port, ctx),
    path,
    // A weighted destination's `set.host` (Envoy ClusterWeight host_rewrite) unless the route rewrites it.
    authority: route.rewrite?.authority ?? dest.headers?.hostRewrite ?? req.authority,
    retry: route.retry ?? DEFAULT_RETRY,
    timeoutMs: route.timeoutMs ?? 0,
    flags
  }
  // Envoy passes the pre-rewrite path on (and Istio logs it as the request's path).
  if (path !== target) plan.originalPath = target
  if (route.mirrors !== undefined) plan.mirrors = route.mirrors
  if (cors !== undefined) plan.cors = cors
  return withDelay(delayMs, plan)
}

/** A CORS preflight answer (authentication lets these through, as Envoy's jwt_authn does). */
function preflight (p: LocalPlan): LocalPlan {
  p.preflight = true
  return p
}

/** A plan with the fault delay drawn for it, if any. */
function withDelay<P extends Routed> (delayMs: number | undefined, p: P): P {
  if (delayMs !== undefined) p.delayMs = delayMs
  return p
}

/** The route a plan was made by, when a route matched. */
export function routeOf (plan: Plan): CompiledRoute | undefined {
  return plan.kind === 'reject' || plan.kind === 'redirect' ? undefined : (plan as ErrorPlan | LocalPlan | ForwardPlan).route
}

/**
 * ASM fallback for one weighted destination, by the request's snapshot (existence) and the
 * health view (health). Every try of a request, and explain, resolves by this one rule.
 */
export function resolveDestination (dest: CompiledDestination, port: number, ctx: Pick<DecisionContext, 'clusters' | 'health'>): FallbackDecision {
  return resolveFallback(dest, port, ctx.clusters, ctx.health)
}

/** The access-log fields a fallback resolution sets. */
export interface FallbackFields {
  upstreamCluster: string
  fallbackPath: string
  fallbackResult: string
  fallbackFinalCluster: string
}

/**
 * `upstream_cluster` and the `fallback_*` fields of a resolution: the serving cluster, or the
 * primary when nothing serves ('-' for a cluster the snapshot does not know and no fallback).
 */
export function fallbackFields (d: FallbackDecision): FallbackFields {
  if (d.fallbackCluster === undefined) {
    const upstreamCluster = d.cluster ?? (d.failure === 'NC' ? '-' : d.primary)
    return { upstreamCluster, fallbackPath: '-', fallbackResult: '-', fallbackFinalCluster: '-' }
  }
  return {
    upstreamCluster: d.cluster ?? d.primary,
    fallbackPath: `${d.primary}:${d.fallbackCluster}`,
    fallbackResult: d.result ?? '-',
    fallbackFinalCluster: d.cluster ?? '-'
  }
}

function local (facts: RequestFacts, vhost: VirtualHost, route: CompiledRoute, status: number, body: Buffer | undefined, headers: Record<string, string>, flags: string,
  upstreamCluster: string): LocalPlan {
  const p: LocalPlan = { kind: 'local', facts, vhost, route, status, headers, flags, upstreamCluster }
  if (body !== undefined) p.body = body
  return p
}
