import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { removeResource, singleResource } from '../../src/config/edit.js'
import { allResources, configBody, runChange } from './change.js'
import { dumpResource } from './redact.js'
import { DumpedResource, ErrorReply, GenerationReply, RESOURCE_BODY } from './schemas.js'
import type { AdminRouteOptions } from './shared.js'

const Params = Type.Object({
  kind: Type.String({ description: 'as Istio spells it, e.g. VirtualService (any case)' }),
  namespace: Type.String(),
  name: Type.String()
})
type ParamsT = Static<typeof Params>
const PATH = '/config/resources/:kind/:namespace/:name'
/** A change of one resource: the new generation, 400 with its problems, 404 for an unknown one. */
const CHANGED = { 200: GenerationReply, 400: ErrorReply, 404: ErrorReply }

/**
 * One resource at a time, as kubectl get/apply/delete address them:
 * `/config/resources/<kind>/<namespace>/<name>`. A change goes through the same validation,
 * rate limit and If-Match guard as every other change, and is all or nothing.
 */
export const resourceRoutes: FastifyPluginAsync<AdminRouteOptions> = async (app, { gw }) => {
  const find = (p: ParamsT): unknown => allResources(gw.config.current).find(r =>
    r.kind.toLowerCase() === p.kind.toLowerCase() && r.metadata.namespace === p.namespace && r.metadata.name === p.name)
  const missing = (p: ParamsT): { error: string; problems: [] } => ({ error: `no ${p.kind} ${p.namespace}/${p.name}`, problems: [] })

  app.get<{ Params: ParamsT }>(PATH, { config: { etag: true }, schema: { params: Params, response: { 200: DumpedResource, 404: ErrorReply } } }, async (req, reply) => {
    const r = find(req.params)
    if (r === undefined) return await reply.code(404).send(missing(req.params))
    return dumpResource(r)
  })
  app.put<{ Params: ParamsT }>(PATH, { config: { change: true, requestBody: RESOURCE_BODY }, schema: { params: Params, response: CHANGED } }, async (req, reply) => {
    const text = configBody(req.body)?.yaml
    if (text === undefined) return await reply.code(400).send({ error: 'send the resource as YAML (Content-Type: application/yaml)', problems: [] })
    const key = singleResource(text)
    if (typeof key === 'string') return await reply.code(400).send({ error: key, problems: [] })
    const p = req.params
    if (key.kind.toLowerCase() !== p.kind.toLowerCase() || key.namespace !== p.namespace || key.name !== p.name) {
      return await reply.code(400).send({ error: `the body is ${key.kind} ${key.namespace}/${key.name}, the path names ${p.kind} ${p.namespace}/${p.name}`, problems: [] })
    }
    return await runChange(reply, () => gw.config.applyText(text, 'merge', `<${p.kind}/${p.namespace}/${p.name}>`))
  })
  app.delete<{ Params: ParamsT }>(PATH, { config: { change: true }, schema: { params: Params, response: CHANGED } }, async (req, reply) => {
    const next = removeResource(gw.config.current.inputs, req.params)
    if (next === undefined) return await reply.code(404).send(missing(req.params))
    return await runChange(reply, () => gw.config.applyInputsAll(next, 'api'))
  })
}
