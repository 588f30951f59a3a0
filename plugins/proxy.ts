import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { Transform } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import replyFrom from '@fastify/reply-from'
import type { Dispatcher } from 'undici'
import type { ListenerSpec, Snapshot } from '../src/compile/snapshot.js'
import { Errors, type ErrorSpec } from '../src/errors.js'
import { buildFacts } from '../src/routing/facts.js'
import { applyHeaderOps, type HeaderMap } from '../src/routing/headers.js'
import { canonicalTarget } from '../src/routing/path.js'
import { rewritePath } from '../src/routing/rewrite.js'
import { pickDestination, selectRoute } from '../src/routing/select.js'
import { resolveFallback, type ClusterHealthView } from '../src/resilience/fallback.js'
import type { RuntimeState } from '../src/runtime/state.js'
import type { SnapshotStore } from '../src/runtime/store.js'
import { type AccessLogContext, type AccessLogWriter, accessLogRecord, newAccessLogContext } from './access-log.js'

declare module 'fastify' {
  interface FastifyRequest {
    mg: AccessLogContext | null
  }
}

export interface ListenerOptions {
  kind: 'gateway' | 'mesh'
  /** The Gateway server port this listener serves (its routes); the bind port may differ. */
  configPort: number
  store: SnapshotStore
  runtime: RuntimeState
  /** undici dispatcher with one keep-alive pool per endpoint origin. */
  dispatcher: Dispatcher
  accessLog: AccessLogWriter
  random?: () => number
  now?: () => number
  /** Fastify server options merged in (timeouts, limits). */
  serverOptions?: Record<string, unknown>
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) never forwarded in either direction. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate']

/**
 * Build the Fastify instance of one listener (a Gateway port or the mesh). Proxying runs in the
 * `onRequest` hook: nothing is routed by Fastify, no body is parsed, and the request stream is
 * handed to reply-from as is, so bodies stream in both directions.
 */
