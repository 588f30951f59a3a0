import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { describeListener, explain } from './describe.js'
import { ErrorReply, Nullable, Open } from './schemas.js'
import type { AdminRouteOptions } from './shared.js'

// Response schemas of the routing table. A match (header names and values) and a fault come
// from the configuration as written: declared open so that serialization keeps all of them.

const Target = {
  host: Type.String(),
  subset: Nullable(Type.String()),
  cluster: Nullable(Type.Union([Type.String(), Type.Record(Type.String(), Type.String())], { description: 'a cluster name, or one per port' }))
}
const RetriesSchema = Type.Object({ attempts: Type.Integer(), retryOn: Type.Array(Type.String()), perTryTimeoutMs: Type.Number() })
const RouteSchema = Type.Object({
  order: Type.Integer({ description: 'position in the virtual host: routes are tried in this order' }),
  name: Type.String(),
  virtualService: Type.String({ description: 'namespace/name' }),
  httpIndex: Type.Integer(),
  matchIndex: Type.Integer(),
  match: Nullable(Open({}, 'the HTTPMatchRequest as written, secret values redacted')),
  catchAll: Type.Boolean(),
  rewrite: Nullable(Type.Object({ uri: Nullable(Type.String()), authority: Nullable(Type.String()), uriRegexRewrite: Type.Boolean() })),
  timeoutMs: Nullable(Type.Number()),
  retries: Nullable(RetriesSchema),
  destinations: Type.Array(Type.Object({ ...Target, weight: Type.Number(), fallback: Nullable(Type.Object(Target)) }))
})
const RoutesReply = Type.Object({
  generation: Type.Integer(),
  listeners: Type.Array(Type.Object({
    name: Type.String(),
    kind: Type.Union([Type.Literal('gateway'), Type.Literal('mesh')]),
    port: Type.Integer(),
    gateways: Type.Array(Type.String()),
    virtualHosts: Type.Array(Type.Object({ name: Type.String(), domains: Type.Array(Type.String()), routes: Type.Array(RouteSchema) }))
  }))
})

const Results = ['bad request', 'redirect', 'no virtual host', 'no route matched', 'local reply', 'no cluster', 'error', 'forward'] as const
/** One shape for every outcome; which fields are present depends on `result`. */
const ExplainReply = Type.Object({
  listener: Type.String(),
  result: Type.Union(Results.map(r => Type.Literal(r))),
  status: Type.Optional(Type.Integer({ description: 'the status the gateway would answer itself (absent for forward)' })),
  flag: Type.Optional(Type.String({ description: 'Envoy response flag, "-" for none' })),
  location: Type.Optional(Type.String()),
  virtualHost: Type.Optional(Nullable(Type.String())),
  route: Type.Optional(Nullable(RouteSchema)),
  fault: Type.Optional(Nullable(Open({}, 'the route\'s fault injection'))),
  headers: Type.Optional(Type.Record(Type.String(), Type.String())),
  rewrite: Type.Optional(Type.Object({ path: Type.String(), authority: Type.String() })),
  timeoutMs: Type.Optional(Type.Number()),
  retries: Type.Optional(RetriesSchema),
  mirrors: Type.Optional(Type.Array(Type.Object({ ...Target, fraction: Type.Number() }))),
  destinations: Type.Optional(Type.Array(Type.Object({
    ...Target,
    weight: Type.Number(),
    share: Type.Number(),
    cluster: Type.String(),
    healthyEndpoints: Type.Integer(),
    endpoints: Type.Integer(),
    decision: Type.Object({
      serves: Nullable(Type.String()),
      status: Type.Optional(Type.Integer()),
      flag: Type.Optional(Type.String()),
      fallbackPath: Nullable(Type.String()),
      fallbackResult: Nullable(Type.String())
    })
  })))
})
const ExplainQuery = Type.Object({
  listener: Type.Optional(Type.String({ description: 'mesh, or a Gateway server port such as 8080; default the first gateway listener' })),
  method: Type.Optional(Type.String({ default: 'GET' })),
  authority: Type.String({ description: 'Host header, e.g. reviews:9080' }),
  path: Type.Optional(Type.String({ default: '/' })),
  header: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())], { description: 'name:value, repeatable' }))
})

/**
 * The compiled routing table (`GET /routes`: per listener, routes in match order with their
 * VirtualService and indexes) and `GET /routes/explain`, which runs the routing decision for a
 * described request without sending it.
 */
export const explainRoutes: FastifyPluginAsync<AdminRouteOptions> = async (app, { gw }) => {
  app.get('/routes', { schema: { response: { 200: RoutesReply } } }, async () => {
    const snap = gw.store.current
    return { generation: snap.generation, listeners: [...snap.gateways, snap.mesh].map(l => describeListener(l)) }
  })
  app.get<{ Querystring: Static<typeof ExplainQuery> }>('/routes/explain', { schema: { querystring: ExplainQuery, response: { 200: ExplainReply, 400: ErrorReply } } }, async (req, reply) => {
    const q = req.query
    const snap = gw.store.current
    const l = q.listener === 'mesh' ? snap.mesh : q.listener === undefined ? (snap.gateways[0] ?? snap.mesh) : snap.gateways.find(g => String(g.port) === q.listener)
    if (l === undefined) return await reply.code(400).send({ error: `no listener "${q.listener}"; listeners: mesh, ${snap.gateways.map(g => g.port).join(', ')}` })
    return explain(gw, l, q)
  })
}
