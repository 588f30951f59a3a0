import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { BlockList, isIP, type AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import type { RunningGateway } from '../plugins/gateway.js'
import { ConfigError, type Generation } from '../plugins/config-manager.js'
import { explain } from './explain.js'
import { resourceRoutes } from './admin/resources.js'
import { meshgateVersion } from '../plugins/version.js'
import type { CompiledRoute, DestinationTarget, ListenerSpec } from '../src/compile/snapshot.js'
import type { Problem } from '../src/config/problem.js'
import { Flag } from '../src/upstream/endpoint.js'
import type { ClusterState } from '../src/runtime/cluster-state.js'

export interface AdminOptions {
  gateway: RunningGateway
  /** Bind address. Default 127.0.0.1. */
  host?: string
  /** Port. Default 15000; 0 picks a free port. */
  port?: number
  /**
   * Bearer token, required for every call but `GET /ready` and `GET /live`. Without one a random
   * token is generated (loopback binds only; see `generatedToken`).
   */
  token?: string
  /**
   * Extra names (or addresses) the `Host` header may carry, e.g. a DNS name the API is reached
   * by. `localhost`, loopback addresses and a non-loopback bind address are always allowed; an
   * entry without a port matches any port. Anything else gets 403 (DNS-rebinding defence).
   */
  allowedHosts?: readonly string[]
  /** Config changes allowed per `reloadWindowMs` (reload, PUT, rollback). Default 20 per 10 s. */
  reloadLimit?: number
  reloadWindowMs?: number
  /**
   * Audit log: one line per mutating call and per refused token (pino-compatible; the CLI passes
   * its logger). Without one, nothing is written.
   */
  logger?: AdminLogger
}

/** The part of a pino logger the admin server uses. */
export interface AdminLogger {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
}

/** Content types a mutating call may carry: JSON, or YAML (a config body). */
const BODY_TYPES = new Set(['application/json', 'application/yaml', 'application/x-yaml', 'text/yaml'])

export interface RunningAdmin {
  app: FastifyInstance
  url: string
  /** The token in force (generated when none was given). */
  token: string
  generatedToken: boolean
  close: () => Promise<void>
}

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
const FLAG_NAMES: Array<[number, string]> = Object.entries(Flag).map(([k, v]) => [v, k])

// ---------------------------------------------------------------- schemas (TypeBox)

const ProblemSchema = Type.Object({
  severity: Type.String(), code: Type.String(), message: Type.String(), file: Type.String(),
  line: Type.Integer(), column: Type.Integer(), resource: Type.Optional(Type.String()), path: Type.Optional(Type.String())
})
const ProblemsReply = Type.Object({ error: Type.String(), problems: Type.Array(ProblemSchema) })
const GenerationReply = Type.Object({
  generation: Type.Integer(), loadedAt: Type.String(), source: Type.String(), resources: Type.Integer(), problems: Type.Array(ProblemSchema)
})
const ErrorReply = Type.Object({ error: Type.String() })
const PutConfigBody = Type.Object({ yaml: Type.String({ maxLength: 8 * 1024 * 1024 }), mode: Type.Optional(Type.Union([Type.Literal('replace'), Type.Literal('merge')])) }, { additionalProperties: false })
const ModeQuery = Type.Object({ mode: Type.Optional(Type.Union([Type.Literal('replace'), Type.Literal('merge')])) })
const ExplainQuery = Type.Object({
  listener: Type.Optional(Type.String({ description: 'mesh, or a Gateway server port such as 8080; default the first gateway listener' })),
  method: Type.Optional(Type.String({ default: 'GET' })),
  authority: Type.String({ description: 'Host header, e.g. reviews:9080' }),
  path: Type.Optional(Type.String({ default: '/' })),
  header: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: 'name:value, repeatable' }))
})
const ClusterParams = Type.Object({ name: Type.String() })
const EndpointParams = Type.Object({ name: Type.String(), endpoint: Type.String({ description: 'address:port' }) })

type ExplainQueryT = Static<typeof ExplainQuery>

/**
 * The admin server: its own Fastify instance (JSON parsing and auth never touch proxied
 * traffic), on 127.0.0.1:15000 by default, in the style of Envoy's admin interface and Kong's
 * admin API. Every route has TypeBox request/response schemas; `GET /openapi.json` describes them.
 */
