import { ErrorReply } from './schemas.js'
import { addResponses, serverWide } from './shared.js'

/**
 * One JSON error shape for every answer that is not a success: `{ error, problems }`, with the
 * status of the failure. A request Fastify refuses (a query or body that fails its schema,
 * `?mode=upsert` for instance, a body over the limit) keeps its 4xx status in that shape, never
 * a serialization failure; anything else is a 500 that names nothing internal. Every route
 * declares 500, and 400 when it has a query or a body to refuse.
 */
export const adminErrors = serverWide('meshgate-admin-errors', async app => {
  app.addHook('onRoute', route => {
    const s = route.schema ?? {}
    addResponses(route, s.querystring !== undefined || s.body !== undefined ? { 400: ErrorReply, 500: ErrorReply } : { 500: ErrorReply })
  })
  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, _req, reply) => {
    const status = err.validation !== undefined ? 400 : err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    void reply.code(status).type('application/json').serializer(JSON.stringify).send({ error: status === 500 ? 'internal error' : err.message, problems: [] })
  })
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).type('application/json').send({ error: `no route ${req.method} ${req.url.split('?')[0]}`, problems: [] })
  })
})
