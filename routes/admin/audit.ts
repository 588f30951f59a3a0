import type { RunningGateway } from '../../plugins/gateway.js'
import { authOutcome } from './auth.js'
import { isMutating, serverWide } from './shared.js'

/** The part of a pino logger the admin server uses. */
export interface AdminLogger {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
}

export interface AuditOptions {
  gw: RunningGateway
  /** Where the lines go; without one, nothing is written. */
  logger?: AdminLogger
}

/**
 * The audit log: one line for every changing call, whatever its outcome, and one for every
 * call the Host check or the token refused (at warn), reads included. Authorised reads write
 * nothing. A line never holds the token; a refused Host is named, cut to 256 characters.
 */
export const adminAudit = serverWide<AuditOptions>('meshgate-admin-audit', async (app, o) => {
  const log = o.logger
  if (log === undefined) return
  app.addHook('onResponse', async (req, reply) => {
    const outcome = authOutcome(req)
    if (!isMutating(req.method) && outcome !== 'missing' && outcome !== 'invalid' && outcome !== 'bad-host') return
    let generation: number | undefined
    try { generation = o.gw.config.current.generation } catch { generation = undefined }
    const entry = {
      audit: 'admin', method: req.method, url: req.url, status: reply.statusCode, remote: req.ip, auth: outcome, generation,
      ...(outcome === 'bad-host' ? { host: String(req.headers.host ?? '').slice(0, 256) } : {})
    }
    if (reply.statusCode === 401 || reply.statusCode === 403) log.warn(entry, 'admin call refused')
    else log.info(entry, 'admin call')
  })
})
