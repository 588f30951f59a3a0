import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { AdminRouteOptions } from './shared.js'

/** In etcd mode also the revision running and the watch state (docs/scale-out.md). */
const Ready = Type.Object({ ready: Type.Boolean(), reason: Type.Optional(Type.String()), revision: Type.Optional(Type.Integer()), watch: Type.Optional(Type.String()) })
const Live = Type.Object({ live: Type.Boolean() })

/**
 * The probes: `GET /ready` (200 while the gateway takes traffic, 503 once it drains) and
 * `GET /live`. Public: container and Kubernetes probes send no token and address the pod by
 * its IP, and the answer reveals nothing but the state.
 */
export const healthRoutes: FastifyPluginAsync<AdminRouteOptions> = async (app, { gw }) => {
  app.get('/ready', { config: { public: true }, schema: { response: { 200: Ready, 503: Ready } } }, async (_req, reply) => {
    const sync = gw.config.syncStatus()
    const store = sync !== undefined ? { revision: sync.revision, watch: sync.watch } : {}
    if (!gw.ready) return await reply.code(503).send({ ready: false, ...(gw.notReadyReason !== undefined ? { reason: gw.notReadyReason } : {}), ...store })
    return { ready: true, ...store }
  })
  app.get('/live', { config: { public: true }, schema: { response: { 200: Live } } }, async () => ({ live: true }))
}
