import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import type { Generation } from '../../plugins/config-manager.js'
import type { RunningGateway } from '../../plugins/gateway.js'
import { removeResource, singleResource } from '../../src/config/edit.js'

export interface ResourceRoutesOptions {
  gw: RunningGateway
  /** The admin API's change runner: validation problems → 400, a success → the new generation. */
  change: (reply: FastifyReply, fn: () => Promise<Generation>) => Promise<unknown>
  /** The change rate limit (true when the call was refused). */
  rateLimited: (reply: FastifyReply) => boolean
  /** Secret redaction for resources shown. */
  redact: (v: unknown) => unknown
  /** The YAML of a request body, as PUT /config takes it. */
  yamlText: (body: unknown) => string | undefined
}

interface Params { kind: string; namespace: string; name: string }

/**
 * One resource at a time, as kubectl get/apply/delete address them:
 * `/config/resources/<kind>/<namespace>/<name>`. A change goes through the same validation,
 * rate limit and If-Match guard as every other change, and is all or nothing.
 */
export const resourceRoutes: FastifyPluginAsync<ResourceRoutesOptions> = async (app, o) => {
  const find = (p: Params): Record<string, unknown> | undefined => {
    const s = o.gw.config.current.set
    type Named = Array<{ kind: string; metadata: { namespace: string; name: string } }>
    const all = [...s.gateways, ...s.virtualServices, ...s.destinationRules, ...s.serviceEntries, ...s.workloadEntries] as unknown as Named
    return all.find(r => r.kind.toLowerCase() === p.kind.toLowerCase() && r.metadata.namespace === p.namespace && r.metadata.name === p.name) as Record<string, unknown> | undefined
  }
  app.get<{ Params: Params }>('/config/resources/:kind/:namespace/:name', async (req, reply) => {
    const r = find(req.params)
    if (r === undefined) return await reply.code(404).send({ error: `no ${req.params.kind} ${req.params.namespace}/${req.params.name}`, problems: [] })
    const { source, locate: _locate, ...rest } = r as Record<string, unknown> & { source: { file: string; line: number } }
    return { ...(o.redact(rest) as object), source: { file: source.file, line: source.line } }
  })
  app.put<{ Params: Params }>('/config/resources/:kind/:namespace/:name', async (req, reply) => {
    if (o.rateLimited(reply)) return reply
    const text = o.yamlText(req.body)
    if (text === undefined) return await reply.code(400).send({ error: 'send the resource as YAML (Content-Type: application/yaml)', problems: [] })
    const key = singleResource(text)
    if (typeof key === 'string') return await reply.code(400).send({ error: key, problems: [] })
    const p = req.params
    if (key.kind.toLowerCase() !== p.kind.toLowerCase() || key.namespace !== p.namespace || key.name !== p.name) {
      return await reply.code(400).send({ error: `the body is ${key.kind} ${key.namespace}/${key.name}, the path names ${p.kind} ${p.namespace}/${p.name}`, problems: [] })
    }
    return await o.change(reply, () => o.gw.config.applyText(text, 'merge', `<${p.kind}/${p.namespace}/${p.name}>`))
  })
  app.delete<{ Params: Params }>('/config/resources/:kind/:namespace/:name', async (req, reply) => {
    if (o.rateLimited(reply)) return reply
    const next = removeResource(o.gw.config.current.inputs, req.params)
    if (next === undefined) return await reply.code(404).send({ error: `no ${req.params.kind} ${req.params.namespace}/${req.params.name}`, problems: [] })
    return await o.change(reply, () => o.gw.config.applyInputsAll(next, 'api'))
  })
}
