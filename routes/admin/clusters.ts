import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { ClusterState } from '../../src/runtime/cluster-state.js'
import { Flag } from '../../src/upstream/endpoint.js'
import { ErrorReply, Nullable, Open } from './schemas.js'
import type { AdminRouteOptions } from './shared.js'

const FLAG_NAMES: Array<[number, string]> = Object.entries(Flag).map(([k, v]) => [v, k])

const ClusterStats = Open({ requests: Type.Integer(), overflows: Type.Integer(), noHealthy: Type.Integer(), ejections: Type.Integer(), retries: Type.Integer() })
/** What a cluster list entry and a cluster's details have in common. */
const clusterHead = {
  name: Type.String(),
  host: Type.String(),
  port: Type.Integer(),
  subset: Type.String({ description: 'empty for the service as a whole' }),
  destinationRule: Nullable(Type.String({ description: 'namespace/name' })),
  loadBalancer: Type.String(),
  active: Type.Integer({ description: 'requests in flight' }),
  stats: ClusterStats
}
const ClusterSummary = Type.Object({ ...clusterHead, endpoints: Type.Integer(), healthy: Type.Integer() })
const EndpointDetail = Type.Object({
  endpoint: Type.String({ description: 'address:port' }),
  address: Type.String(),
  port: Type.Integer(),
  labels: Type.Record(Type.String(), Type.String()),
  weight: Type.Number(),
  healthy: Type.Boolean(),
  flags: Type.Array(Type.String(), { description: `set health flags: ${Object.keys(Flag).join(', ')}` }),
  ejections: Type.Integer(),
  ejectedForMs: Type.Number(),
  breaker: Type.Object({ state: Type.String(), stats: Nullable(Open({ fires: Type.Integer(), failures: Type.Integer(), successes: Type.Integer(), rejects: Type.Integer() })) }),
  active: Type.Integer(),
  requests: Type.Integer(),
  failures: Type.Integer(),
  probe: Type.Object({ lastAt: Nullable(Type.String()), lastError: Nullable(Type.String()) })
})
const ClusterDetail = Type.Object({
  ...clusterHead,
  outlierDetection: Nullable(Open({}, 'effective outlier detection settings')),
  limits: Open({}, 'connection-pool limits; null is unlimited'),
  endpoints: Type.Array(EndpointDetail)
})
const ClusterParams = Type.Object({ name: Type.String({ description: 'e.g. outbound|9080|v1|reviews.default.svc.cluster.local' }) })
const EndpointParams = Type.Object({ name: ClusterParams.properties.name, endpoint: Type.String({ description: 'address:port' }) })
type EndpointParamsT = Static<typeof EndpointParams>

function describeCluster (c: ClusterState): Static<typeof ClusterDetail> {
  const now = Date.now()
  return {
    name: c.spec.name,
    host: c.spec.host,
    port: c.spec.port,
    subset: c.spec.subset,
    destinationRule: c.spec.destinationRule ?? null,
    loadBalancer: c.lb.kind,
    outlierDetection: c.outlier?.config ?? null,
    limits: Object.fromEntries(Object.entries(c.limits).map(([k, v]) => [k, Number.isFinite(v) ? v : null])),
    active: c.active,
    stats: c.stats,
    endpoints: c.endpoints.map(e => {
      const b = c.breakers.get(e.key)
      const flags = e.flags | e.host.flags
      return {
        endpoint: e.key,
        address: e.spec.address,
        port: e.spec.port,
        labels: e.spec.labels,
        weight: e.spec.weight,
        healthy: e.healthy,
        flags: FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, n]) => n),
        ejections: e.ejections,
        ejectedForMs: e.ejectedUntil > now ? e.ejectedUntil - now : 0,
        breaker: b === undefined ? { state: 'closed', stats: null } : { state: b.state, stats: b.stats() },
        active: e.active,
        requests: e.requests,
        failures: e.failures,
        probe: { lastAt: e.host.lastProbeAt === 0 ? null : new Date(e.host.lastProbeAt).toISOString(), lastError: e.host.lastProbeError || null }
      }
    })
  }
}

/**
 * The clusters and their endpoints as they run: `GET /clusters`, `GET /clusters/:name`, and
 * drain and restore of one endpoint. Drain describes the workload: it applies in every cluster
 * the endpoint belongs to, until it is restored.
 */
export const clusterRoutes: FastifyPluginAsync<AdminRouteOptions> = async (app, { gw }) => {
  app.get('/clusters', { schema: { response: { 200: Type.Object({ clusters: Type.Array(ClusterSummary) }) } } }, async () => ({
    clusters: [...gw.runtime.allClusters()].map(c => ({
      name: c.spec.name, host: c.spec.host, port: c.spec.port, subset: c.spec.subset, destinationRule: c.spec.destinationRule ?? null,
      endpoints: c.endpoints.length, healthy: c.healthy.length, loadBalancer: c.lb.kind, active: c.active, stats: c.stats
    }))
  }))
  app.get<{ Params: Static<typeof ClusterParams> }>('/clusters/:name', { schema: { params: ClusterParams, response: { 200: ClusterDetail, 404: ErrorReply } } }, async (req, reply) => {
    const c = gw.runtime.cluster(req.params.name)
    if (c === undefined) return await reply.code(404).send({ error: `no cluster "${req.params.name}"` })
    return describeCluster(c)
  })
  for (const [action, on] of [['drain', true], ['restore', false]] as const) {
    app.post<{ Params: EndpointParamsT }>(`/clusters/:name/endpoints/:endpoint/${action}`, { schema: { params: EndpointParams, response: { 200: ClusterDetail, 404: ErrorReply } } }, async (req, reply) => {
      const c = gw.runtime.cluster(req.params.name)
      const ep = c?.endpoints.find(e => e.key === req.params.endpoint)
      if (c === undefined || ep === undefined) return await reply.code(404).send({ error: `no endpoint "${req.params.endpoint}" in cluster "${req.params.name}"` })
      ep.host.set(Flag.Drained, on)
      return describeCluster(c)
    })
  }
}
