import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { Errors } from '../../src/errors.js'
import type { SnapshotStore } from '../../src/runtime/store.js'
import type { AccessLogContext } from '../access-log.js'
import { sendError, serverName } from '../reply/local.js'
import { onClientError } from './client-errors.js'
import { type ListenerPluginOptions, listenerPlugin } from './http.js'
import { openContext } from './intake.js'
import { type RequestLimits, resolveLimits } from './limits.js'
import { applyServerLimits, serverSetup } from './server.js'
import { type TokenVerifier, newSecurityStats } from './security.js'

/** A listener built without a verifier (tests) refuses every token it would have to check. */
const NO_VERIFIER: TokenVerifier = { verify: async () => ({ ok: false, reason: 'Jwt verification fails' }) }

export { DEFAULT_LIMITS, resolveLimits, type OverloadOptions, type RequestLimits, type UnderscoreHeadersAction } from './limits.js'

/** What a listener is built from: the plugin's options, with defaults for the shared parts. */
export interface ListenerOptions extends Pick<ListenerPluginOptions, 'kind' | 'configPort' | 'store' | 'runtime' | 'pools' | 'accessLog' | 'metrics'>,
  Partial<Pick<ListenerPluginOptions, 'counters' | 'drain' | 'random' | 'now' | 'verifier' | 'securityStats' | 'tracing'>> {
  /** Request limits, timeouts and normalization policy; unset fields take DEFAULT_LIMITS. */
  limits?: Partial<RequestLimits>
  /** Fastify server options merged in last (tests, special cases). */
  serverOptions?: Record<string, unknown>
}

/**
 * The Fastify instance of one listener (a Gateway port or the mesh): its server options, the
 * replies to requests the parser or router refuses, and the listener plugin registered on it.
 */
export async function createListener (opts: ListenerOptions): Promise<FastifyInstance> {
  const mesh = opts.kind === 'mesh'
  const now = opts.now ?? Date.now
  const lim = resolveLimits(opts.limits)
  const currentSpec = (): ReturnType<typeof specOf> => specOf(opts.store, mesh, opts.configPort)
  const initial = currentSpec()
  const setup = serverSetup(initial, mesh, lim, () => currentSpec()?.tls)
  const name = mesh ? 'mesh' : String(opts.configPort)
  const log = (ctx: AccessLogContext, status: number, ms: number): void => {
    opts.accessLog.log(ctx, status, ms)
    opts.metrics?.record(ctx, status, ms)
  }
  const app = Fastify({
    ...setup.options,
    // Parse errors, header overflow and timeouts: Envoy-style local reply, connection closed, logged.
    clientErrorHandler: (err: Error & { code?: string }, socket: Socket) => { onClientError(err, socket, name, log, now) },
    // Forward-proxy style requests (absolute-form, as HTTP_PROXY clients send them) carry the
    // authority in the target: RFC 9112 §3.2.2 says it replaces Host.
    rewriteUrl: mesh ? absoluteFormToOrigin : undefined,
    // Requests Fastify's router rejects (malformed URL) get Envoy's 400 and an access-log line.
    frameworkErrors: (_err: Error, request: FastifyRequest, reply: FastifyReply) => {
      reply.hijack()
      const ctx = openContext(request.raw, name, now)
      reply.raw.once('close', () => { log(ctx, reply.raw.statusCode, 0) })
      sendError(reply.raw, ctx, Errors.BadRequest, serverName(mesh))
    },
    ...opts.serverOptions
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance
  applyServerLimits(app, setup, lim)
  await app.register(listenerPlugin, {
    kind: opts.kind,
    configPort: opts.configPort,
    store: opts.store,
    runtime: opts.runtime,
    pools: opts.pools,
    accessLog: opts.accessLog,
    ...(opts.metrics !== undefined ? { metrics: opts.metrics } : {}),
    counters: opts.counters ?? { inFlight: 0 },
    drain: opts.drain ?? { on: false },
    sessions: setup.sessions,
    random: opts.random ?? Math.random,
    now,
    limits: lim,
    scheme: setup.secure ? 'https' : 'http',
    verifier: opts.verifier ?? NO_VERIFIER,
    securityStats: opts.securityStats ?? newSecurityStats(),
    ...(opts.tracing !== undefined ? { tracing: opts.tracing } : {})
  })
  return app
}

function specOf (store: SnapshotStore, mesh: boolean, port: number): ReturnType<SnapshotStore['current']['gateways']['find']> {
  return mesh ? store.current.mesh : store.current.gateways.find(l => l.port === port)
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