export async function startAdmin (opts: AdminOptions): Promise<RunningAdmin> {
  const host = opts.host ?? '127.0.0.1'
  const loopback = LOOPBACK.has(host)
  if (!loopback && (opts.token === undefined || opts.token === '')) {
    throw new Error(`refusing to bind the admin API to ${host} without a token: set --admin-token (or MESHGATE_ADMIN_TOKEN), or bind to 127.0.0.1`)
  }
  const hostAllowed = adminHostCheck(host, opts.allowedHosts)
  const generatedToken = opts.token === undefined || opts.token === ''
  const token = generatedToken ? randomBytes(18).toString('base64url') : opts.token!
  const tokenHash = createHash('sha256').update(token).digest()
  const gw = opts.gateway
  const app = Fastify({ logger: false, bodyLimit: 8 * 1024 * 1024 })
  // One JSON error shape for every answer that is not a success: `{ error, problems }`, with the
  // status of the failure. A request Fastify refuses (a query or body that fails its schema,
  // `?mode=upsert` for instance) is a 400 in that shape, never a serialization failure.
  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, _req, reply) => {
    const status = err.validation !== undefined ? 400 : err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    void reply.code(status).type('application/json').serializer(JSON.stringify).send({ error: status === 500 ? 'internal error' : err.message, problems: [] })
  })
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).type('application/json').send({ error: `no route ${req.method} ${req.url.split('?')[0]}`, problems: [] })
  })

  // YAML bodies for PUT /config and POST /config/validate; form posts are refused (no CSRF by form).
  // text/plain is not one of them: it is a CORS "simple" type a cross-site page can post.
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml'], { parseAs: 'string' }, (_req, body, done) => done(null, body))

  const routesDoc: Array<{ method: string; url: string; schema: Record<string, unknown> }> = []
  app.addHook('onRoute', r => {
    if (r.url === '/openapi.json') return
    for (const m of [r.method].flat()) if (m !== 'HEAD') routesDoc.push({ method: m, url: r.url, schema: (r.schema ?? {}) as Record<string, unknown> })
  })

  const PROBE_PATHS = new Set(['/ready', '/live'])
  // Host check, then auth: constant-time comparison of SHA-256 digests (equal length whatever
  // the input), so the time taken says nothing about how much of a guess was right.
  const authOutcome = new WeakMap<FastifyRequest, string>()
  app.addHook('onRequest', async (req, reply) => {
    const mutating = req.method !== 'GET' && req.method !== 'HEAD'
    // Readiness and liveness stay open, token and Host alike: container and Kubernetes probes
    // send no token and address the pod by its IP, and the answer reveals nothing but the state.
    if (!mutating && PROBE_PATHS.has(req.url.split('?')[0])) return
    // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 is same-origin
    // with the API, but its requests carry `Host: evil.example`. Refused before the token is
    // looked at, so a token pasted into such a page does not help either. 403 rather than 421:
    // 421 tells a client to retry on another connection, which would reach the same server.
    if (!hostAllowed(req.headers.host)) {
      authOutcome.set(req, 'bad-host')
      return reply.code(403).send({ error: 'Host not allowed: the admin API answers only localhost, loopback addresses, its bind address and the names given with --admin-allowed-hosts' })
    }
    const auth = req.headers.authorization
    const given = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined
    if (given === undefined) {
      authOutcome.set(req, 'missing')
      return reply.code(401).header('www-authenticate', 'Bearer realm="meshgate-admin"').send({ error: 'missing bearer token (Authorization: Bearer <token>)' })
    }
    if (!timingSafeEqual(createHash('sha256').update(given).digest(), tokenHash)) {
      authOutcome.set(req, 'invalid')
      return reply.code(401).header('www-authenticate', 'Bearer realm="meshgate-admin", error="invalid_token"').send({ error: 'invalid token' })
    }
    authOutcome.set(req, 'ok')
    if (mutating) {
      // CSRF: a browser form or a cross-site fetch without preflight can only send form or
      // text/plain bodies. Only JSON or YAML is accepted (or no body at all).
      const ct = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
      const hasBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined
      if (ct !== '' ? !BODY_TYPES.has(ct) : hasBody) {
        return reply.code(415).send({ error: 'only application/json or application/yaml bodies are accepted (no form posts, no text/plain)' })
      }
    }
  })

  // Audit: every mutating call (whatever its outcome) and every refused token.
  app.addHook('onResponse', async (req, reply) => {
    const log = opts.logger
    if (log === undefined) return
    const mutating = req.method !== 'GET' && req.method !== 'HEAD'
    const outcome = authOutcome.get(req) ?? 'none'
    if (!mutating && outcome !== 'missing' && outcome !== 'invalid' && outcome !== 'bad-host') return
    let generation: number | undefined
    try { generation = gw.config.current.generation } catch { generation = undefined }
    const entry = {
      audit: 'admin', method: req.method, url: req.url, status: reply.statusCode, remote: req.ip, auth: outcome, generation,
      ...(outcome === 'bad-host' ? { host: String(req.headers.host ?? '').slice(0, 256) } : {})
    }
    if (reply.statusCode === 401 || reply.statusCode === 403) log.warn(entry, 'admin call refused')
    else log.info(entry, 'admin call')
  })

  // Rate limit on configuration changes.
  const limit = opts.reloadLimit ?? 20
  const windowMs = opts.reloadWindowMs ?? 10_000
  let stamps: number[] = []
  const rateLimited = (reply: FastifyReply): boolean => {
    const now = Date.now()
    stamps = stamps.filter(s => now - s < windowMs)
    if (stamps.length >= limit) {
      reply.code(429).header('retry-after', String(Math.ceil(windowMs / 1000))).send({ error: `at most ${limit} configuration changes per ${windowMs / 1000} s` })
      return true
    }
    stamps.push(now)
    return false
  }

  // Optimistic concurrency, as Kubernetes' resourceVersion and HTTP preconditions do it: the
  // running generation is the ETag of the configuration; a change that carries If-Match with an
  // older one is refused with 412 instead of silently overwriting what someone else applied.
  const etag = (): string => `"${gw.config.current.generation}"`
  app.addHook('preHandler', async (req, reply) => {
    const changing = req.method !== 'GET' && req.method !== 'HEAD' && req.url.startsWith('/config') && !req.url.startsWith('/config/validate')
    const ifMatch = req.headers['if-match']
    if (!changing || ifMatch === undefined || ifMatch === '*') return
    if (ifMatch.split(',').map(v => v.trim().replace(/^W\//, '')).includes(etag())) return
    return reply.code(412).header('etag', etag()).send({ error: `the configuration is at generation ${gw.config.current.generation}, not ${ifMatch}: read it again (GET /config) and retry`, problems: [] })
  })
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.url.startsWith('/config') && !req.url.startsWith('/config/validate') && reply.statusCode < 300) reply.header('etag', etag())
    return payload
  })

  const genReply = (g: Generation): Static<typeof GenerationReply> => ({
    generation: g.generation,
    loadedAt: new Date(g.loadedAt).toISOString(),
    source: g.source,
    resources: countResources(g),
    problems: g.problems
  })
  const change = async (reply: FastifyReply, fn: () => Promise<Generation>): Promise<unknown> => {
    try {
      return genReply(await fn())
    } catch (err) {
      if (err instanceof ConfigError) return reply.code(400).send({ error: err.message, problems: err.problems })
      throw err
    }
  }

  const s = (schema: Record<string, TSchema | Record<number, TSchema>>): { schema: Record<string, unknown> } => ({ schema })

  app.get('/ready', s({ response: { 200: Type.Object({ ready: Type.Boolean() }), 503: Type.Object({ ready: Type.Boolean() }) } }), async (_req, reply) => {
    if (!gw.ready) return reply.code(503).send({ ready: false })
    return { ready: true }
  })
  app.get('/live', s({ response: { 200: Type.Object({ live: Type.Boolean() }) } }), async () => ({ live: true }))

  app.get('/config', s({ response: { 200: Type.Object({
    version: Type.String(), generation: Type.Integer(), loadedAt: Type.String(), source: Type.String(), paths: Type.Array(Type.String()),
    resources: Type.Array(Type.Object({ kind: Type.String(), namespace: Type.String(), name: Type.String(), file: Type.String(), line: Type.Integer() })),
    problems: Type.Array(ProblemSchema),
    history: Type.Array(Type.Object({ generation: Type.Integer(), loadedAt: Type.String(), source: Type.String() })),
    lastRejection: Type.Optional(Type.Object({ at: Type.String(), source: Type.String(), problems: Type.Array(ProblemSchema) }))
  }) } }), async () => {
    const g = gw.config.current
    const rej = gw.config.lastRejection
    return {
      version: meshgateVersion(),
      generation: g.generation,
      loadedAt: new Date(g.loadedAt).toISOString(),
      source: g.source,
      paths: [...(gw.config.paths ?? [])],
      resources: allResources(g).map(r => ({ kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name, file: r.source.file, line: r.source.line })),
      problems: g.problems,
      history: gw.config.history.map(h => ({ generation: h.generation, loadedAt: new Date(h.loadedAt).toISOString(), source: h.source })),
      ...(rej !== undefined ? { lastRejection: { at: new Date(rej.at).toISOString(), source: rej.source, problems: rej.problems } } : {})
    }
  })
  // The running resources in full, secrets redacted (see `redact`).
  app.get('/config/dump', async () => {
    const g = gw.config.current
    return {
      generation: g.generation,
      resources: allResources(g).map(r => {
        const { source, locate: _locate, ...rest } = r as unknown as Record<string, unknown> & { source: { file: string; line: number } }
        return { ...(redact(rest) as object), source: { file: source.file, line: source.line } }
      })
    }
  })
  await app.register(resourceRoutes, { gw, change, rateLimited, redact, yamlText: body => yamlBody({ body } as FastifyRequest)?.yaml })
  const changeResponses = { 200: GenerationReply, 400: ProblemsReply, 429: ErrorReply }
  app.post('/config/reload', s({ response: changeResponses }), async (_req, reply) => {
    if (rateLimited(reply)) return reply
    return await change(reply, () => gw.config.reload('files'))
  })
  app.put('/config', s({ querystring: ModeQuery, response: changeResponses }), async (req: FastifyRequest<{ Querystring: Static<typeof ModeQuery> }>, reply) => {
    if (rateLimited(reply)) return reply
    const body = yamlBody(req)
    if (body === undefined) return reply.code(400).send({ error: 'send YAML (Content-Type: application/yaml) or JSON {"yaml": "...", "mode": "replace"|"merge"}', problems: [] })
    return await change(reply, () => gw.config.applyText(body.yaml, body.mode ?? req.query.mode ?? 'replace'))
  })
  app.post('/config/validate', s({ querystring: ModeQuery, response: { 200: Type.Object({ ok: Type.Boolean(), problems: Type.Array(ProblemSchema) }), 400: Type.Object({ ok: Type.Boolean(), problems: Type.Array(ProblemSchema) }) } }), async (req: FastifyRequest<{ Querystring: Static<typeof ModeQuery> }>, reply) => {
    const body = req.body === undefined || req.body === null || req.body === '' ? undefined : yamlBody(req)
    const r = await gw.config.validate(body?.yaml, body?.mode ?? req.query.mode ?? 'replace')
    return reply.code(r.ok ? 200 : 400).send(r)
  })
  app.post('/config/rollback', s({ response: changeResponses }), async (_req, reply) => {
    if (rateLimited(reply)) return reply
    return await change(reply, () => gw.config.rollback())
  })

  app.get('/routes', async () => {
    const snap = gw.store.current
    return { generation: snap.generation, listeners: [...snap.gateways, snap.mesh].map(l => describeListener(l)) }
  })
  app.get('/routes/explain', s({ querystring: ExplainQuery }), async (req: FastifyRequest<{ Querystring: ExplainQueryT }>, reply) => {
    const q = req.query
    const snap = gw.store.current
    const l = q.listener === 'mesh' ? snap.mesh : q.listener === undefined ? (snap.gateways[0] ?? snap.mesh) : snap.gateways.find(g => String(g.port) === q.listener)
    if (l === undefined) return reply.code(400).send({ error: `no listener "${q.listener}"; listeners: mesh, ${snap.gateways.map(g => g.port).join(', ')}` })
    return explain(gw, l, q, { route: describeRoute, target: describeTarget })
  })
  app.get('/clusters', async () => ({
    clusters: [...gw.runtime.allClusters()].map(c => ({
      name: c.spec.name, host: c.spec.host, port: c.spec.port, subset: c.spec.subset, destinationRule: c.spec.destinationRule ?? null,
      endpoints: c.endpoints.length, healthy: c.healthy.length, loadBalancer: c.lb.kind, active: c.active, stats: c.stats
    }))
  }))
  app.get('/clusters/:name', s({ params: ClusterParams }), async (req: FastifyRequest<{ Params: Static<typeof ClusterParams> }>, reply) => {
    const c = gw.runtime.cluster(req.params.name)
    if (c === undefined) return reply.code(404).send({ error: `no cluster "${req.params.name}"` })
    return describeCluster(c)
  })
  const drain = (on: boolean) => async (req: FastifyRequest<{ Params: Static<typeof EndpointParams> }>, reply: FastifyReply) => {
    const c = gw.runtime.cluster(req.params.name)
    const ep = c?.endpoints.find(e => e.key === req.params.endpoint)
    if (c === undefined || ep === undefined) return reply.code(404).send({ error: `no endpoint "${req.params.endpoint}" in cluster "${req.params.name}"` })
    // Drain describes the workload: it applies in every cluster the endpoint belongs to.
    ep.host.set(Flag.Drained, on)
    return describeCluster(c)
  }
  app.post('/clusters/:name/endpoints/:endpoint/drain', s({ params: EndpointParams }), drain(true))
  app.post('/clusters/:name/endpoints/:endpoint/restore', s({ params: EndpointParams }), drain(false))

  app.get('/stats/prometheus', async (_req, reply) => {
    reply.header('content-type', gw.metrics.contentType)
    return await gw.metrics.text()
  })

  app.get('/openapi.json', async () => openapi(routesDoc))

  await app.listen({ host, port: opts.port ?? 15000 })
  const addr = app.server.address() as AddressInfo
  return { app, url: `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`, token, generatedToken, close: () => app.close() }
}

