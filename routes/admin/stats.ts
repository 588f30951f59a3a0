import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { AdminRouteOptions } from './shared.js'

/** The Prometheus text exposition, declared by media type (it is not JSON). */
const PrometheusText = Type.String({ description: 'Prometheus text exposition format' })

/** `GET /stats/prometheus`: every metric of the gateway, as Envoy's admin endpoint of that name serves them. */
export const statsRoutes: FastifyPluginAsync<AdminRouteOptions> = async (app, { gw }) => {
  app.get('/stats/prometheus', { schema: { response: { 200: { content: { 'text/plain': { schema: PrometheusText } } } } } }, async (_req, reply) => {
    reply.header('content-type', gw.metrics.contentType)
    return await gw.metrics.text()
  })
}
