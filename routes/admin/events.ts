import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import { gatewayEvents } from '../../plugins/events.js'
import type { AdminRouteOptions } from './shared.js'

/** A comment line sent this often keeps proxies and idle timers from closing a quiet stream. */
const HEARTBEAT_MS = 15_000

const TrafficRow = {
  requests: Type.Integer(), errors: Type.Integer({ description: '5xx answers' }), rps: Type.Number(), errorRate: Type.Number(),
  p50: Type.Union([Type.Number(), Type.Null()], { description: 'ms, upper bound of the latency bucket' }), p99: Type.Union([Type.Number(), Type.Null()])
}

/**
 * The events of the stream, one schema per `event:` name; each `data:` line is one JSON
 * object. Described for the OpenAPI document (text/event-stream); the stream itself is
 * written by hand.
 */
export const EventSchemas = {
  hello: Type.Object({ generation: Type.Integer(), intervalMs: Type.Integer() }),
  traffic: Type.Object({
    at: Type.String(),
    intervalMs: Type.Integer(),
    routes: Type.Array(Type.Object({ listener: Type.String(), route: Type.String(), cluster: Type.String(), ...TrafficRow })),
    clusters: Type.Array(Type.Object({ cluster: Type.String(), ...TrafficRow })),
    fallbacks: Type.Array(Type.Object({
      listener: Type.String(), route: Type.String(), primary: Type.String(), fallback: Type.String(), result: Type.String(), finalCluster: Type.String(), count: Type.Integer()
    }))
  }),
  health: Type.Object({
    at: Type.String(),
    changes: Type.Array(Type.Object({
      cluster: Type.String(), endpoint: Type.String(), healthy: Type.Boolean(), flags: Type.Array(Type.String()), breaker: Type.String(), ejected: Type.Boolean(), drained: Type.Boolean()
    }))
  }),
  config: Type.Object({ at: Type.String(), generation: Type.Integer(), loadedAt: Type.String(), source: Type.String() }),
  rejection: Type.Object({ at: Type.String(), source: Type.String(), errors: Type.Integer() })
}

const EventStream = Type.String({
  description: 'Server-sent events (docs/dashboard.md#the-event-stream): `event: <name>` and one `data: <JSON>` line per event, a blank line after each. ' +
    'Names: hello (once), traffic (every second), health (endpoint changes), config (a new generation), rejection (a refused change); ' +
    'lines starting with ":" are heartbeats. The x-events property of this schema holds the JSON schema of each event\'s data.',
  'x-events': EventSchemas
})

/**
 * `GET /events`: the live stream of the gateway (plugins/events.ts) as server-sent events.
 * The token or the dashboard cookie, like every other route; the browser's `EventSource`
 * sends the cookie.
 */
export const eventRoutes: FastifyPluginAsync<AdminRouteOptions> = async (app, { gw }) => {
  const source = gatewayEvents({ runtime: () => gw.runtime, metrics: gw.metrics, config: gw.config })
  const open = new Set<() => void>()
  // Before the server closes: it waits for open connections, and a stream never ends by itself.
  app.addHook('preClose', async () => { for (const end of [...open]) end() })
  app.get('/events', { schema: { response: { 200: { content: { 'text/event-stream': { schema: EventStream } } } } } }, async (req, reply) => {
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      connection: 'keep-alive'
    })
    const send = (event: string, data: unknown): void => { res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`) }
    send('hello', { generation: gw.config.current.generation, intervalMs: source.intervalMs })
    const unsubscribe = source.subscribe(e => send(e.type, e.data))
    const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), HEARTBEAT_MS)
    heartbeat.unref()
    const end = (): void => {
      if (!open.delete(end)) return
      clearInterval(heartbeat)
      unsubscribe()
      res.end()
    }
    open.add(end)
    req.raw.on('close', end)
    res.on('close', end)
  })
}