/** Marks a value removed from an admin dump. */
export const REDACTED = '[redacted]'

/**
 * Names whose values an admin dump never shows: TLS private keys (paths and inline PEM),
 * anything named like a secret, token, password or API key (labels, annotations, header names
 * in matches and header rewrites), Authorization and Cookie header values, and kubectl's
 * last-applied-configuration annotation (a full copy of the resource). `credentialName` only
 * names a secret directory and is shown.
 */
export const SECRET_NAME = /private[-_]?key|secret|token|passw(or)?d|api[-_]?key|^credentials?$|^authorization$|^proxy-authorization$|^cookie$|^set-cookie$|last-applied-configuration/i

/** A deep copy with the value of every key matching SECRET_NAME replaced by REDACTED. */
export function redact (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(v => redact(v))
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'function') continue
    out[k] = SECRET_NAME.test(k) && v !== undefined && v !== null ? REDACTED : redact(v)
  }
  return out
}

function yamlBody (req: FastifyRequest): { yaml: string; mode?: 'replace' | 'merge' } | undefined {
  const b = req.body as unknown
  if (typeof b === 'string') return { yaml: b }
  if (b !== null && typeof b === 'object' && typeof (b as { yaml?: unknown }).yaml === 'string') {
    const mode = (b as { mode?: unknown }).mode
    return { yaml: (b as { yaml: string }).yaml, ...(mode === 'merge' || mode === 'replace' ? { mode } : {}) }
  }
  return undefined
}

