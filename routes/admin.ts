import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import type { RunningGateway } from '../plugins/gateway.js'
import { adminAudit, type AdminLogger } from './admin/audit.js'
import { adminAuth, adminToken } from './admin/auth.js'
import { adminBodyTypes } from './admin/body-type.js'
import { clusterRoutes } from './admin/clusters.js'
import { configRoutes } from './admin/config.js'
import { eventRoutes } from './admin/events.js'
import { adminErrors } from './admin/errors.js'
import { adminEtag } from './admin/etag.js'
import { explainRoutes } from './admin/explain.js'
import { healthRoutes } from './admin/health.js'
import { adminOpenapi } from './admin/openapi.js'
import { adminRateLimit } from './admin/rate-limit.js'
import { statsRoutes } from './admin/stats.js'
import { uiRoutes } from './admin/ui.js'
import { ChangeLog, adminChangeLog, uiDataRoutes } from './admin/ui-data.js'

export { adminHostCheck, parseHostHeader } from './admin/auth.js'
export { REDACTED, SECRET_NAME, redact } from './admin/redact.js'
export type { AdminLogger } from './admin/audit.js'
export type { Problem } from '../src/config/problem.js'

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

export interface RunningAdmin {
  app: FastifyInstance
  url: string
  /** The token in force (generated when none was given). */
  token: string
  generatedToken: boolean
  close: () => Promise<void>
}

/**
 * The admin server: its own Fastify instance (JSON parsing and auth never touch proxied
 * traffic), on 127.0.0.1:15000 by default, in the style of Envoy's admin interface and Kong's
 * admin API. Assembled here from the server-wide plugins of `routes/admin/` (error shape, Host
 * check and token, body types, audit, ETag, rate limit: in that order, the order their hooks
 * run in; then the OpenAPI document, which sees what each of them adds to a route) and the
 * route modules, which declare what they need in each route's `config`; then the dashboard
 * (`/ui`, `GET /events`, `GET /graph`, `GET /config/history`). Every route has
 * TypeBox request and response schemas; `GET /openapi.json` describes them.
 */
export async function startAdmin (opts: AdminOptions): Promise<RunningAdmin> {
  const host = opts.host ?? '127.0.0.1'
  const { token, generated } = adminToken(host, opts.token)
  const gw = opts.gateway
  const app = Fastify({ logger: false, bodyLimit: 8 * 1024 * 1024 })
  await app.register(adminErrors)
  await app.register(adminAuth, { token, bindHost: host, allowedHosts: opts.allowedHosts })
  await app.register(adminBodyTypes)
  await app.register(adminAudit, { gw, logger: opts.logger })
  await app.register(adminEtag, { gw })
  await app.register(adminRateLimit, { limit: opts.reloadLimit ?? 20, windowMs: opts.reloadWindowMs ?? 10_000 })
  const changes = new ChangeLog()
  await app.register(adminChangeLog, { gw, log: changes })
  await app.register(adminOpenapi)
  for (const routes of [healthRoutes, configRoutes, explainRoutes, clusterRoutes, statsRoutes, eventRoutes]) await app.register(routes, { gw })
  // The dashboard (docs/dashboard.md): its data routes, then its pages and login.
  await app.register(uiDataRoutes, { gw, log: changes })
  await app.register(uiRoutes, { gw })

  await app.listen({ host, port: opts.port ?? 15000 })
  const addr = app.server.address() as AddressInfo
  return { app, url: `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`, token, generatedToken: generated, close: () => app.close() }
}
