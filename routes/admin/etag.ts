import type { RunningGateway } from '../../plugins/gateway.js'
import { ConflictReply, ErrorReply } from './schemas.js'
import { addResponses, adminConfig, serverWide } from './shared.js'

/**
 * Optimistic concurrency, as Kubernetes' resourceVersion and HTTP preconditions do it: the
 * running generation is the ETag of the configuration (in etcd mode its revision, which every
 * replica running it shares). Reads of it (`config: { etag: true }`)
 * and successful changes (`config: { change: true }`) answer with it; a change that carries
 * `If-Match` with an older one is refused with 412 and the current ETag instead of silently
 * overwriting what someone else applied. Without `If-Match` (or with `*`) a change is not guarded.
 */
export const adminEtag = serverWide<{ gw: RunningGateway }>('meshgate-admin-etag', async (app, o) => {
  // In etcd mode the revision: the same on every replica that runs it (docs/scale-out.md).
  const etag = (): string => `"${o.gw.config.current.revision ?? o.gw.config.current.generation}"`
  app.addHook('onRoute', route => {
    if (adminConfig(route.config).change === true) addResponses(route, { 409: ConflictReply, 412: ErrorReply })
  })
  app.addHook('preHandler', async (req, reply) => {
    const ifMatch = req.headers['if-match']
    if (adminConfig(req.routeOptions.config).change !== true || ifMatch === undefined || ifMatch === '*') return
    if (ifMatch.split(',').map(v => v.trim().replace(/^W\//, '')).includes(etag())) return
    return reply.code(412).header('etag', etag()).send({ error: `the configuration is at ${o.gw.config.current.revision !== undefined ? `revision ${o.gw.config.current.revision}` : `generation ${o.gw.config.current.generation}`}, not ${ifMatch}: read it again (GET /config) and retry`, problems: [] })
  })
  app.addHook('onSend', async (req, reply, payload) => {
    const c = adminConfig(req.routeOptions.config)
    if ((c.etag === true || c.change === true) && reply.statusCode < 300) reply.header('etag', etag())
    return payload
  })
})
