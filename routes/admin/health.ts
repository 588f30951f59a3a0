import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { AdminRouteOptions } from './shared.js'

const Ready = Type.Object({ ready: Type.Boolean(), reason: Type.Optional(Type.String()) })
const Live = Type.Object({ live: Type.Boolean() })

/**
 * The probes: `GET /ready` (200 while the gateway takes traffic, 503 once it drains) and
 * `GET /live`. Public: container and Kubernetes probes send no token and address the pod by
 * its IP, and the answer reveals nothing but the state.
 */
export const healthRoutes: FastifyPluginAsync<AdminRouteOptions> = async (app, { gw }) => {
  app.get('/ready', { config: { public: true }, schema: { response: { 200: Ready, 503: Ready } } }, async (_req, reply) => {
    if (!gw.ready) return await reply.code(503).send({ ready: false, ...(gw.notReadyReason !== undefined ? { reason: gw.notReadyReason } : {}) })
    return { ready: true }
  })
  app.get('/live', { config: { public: true }, schema: { response: { 200: Live } } }, async () => ({ live: true }))
}
