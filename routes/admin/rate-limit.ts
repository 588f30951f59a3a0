import { ErrorReply } from './schemas.js'
import { addResponses, adminConfig, serverWide } from './shared.js'

export interface RateLimitOptions {
  /** Changes allowed per window. */
  limit: number
  windowMs: number
}

/**
 * The rate limit on configuration changes (`config: { change: true }`), one sliding window for
 * the whole server: past `limit` changes in `windowMs`, 429 with `Retry-After`. Dry runs and
 * reads are not limited. A call refused before this hook (Host, token, body type, a stale
 * If-Match) takes no slot.
 */
export const adminRateLimit = serverWide<RateLimitOptions>('meshgate-admin-rate-limit', async (app, o) => {
  let stamps: number[] = []
  app.addHook('onRoute', route => {
    if (adminConfig(route.config).change === true) addResponses(route, { 429: ErrorReply })
  })
  app.addHook('preHandler', async (req, reply) => {
    if (adminConfig(req.routeOptions.config).change !== true) return
    const now = Date.now()
    stamps = stamps.filter(s => now - s < o.windowMs)
    if (stamps.length >= o.limit) {
      return reply.code(429).header('retry-after', String(Math.ceil(o.windowMs / 1000))).send({ error: `at most ${o.limit} configuration changes per ${o.windowMs / 1000} s` })
    }
    stamps.push(now)
  })
})