export async function createListener (opts: ListenerOptions): Promise<FastifyInstance> {
  const random = opts.random ?? Math.random
  const now = opts.now ?? Date.now
  const isMesh = opts.kind === 'mesh'
  const app = Fastify({
    logger: false,
    disableRequestLogging: true,
    return503OnClosing: true,
    // Forward-proxy style requests (absolute-form, as HTTP_PROXY clients send them) carry the
    // authority in the target: RFC 9112 §3.2.2 says it replaces Host.
    rewriteUrl: isMesh ? absoluteFormToOrigin : undefined,
    ...opts.serverOptions
  })
  app.decorateRequest('mg', null)
  await app.register(replyFrom, {
    undici: opts.dispatcher as never,
    disableCache: true,
    disableRequestLogging: true
  })

  let listener = currentListener(opts.store.current)
  opts.store.onSwap(next => { listener = currentListener(next) })

  function currentListener (snap: Snapshot): ListenerSpec | undefined {
    return isMesh ? snap.mesh : snap.gateways.find(l => l.port === opts.configPort)
  }

  const healthView = (runtime: RuntimeState): ClusterHealthView => ({
    exists: name => runtime.cluster(name) !== undefined,
    hasHealthy: name => {
      const c = runtime.cluster(name)
      return c !== undefined && c.spec.endpoints.length > 0
    }
  })
  const view = healthView(opts.runtime)

  app.addHook('onRequest', async (request, reply) => {
    const ctx = newAccessLogContext()
    request.mg = ctx
    ctx.startTime = now()
    ctx.startHr = process.hrtime.bigint()
    const raw = request.raw
    const headers = raw.headers
    const sock = raw.socket
    ctx.method = raw.method ?? 'GET'
    ctx.authority = headers.host ?? '-'
    ctx.path = raw.url ?? '/'
    ctx.protocol = `HTTP/${raw.httpVersion}`
    ctx.userAgent = headers['user-agent'] ?? '-'
    ctx.downstreamLocal = `${sock.localAddress}:${sock.localPort}`
    ctx.downstreamRemote = `${sock.remoteAddress}:${sock.remotePort}`
    ctx.listener = isMesh ? 'mesh' : String(opts.configPort)
    const cl = headers['content-length']
    if (cl !== undefined) ctx.bytesReceived = Number(cl) || 0

    // x-request-id is generated when absent and passed on (Envoy's HCM behaviour).
    let requestId = headers['x-request-id']
    if (typeof requestId !== 'string' || requestId === '') {
      requestId = randomUUID()
      headers['x-request-id'] = requestId
    }
    ctx.requestId = requestId
    ctx.traceId = traceIdOf(headers)

    const l = listener
    if (l === undefined) return sendError(reply, ctx, Errors.NoRoute)
    const target = canonicalTarget(raw.url ?? '/')
    if (target === undefined) return sendError(reply, ctx, Errors.BadRequest)
    const facts = buildFacts(ctx.method, 'http', headers.host ?? '', target, headers, isMesh ? undefined : opts.configPort)
    const { route } = selectRoute(l, facts)
    if (route === undefined) return sendError(reply, ctx, Errors.NoRoute)
    ctx.routeName = route.name

    const dest = pickDestination(route, random)
    if (dest === undefined) return sendError(reply, ctx, Errors.NoCluster)
    const decision = resolveFallback(dest, facts.port, view)
    ctx.upstreamCluster = decision.primary
    if (decision.fallbackCluster !== undefined) {
      ctx.fallbackPath = `${decision.primary}:${decision.fallbackCluster}`
      ctx.fallbackResult = decision.result ?? '-'
      if (decision.cluster !== undefined) ctx.fallbackFinalCluster = decision.cluster
    }
    if (decision.cluster === undefined) {
      return sendError(reply, ctx, decision.failure === 'NC' ? Errors.NoCluster : Errors.NoHealthyUpstream)
    }
    if (decision.cluster !== decision.primary) ctx.upstreamCluster = decision.cluster
    const cluster = opts.runtime.cluster(decision.cluster)
    const endpoint = cluster === undefined ? undefined : opts.runtime.pick(cluster)
    if (endpoint === undefined) return sendError(reply, ctx, Errors.NoHealthyUpstream)

    const hostPort = endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`
    ctx.upstreamHost = hostPort
    const path = rewritePath(route.rewrite, route.match, facts)
    const authority = route.rewrite?.authority ?? headers.host ?? hostPort
    const destHeaders = dest.headers
    const remoteAddress = sock.remoteAddress ?? ''

    // Request body: streamed from the client socket, never parsed or buffered.
    const hasBody = headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')
    const bodyless = ctx.method === 'GET' || ctx.method === 'HEAD'
    if (hasBody && !bodyless) {
      request.body = cl === undefined ? countingStream(raw, ctx) : raw
    }
    const upstreamStart = process.hrtime.bigint()

    reply.from(`http://${hostPort}${path}`, {
      retryDelay: () => null,
      rewriteRequestHeaders: (_req, h) => {
        const out = h as HeaderMap
        for (const name of HOP_BY_HOP) delete out[name]
        if (bodyless) { delete out['content-length'] }
        out.host = authority
        // x-forwarded-for: append the peer (Envoy use_remote_address); x-forwarded-proto at the edge.
        const xff = out['x-forwarded-for']
        out['x-forwarded-for'] = xff === undefined || xff === '' ? remoteAddress : `${String(xff)}, ${remoteAddress}`
        ctx.xForwardedFor = out['x-forwarded-for'] as string
        if (!isMesh || out['x-forwarded-proto'] === undefined) out['x-forwarded-proto'] = 'http'
        // Envoy applies the most specific level first, so route-level operations win on conflicts.
        applyHeaderOps(destHeaders?.request, out)
        applyHeaderOps(route.headers?.request, out)
        return out as Record<string, string>
      },
      rewriteHeaders: (h) => {
        ctx.upstreamServiceTime = Number((process.hrtime.bigint() - upstreamStart) / 1000000n)
        const out: HeaderMap = { ...h }
        for (const name of HOP_BY_HOP) delete out[name]
        const len = out['content-length']
        if (len !== undefined) ctx.bytesSent = Number(len) || 0
        out['x-envoy-upstream-service-time'] = String(ctx.upstreamServiceTime)
        applyHeaderOps(destHeaders?.response, out)
        applyHeaderOps(route.headers?.response, out)
        return out as Record<string, string>
      },
      onResponse: (_req, rep, res) => {
        const stream = (res as unknown as { stream: NodeJS.ReadableStream }).stream
        const hdrs = (res as unknown as { headers: Record<string, unknown> }).headers
        if (hdrs['content-length'] === undefined) rep.send(countingStream(stream, ctx, 'sent'))
        else rep.send(stream)
      },
      onError: (rep, { error }) => {
        const cause = (error as { cause?: { code?: string; message?: string } }).cause ?? (error as { code?: string })
        const spec = upstreamErrorSpec(cause.code)
        ctx.upstreamTransportFailureReason = cause.code ?? cause.message ?? 'unknown'
        sendError(rep, ctx, spec)
      }
    })
    return reply
  })

  // Every request is answered in onRequest; this route only exists so Fastify has one.
  app.all('*', async (_req, reply) => reply)

  app.addHook('onResponse', async (request, reply) => {
    const ctx = request.mg
    if (ctx === null) return
    const ms = Number((process.hrtime.bigint() - ctx.startHr) / 1000000n)
    opts.accessLog.write(accessLogRecord(ctx, reply.statusCode, ms))
  })

  return app
}

