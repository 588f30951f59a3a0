import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { BlockList, isIP } from 'node:net'
import type { FastifyRequest } from 'fastify'
import { ErrorReply } from './schemas.js'
import { addResponses, adminConfig, isMutating, serverWide } from './shared.js'

// Who may call the admin API: the Host check (DNS rebinding), then the bearer token or the
// dashboard's session cookie. Routes marked `config: { public: true }` (the probes) skip both;
// `config: { anonymous: true }` (the dashboard's login page and its static files) skips the
// token only.

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost'])
const LOOPBACK_NETS = new BlockList()
LOOPBACK_NETS.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK_NETS.addAddress('::1', 'ipv6')

/** A `Host` header split into a lower-case name (no brackets, no trailing dot) and a port. */
export function parseHostHeader (value: string): { name: string; port?: number } | undefined {
  const v = value.trim().toLowerCase()
  let name: string
  let rest: string
  if (v.startsWith('[')) {
    const end = v.indexOf(']')
    if (end < 0) return undefined
    name = v.slice(1, end)
    if (isIP(name) !== 6) return undefined
    rest = v.slice(end + 1)
  } else {
    const colon = v.indexOf(':')
    if (colon !== v.lastIndexOf(':')) return undefined // an unbracketed IPv6 address is not a Host
    name = colon < 0 ? v : v.slice(0, colon)
    rest = colon < 0 ? '' : v.slice(colon)
  }
  if (name.endsWith('.')) name = name.slice(0, -1)
  if (name === '' || !/^[a-z0-9.\-_:]+$/.test(name)) return undefined
  if (rest === '') return { name }
  if (!/^:\d{1,5}$/.test(rest) || Number(rest.slice(1)) > 65535) return undefined
  return { name, port: Number(rest.slice(1)) }
}

/** `localhost`, 127.0.0.0/8 or ::1. */
function isLoopbackName (name: string): boolean {
  if (name === 'localhost') return true
  const family = isIP(name)
  return family !== 0 && LOOPBACK_NETS.check(name, family === 6 ? 'ipv6' : 'ipv4')
}

/**
 * The `Host` check of the admin API: a predicate over the header value. Accepted: `localhost`
 * and loopback addresses with or without a port, `bindHost` when it is not loopback, and every
 * `extra` entry (an entry without a port matches any port). A DNS-rebinding page reaches the
 * API under its own name, so it is refused whatever else it sends.
 */
export function adminHostCheck (bindHost: string, extra: readonly string[] = []): (host: string | undefined) => boolean {
  const allowed: Array<{ name: string; port?: number }> = []
  for (const e of [bindHost, ...extra]) {
    const entry = isIP(e) === 6 ? { name: e.toLowerCase() } : parseHostHeader(e)
    if (entry === undefined) throw new Error(`admin allowed host "${e}": expected a host name or address, optionally with :port`)
    allowed.push(entry)
  }
  return host => {
    if (host === undefined) return false
    const h = parseHostHeader(host)
    if (h === undefined) return false
    if (isLoopbackName(h.name)) return true
    return allowed.some(a => a.name === h.name && (a.port === undefined || a.port === h.port))
  }
}

/**
 * The token in force: the given one, or a random one when none is given on a loopback bind.
 * Binding anywhere else without a token is refused.
 */
export function adminToken (bindHost: string, given: string | undefined): { token: string; generated: boolean } {
  if (given !== undefined && given !== '') return { token: given, generated: false }
  if (!LOOPBACK.has(bindHost)) {
    throw new Error(`refusing to bind the admin API to ${bindHost} without a token: set --admin-token (or MESHGATE_ADMIN_TOKEN), or bind to 127.0.0.1`)
  }
  return { token: randomBytes(18).toString('base64url'), generated: true }
}

/** How a request fared with the auth plugin (`none`: a public route, never checked). */
export type AuthOutcome = 'none' | 'ok' | 'session' | 'missing' | 'invalid' | 'bad-host' | 'cross-site'

/** The dashboard's session cookie. */
export const SESSION_COOKIE = 'meshgate_session'
/** The header the dashboard sends with every change it makes through its cookie (CSRF defence). */
export const UI_HEADER = 'x-meshgate-ui'
/** How long a dashboard session lasts (8 hours). */
export const SESSION_TTL_MS = 8 * 3600_000

/**
 * The dashboard's sessions: random ids handed out as an HttpOnly, SameSite=Strict cookie in
 * exchange for the token, kept in memory (a restart logs everyone out), never the token itself.
 */
export class AdminSessions {
  private readonly ids = new Map<string, number>()
  constructor (private readonly tokenHash: Buffer, private readonly now: () => number = Date.now) {}

