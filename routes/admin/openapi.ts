import type { RouteOptions } from 'fastify'
import { Type } from '@sinclair/typebox'
import { ErrorReply } from './schemas.js'
import { adminConfig, serverWide } from './shared.js'

/** What each status means on this API, as the OpenAPI document describes a response. */
const STATUS: Record<string, string> = {
  200: 'success',
  400: 'refused: a change that fails validation (with every problem), or a query or body that fails its schema',
  401: 'missing or wrong bearer token',
  403: 'Host not allowed (DNS-rebinding defence)',
  404: 'no such resource, cluster or endpoint',
  409: 'etcd mode: the configuration in etcd changed since the revision the change was based on (the current revision in the body and the ETag)',
  412: 'stale If-Match: the configuration changed since it was read',
  413: 'body over 8 MiB',
  415: 'body neither JSON nor YAML',
  429: 'too many configuration changes',
  500: 'internal error',
  503: 'not ready (draining)'
}

const Header = (description: string): Record<string, unknown> => ({ description, schema: { type: 'string' } })
/** Headers that go with a status whichever route answers it. */
const HEADERS: Record<string, Record<string, unknown>> = {
  401: { 'WWW-Authenticate': Header('Bearer realm="meshgate-admin", with error="invalid_token" for a wrong token') },
  409: { ETag: Header('the current etcd revision') },
  412: { ETag: Header('the running generation (the etcd revision in etcd mode)') },
  429: { 'Retry-After': Header('seconds until the window has room again') }
}

/** A copy of a schema with the shared error shape replaced by a reference to its component. */
function withRefs (value: unknown): unknown {
  if (value === ErrorReply) return { $ref: '#/components/schemas/Error' }
  if (Array.isArray(value)) return value.map(withRefs)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withRefs(v)]))
}

/** A response declared for all media types (a schema) or per media type (`{ content }`). */
function content (declared: Record<string, unknown>): Record<string, unknown> {
  const perType = declared.content as Record<string, { schema: unknown }> | undefined
  if (perType !== undefined && declared.type === undefined && declared.anyOf === undefined) {
    return Object.fromEntries(Object.entries(perType).map(([type, c]) => [type, { schema: withRefs(c.schema) }]))
  }
  return { 'application/json': { schema: withRefs(declared) } }
}

/** One operation of the document, from a route's schemas and admin `config`. */
function operation (r: RouteOptions): Record<string, unknown> {
  const cfg = adminConfig(r.config)
  const schema = (r.schema ?? {}) as Record<string, unknown>
  const params: unknown[] = []
  const p = schema.params as { properties?: Record<string, unknown> } | undefined
  for (const [name, s] of Object.entries(p?.properties ?? {})) params.push({ name, in: 'path', required: true, schema: s })
  const q = schema.querystring as { properties?: Record<string, unknown>; required?: string[] } | undefined
  for (const [name, s] of Object.entries(q?.properties ?? {})) params.push({ name, in: 'query', required: q?.required?.includes(name) ?? false, schema: s })
  const responses = Object.fromEntries(Object.entries((schema.response ?? {}) as Record<string, Record<string, unknown>>).map(([code, declared]) => {
    const headers = code.startsWith('2') && (cfg.etag === true || cfg.change === true) ? { ETag: Header('the running generation, for If-Match') } : HEADERS[code]
    return [code, { description: STATUS[code] ?? code, ...(headers !== undefined ? { headers } : {}), content: content(declared) }]
  }))
  return {
    // The probes are public (no token, any Host): an empty security requirement says so.
    security: cfg.public === true ? [] : [{ bearer: [] }],
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(cfg.requestBody !== undefined ? { requestBody: { content: Object.fromEntries(Object.entries(cfg.requestBody).map(([t, s]) => [t, { schema: s }])) } } : {}),
    responses
  }
}

/**
 * `GET /openapi.json`: an OpenAPI 3.1 document of every route, built from the same TypeBox
 * schemas the server validates requests with and serializes answers with, including the
 * statuses the server-wide plugins answer for a route (401, 403, 412, 415, 429...). Registered
 * after those plugins (its own route gets their answers too) and before the route modules.
 */
export const adminOpenapi = serverWide('meshgate-admin-openapi', async app => {
  const routes: RouteOptions[] = []
  // The route objects are kept and read when the document is asked for: plugins registered
  // after this one still add their responses to them.
  // HEAD routes and the dashboard's pages (`schema.hide`) are not operations of the API.
  app.addHook('onRoute', r => {
    if (!(Array.isArray(r.method) ? r.method : [r.method]).includes('HEAD') && (r.schema as { hide?: boolean } | undefined)?.hide !== true) routes.push(r)
  })
  const document = (): Record<string, unknown> => {
    const paths: Record<string, Record<string, unknown>> = {}
    for (const r of routes) {
      const url = r.url.replace(/:([A-Za-z]+)/g, '{$1}')
      for (const m of [r.method].flat()) paths[url] = { ...paths[url], [m.toLowerCase()]: operation(r) }
    }
    return {
      openapi: '3.1.0',
      info: { title: 'meshgate admin API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } }, schemas: { Error: ErrorReply } },
      paths
    }
  }
  app.get('/openapi.json', { schema: { response: { 200: Type.Object({ openapi: Type.String() }, { additionalProperties: true, description: 'OpenAPI 3.1' }) } } }, async () => document())
})
