import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { meshgateVersion } from '../../plugins/version.js'
import { allResources, configBody, runChange } from './change.js'
import { dumpResource } from './redact.js'
import { resourceRoutes } from './resources.js'
import { CONFIG_BODY, ConfigMode, DumpedResource, ErrorReply, GenerationReply, ProblemSchema } from './schemas.js'
import type { AdminRouteOptions } from './shared.js'

const ConfigReply = Type.Object({
  version: Type.String(),
  generation: Type.Integer(),
  loadedAt: Type.String(),
  source: Type.String(),
  paths: Type.Array(Type.String()),
  resources: Type.Array(Type.Object({ kind: Type.String(), namespace: Type.String(), name: Type.String(), file: Type.String(), line: Type.Integer() })),
  problems: Type.Array(ProblemSchema),
  history: Type.Array(Type.Object({ generation: Type.Integer(), loadedAt: Type.String(), source: Type.String() })),
  lastRejection: Type.Optional(Type.Object({ at: Type.String(), source: Type.String(), problems: Type.Array(ProblemSchema) })),
  sync: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
})
const DumpReply = Type.Object({ generation: Type.Integer(), resources: Type.Array(DumpedResource) })
const ValidateReply = Type.Object({ ok: Type.Boolean(), problems: Type.Array(ProblemSchema) })
const ModeQuery = Type.Object({ mode: Type.Optional(ConfigMode) })
type ModeQueryT = Static<typeof ModeQuery>

/** A change answers the new generation, or 400 with every problem that refused it. */
const CHANGE = { config: { change: true }, schema: { response: { 200: GenerationReply, 400: ErrorReply } } }

/**
 * The configuration as a whole: what runs (`GET /config`, `GET /config/dump`), changes of it
 * (`PUT /config`, reload from the files, rollback) and the dry run (`POST /config/validate`);
 * the per-resource routes are registered from here. Changes are all or nothing; the rate
 * limit, `If-Match` and the `ETag` are the server-wide plugins' work (`config.change`).
 */
export const configRoutes: FastifyPluginAsync<AdminRouteOptions> = async (app, { gw }) => {
  app.get('/config', { config: { etag: true }, schema: { response: { 200: ConfigReply } } }, async () => {
    const g = gw.config.current
    const rej = gw.config.lastRejection
    return {
      version: meshgateVersion(),
      generation: g.generation,
      loadedAt: new Date(g.loadedAt).toISOString(),
      source: g.source,
      paths: [...(gw.config.paths ?? [])],
      resources: allResources(g).map(r => ({ kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name, file: r.source.file, line: r.source.line })),
      problems: g.problems,
      history: gw.config.history.map(h => ({ generation: h.generation, loadedAt: new Date(h.loadedAt).toISOString(), source: h.source })),
      ...(rej !== undefined ? { lastRejection: { at: new Date(rej.at).toISOString(), source: rej.source, problems: rej.problems } } : {}),
      ...(gw.config.syncStatus() !== undefined ? { sync: { ...gw.config.syncStatus() } } : {})
    }
  })
  // The running resources in full, secrets redacted (see `redact`).
  app.get('/config/dump', { config: { etag: true }, schema: { response: { 200: DumpReply } } }, async () => {
    const g = gw.config.current
    return { generation: g.generation, resources: allResources(g).map(dumpResource) }
  })
  app.post('/config/reload', CHANGE, async (_req, reply) => await runChange(reply, () => gw.config.reload('files')))
  app.put<{ Querystring: ModeQueryT }>('/config', { ...CHANGE, config: { change: true, requestBody: CONFIG_BODY }, schema: { ...CHANGE.schema, querystring: ModeQuery } }, async (req, reply) => {
    const body = configBody(req.body)
    if (body === undefined) return await reply.code(400).send({ error: 'send YAML (Content-Type: application/yaml) or JSON {"yaml": "...", "mode": "replace"|"merge"}', problems: [] })
    return await runChange(reply, () => gw.config.applyText(body.yaml, body.mode ?? req.query.mode ?? 'replace'))
  })
  app.post<{ Querystring: ModeQueryT }>('/config/validate', {
    config: { requestBody: CONFIG_BODY },
    schema: { querystring: ModeQuery, response: { 200: ValidateReply, 400: Type.Union([ValidateReply, ErrorReply]) } }
  }, async (req, reply) => {
    const body = req.body === undefined || req.body === null || req.body === '' ? undefined : configBody(req.body)
    const r = await gw.config.validate(body?.yaml, body?.mode ?? req.query.mode ?? 'replace')
    return await reply.code(r.ok ? 200 : 400).send(r)
  })
  app.post('/config/rollback', CHANGE, async (req, reply) => await runChange(reply, () => gw.config.rollback(Number((req.query as { revision?: string }).revision) || undefined)))
  await app.register(resourceRoutes, { gw })
}