  /** A new session id when `token` is the admin token, else undefined. */
  login (token: string): string | undefined {
    if (!timingSafeEqual(createHash('sha256').update(token).digest(), this.tokenHash)) return undefined
    const t = this.now()
    for (const [id, expires] of this.ids) if (expires <= t) this.ids.delete(id)
    const id = randomBytes(24).toString('base64url')
    this.ids.set(id, t + SESSION_TTL_MS)
    return id
  }

  valid (id: string | undefined): boolean {
    if (id === undefined) return false
    const expires = this.ids.get(id)
    if (expires === undefined) return false
    if (expires > this.now()) return true
    this.ids.delete(id)
    return false
  }

  logout (id: string | undefined): void {
    if (id !== undefined) this.ids.delete(id)
  }
}

/** The session id a request's Cookie header carries, if any. */
export function sessionOf (req: FastifyRequest): string | undefined {
  const header = req.headers.cookie
  if (typeof header !== 'string') return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim()
  }
  return undefined
}

/**
 * Whether a cookie-authenticated change may go ahead: the page's own header must be present (a
 * cross-site form or simple request cannot set it, and a cross-site fetch that does needs a
 * CORS preflight this server never grants), and an `Origin`, when sent, must name this server.
 */
export function sameOriginChange (req: FastifyRequest): boolean {
  if (req.headers[UI_HEADER] !== '1') return false
  const origin = req.headers.origin
  if (origin === undefined) return true
  try {
    return new URL(origin).host === String(req.headers.host ?? '').toLowerCase()
  } catch {
    return false
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The dashboard sessions (set by the auth plugin). */
    adminSessions: AdminSessions
  }
}

const outcomes = new WeakMap<FastifyRequest, AuthOutcome>()

/** The auth outcome of a request, for the audit log. */
export function authOutcome (req: FastifyRequest): AuthOutcome {
  return outcomes.get(req) ?? 'none'
}

export interface AuthOptions {
  token: string
  /** The bind address (allowed as a Host when it is not loopback). */
  bindHost: string
  /** Extra Host names, as `adminHostCheck` takes them. */
  allowedHosts?: readonly string[]
}

/**
 * Host check, then the bearer token, on every route but the public ones: 403 for a Host that is
 * not the API's own, 401 for a missing or wrong token. The token is compared as SHA-256
 * digests with `timingSafeEqual` (equal length whatever the input), so the time taken says
 * nothing about how much of a guess was right.
 */
export const adminAuth = serverWide<AuthOptions>('meshgate-admin-auth', async (app, o) => {
  const hostAllowed = adminHostCheck(o.bindHost, o.allowedHosts)
  const tokenHash = createHash('sha256').update(o.token).digest()
  const sessions = new AdminSessions(tokenHash)
  app.decorate('adminSessions', sessions)
  app.addHook('onRoute', route => {
    const cfg = adminConfig(route.config)
    if (cfg.public !== true) addResponses(route, cfg.anonymous === true ? { 403: ErrorReply } : { 401: ErrorReply, 403: ErrorReply })
  })
  app.addHook('onRequest', async (req, reply) => {
    // Readiness and liveness stay open, token and Host alike: container and Kubernetes probes
    // send no token and address the pod by its IP, and the answer reveals nothing but the state.
    if (adminConfig(req.routeOptions.config).public === true) return
    // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 is same-origin
    // with the API, but its requests carry `Host: evil.example`. Refused before the token is
    // looked at, so a token pasted into such a page does not help either. 403 rather than 421:
    // 421 tells a client to retry on another connection, which would reach the same server.
    if (!hostAllowed(req.headers.host)) {
      outcomes.set(req, 'bad-host')
      return reply.code(403).send({ error: 'Host not allowed: the admin API answers only localhost, loopback addresses, its bind address and the names given with --admin-allowed-hosts' })
    }
    if (adminConfig(req.routeOptions.config).anonymous === true) return
    const auth = req.headers.authorization
    const given = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined
    // The dashboard's cookie stands for the token when no Authorization header is sent.
    if (given === undefined && sessions.valid(sessionOf(req))) {
      if (isMutating(req.method) && !sameOriginChange(req)) {
        outcomes.set(req, 'cross-site')
        return reply.code(403).send({ error: `a change through the dashboard session needs the ${UI_HEADER}: 1 header and a same-origin Origin` })
      }
      outcomes.set(req, 'session')
      return
    }
    if (given === undefined) {
      outcomes.set(req, 'missing')
      return reply.code(401).header('www-authenticate', 'Bearer realm="meshgate-admin"').send({ error: 'missing bearer token (Authorization: Bearer <token>)' })
    }
    if (!timingSafeEqual(createHash('sha256').update(given).digest(), tokenHash)) {
      outcomes.set(req, 'invalid')
      return reply.code(401).header('www-authenticate', 'Bearer realm="meshgate-admin", error="invalid_token"').send({ error: 'invalid token' })
    }
    outcomes.set(req, 'ok')
  })
})
