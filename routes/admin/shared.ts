import type { FastifyPluginAsync, FastifyPluginOptions, RouteOptions } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import type { RunningGateway } from '../../plugins/gateway.js'

/** What every route module of the admin API is registered with. */
export interface AdminRouteOptions {
  gw: RunningGateway
}

/**
 * The keys a route module may set in a route's `config`, read by the server-wide plugins
 * instead of each handler doing the work itself:
 * - `public`: no Host check and no token (the probes);
 * - `anonymous`: the Host check but no token (the dashboard's login and static files);
 * - `change`: a configuration change: rate limited, refused with 412 on a stale `If-Match`,
 *   answered with the new `ETag`;
 * - `etag`: a read of the configuration, answered with its `ETag`;
 * - `requestBody`: the media types and schemas the OpenAPI document lists for a body the
 *   handler parses itself (YAML or JSON).
 */
export interface AdminRouteConfig {
  public?: boolean
  anonymous?: boolean
  change?: boolean
  etag?: boolean
  requestBody?: Record<string, TSchema>
}

declare module 'fastify' {
  // Declaration merging: the admin keys become part of every route's typed `config`.
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface FastifyContextConfig extends AdminRouteConfig {}
}

/** The admin keys of a route's `config` (a 404 has none). */
export function adminConfig (config: unknown): AdminRouteConfig {
  return config !== null && typeof config === 'object' ? config as AdminRouteConfig : {}
}

/** A call that may change something: anything but GET and HEAD. */
export function isMutating (method: string | readonly string[]): boolean {
  return [method].flat().some(m => m !== 'GET' && m !== 'HEAD')
}

/**
 * A plugin whose hooks, handlers and parsers apply to the whole admin server rather than to
 * its own encapsulation context (what the `fastify-plugin` package does, without the dependency).
 */
export function serverWide<T extends FastifyPluginOptions> (name: string, plugin: FastifyPluginAsync<T>): FastifyPluginAsync<T> {
  return Object.assign(plugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: name })
}

/**
 * Adds response schemas to a route from an `onRoute` hook, for the statuses a plugin answers
 * on its behalf (401 from the auth plugin, 429 from the rate limit...). A status the route
 * declares itself is kept; the route's schema object is replaced, never mutated, since route
 * modules may share schema maps.
 */
export function addResponses (route: RouteOptions, responses: Record<number, TSchema>): void {
  const own = (route.schema?.response ?? {}) as Record<string, unknown>
  const added = Object.entries(responses).filter(([code]) => !(code in own))
  if (added.length === 0) return
  route.schema = { ...route.schema, response: { ...own, ...Object.fromEntries(added) } }
}