function allResources (g: Generation): Array<{ kind: string; metadata: { namespace: string; name: string }; source: { file: string; line: number } }> {
  const s = g.set
  return [...s.gateways, ...s.virtualServices, ...s.destinationRules, ...s.serviceEntries, ...s.workloadEntries]
}

function countResources (g: Generation): number {
  return allResources(g).length
}

function describeTarget (t: DestinationTarget): Record<string, unknown> {
  return { host: t.host, subset: t.subset === '' ? null : t.subset, cluster: t.cluster ?? (t.byPort !== undefined ? Object.fromEntries(t.byPort) : null) }
}

function describeRoute (r: CompiledRoute, order: number): Record<string, unknown> {
  return {
    order,
    name: r.name,
    virtualService: r.virtualService,
    httpIndex: r.httpIndex,
    matchIndex: r.matchIndex,
    match: redact(r.matchSpec ?? null),
    catchAll: r.match.catchAll,
    rewrite: r.rewrite === undefined ? null : { uri: r.rewrite.uri ?? null, authority: r.rewrite.authority ?? null, uriRegexRewrite: r.rewrite.regex !== undefined },
    timeoutMs: r.timeoutMs ?? null,
    retries: r.retry === undefined ? null : { attempts: r.retry.attempts, retryOn: [...r.retry.on], perTryTimeoutMs: r.retry.perTryTimeoutMs },
    destinations: r.destinations.map(d => ({ ...describeTarget(d), weight: d.weight, fallback: d.fallback === undefined ? null : describeTarget(d.fallback) }))
  }
}

