// The fixture of the reload-under-load tests: two upstreams `a` and `b`, subsets a and b of
// `app`, and meshgate serving them from `base.yaml` (subsets and endpoints) and `routes.yaml`
// (the route set under test), with its admin API to replace the routes through.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { startGateway, type RunningGateway } from '../../plugins/gateway.js'
import { startAdmin } from '../../routes/admin.js'
import type { Teardown } from './gateway.js'
import { startUpstream, type Upstream } from './upstream.js'
import { subsetService } from './yaml.js'

/**
 * An upstream's answer: 200 with `x-upstream: <name>` and the body `<name>:<request body length>`;
 * on /stream, 20 chunks of 16 KiB written one per event-loop turn.
 */
function answer (name: string) {
  return (req: IncomingMessage, res: ServerResponse, body: string): void => {
    if (req.url === '/stream') {
      res.writeHead(200, { 'x-upstream': name })
      let n = 0
      const tick = (): void => {
        if (n++ >= 20) { res.end(); return }
        res.write(Buffer.alloc(16 * 1024, name))
        setImmediate(tick)
      }
      tick()
      return
    }
    res.writeHead(200, { 'x-upstream': name, 'content-type': 'text/plain' })
    res.end(`${name}:${body.length}`)
  }
}

export interface RouteSetFixture {
  gw: RunningGateway
  admin: Awaited<ReturnType<typeof startAdmin>>
  /** The mesh listener. */
  mesh: URL
  a: Upstream
  b: Upstream
}

/** Start the fixture with `routes` as routes.yaml; everything is closed when the test ends. */
export async function routeSetFixture (t: Teardown, routes: string, token: string): Promise<RouteSetFixture> {
  const a = await startUpstream('a', answer('a'))
  const b = await startUpstream('b', answer('b'))
  const base = subsetService('app', { a: a.port, b: b.port })
  const gw = await startGateway({ config: { inputs: [{ file: 'base.yaml', text: base }, { file: 'routes.yaml', text: routes }] }, host: '127.0.0.1', meshPort: 0, accessLog: 'off' })
  const admin = await startAdmin({ gateway: gw, port: 0, token, reloadLimit: 10_000 })
  t.teardown(async () => { await admin.close(); await gw.close(); await a.close(); await b.close() })
  return { gw, admin, mesh: new URL(gw.listeners[0].url), a, b }
}