function sendError (reply: FastifyReply, ctx: AccessLogContext, e: ErrorSpec): FastifyReply {
  ctx.responseFlags = e.flag
  ctx.bytesSent = Buffer.byteLength(e.body)
  reply.code(e.status)
  if (e.body !== '') reply.header('content-type', 'text/plain')
  reply.send(e.body)
  return reply
}

/** Map an undici/socket error code to Envoy's status and flag. */
function upstreamErrorSpec (code: string | undefined): ErrorSpec {
  switch (code) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return Errors.UpstreamConnectFailure
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return Errors.UpstreamTimeout
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return Errors.UpstreamReset
    default:
      return Errors.UpstreamProtocolError
  }
}

/** W3C traceparent or B3 trace id, else '-'. */
function traceIdOf (h: IncomingMessage['headers']): string {
  const tp = h.traceparent
  if (typeof tp === 'string' && tp.length >= 35) return tp.slice(3, 35)
  const b3 = h['x-b3-traceid']
  return typeof b3 === 'string' && b3 !== '' ? b3 : '-'
}

/** Count bytes of a stream of unknown length for the access log, passing data through. */
function countingStream (src: NodeJS.ReadableStream, ctx: AccessLogContext, dir: 'received' | 'sent' = 'received'): Transform {
  const t = new Transform({
    transform (chunk: Buffer, _enc, cb) {
      if (dir === 'received') ctx.bytesReceived += chunk.length
      else ctx.bytesSent += chunk.length
      cb(null, chunk)
    }
  })
  src.on('error', err => t.destroy(err))
  return src.pipe(t)
}

/** Turn an absolute-form target into origin-form, moving its authority into Host. */
function absoluteFormToOrigin (req: IncomingMessage): string {
  const url = req.url ?? '/'
  if (url.startsWith('/')) return url
  const m = /^http:\/\/([^/?#]+)([^#]*)/i.exec(url)
  if (m === null) return url
  req.headers.host = m[1]
  const rest = m[2] === '' ? '/' : m[2].startsWith('/') ? m[2] : `/${m[2]}`
  req.url = rest
  return rest
}