function describeListener (l: ListenerSpec): Record<string, unknown> {
  return {
    name: l.name,
    kind: l.kind,
    port: l.port,
    gateways: l.gatewayNames,
    virtualHosts: l.hosts.all.map(vh => ({ name: vh.name, domains: vh.domains, routes: vh.routes.map((r, i) => describeRoute(r, i)) }))
  }
}

function describeCluster (c: ClusterState): Record<string, unknown> {
  const now = Date.now()
  return {
    name: c.spec.name,
    host: c.spec.host,
    port: c.spec.port,
    subset: c.spec.subset,
    destinationRule: c.spec.destinationRule ?? null,
    loadBalancer: c.lb.kind,
    outlierDetection: c.outlier?.config ?? null,
    limits: Object.fromEntries(Object.entries(c.limits).map(([k, v]) => [k, Number.isFinite(v) ? v : null])),
    active: c.active,
    stats: c.stats,
    endpoints: c.endpoints.map(e => {
      const b = c.breakers.get(e.key)
      const flags = e.flags | e.host.flags
      return {
        endpoint: e.key,
        address: e.spec.address,
        port: e.spec.port,
        labels: e.spec.labels,
        weight: e.spec.weight,
        healthy: e.healthy,
        flags: FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, n]) => n),
        ejections: e.ejections,
        ejectedForMs: e.ejectedUntil > now ? e.ejectedUntil - now : 0,
        breaker: b === undefined ? { state: 'closed', stats: null } : { state: b.state, stats: b.stats() },
        active: e.active,
        requests: e.requests,
        failures: e.failures,
        probe: { lastAt: e.host.lastProbeAt === 0 ? null : new Date(e.host.lastProbeAt).toISOString(), lastError: e.host.lastProbeError || null }
      }
    })
  }
}

/** A minimal OpenAPI 3.1 document built from the registered routes' TypeBox schemas. */
function openapi (routes: Array<{ method: string; url: string; schema: Record<string, unknown> }>): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of routes) {
    const url = r.url.replace(/:([A-Za-z]+)/g, '{$1}')
    // The probes are public (no token, any Host): an empty security requirement says so.
    const op: Record<string, unknown> = { security: r.url === '/ready' || r.url === '/live' ? [] : [{ bearer: [] }], responses: {} }
    const params: unknown[] = []
    const pSchema = r.schema.params as { properties?: Record<string, unknown> } | undefined
    for (const [name, schema] of Object.entries(pSchema?.properties ?? {})) params.push({ name, in: 'path', required: true, schema })
    const qSchema = r.schema.querystring as { properties?: Record<string, unknown>; required?: string[] } | undefined
    for (const [name, schema] of Object.entries(qSchema?.properties ?? {})) params.push({ name, in: 'query', required: qSchema?.required?.includes(name) ?? false, schema })
    if (params.length > 0) op.parameters = params
    const resp = (r.schema.response ?? { 200: {} }) as Record<string, unknown>
    op.responses = Object.fromEntries(Object.entries(resp).map(([code, schema]) => [code, { description: code, content: { 'application/json': { schema } } }]))
    if (r.method === 'PUT' || (r.method === 'POST' && r.url === '/config/validate')) {
      op.requestBody = { content: { 'application/yaml': { schema: { type: 'string' } }, 'application/json': { schema: PutConfigBody } } }
    }
    paths[url] = { ...paths[url], [r.method.toLowerCase()]: op }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'meshgate admin API', version: '1' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths
  }
}

export type { Problem }
