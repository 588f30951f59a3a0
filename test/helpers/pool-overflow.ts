// A connection pool driven to overflow through the ingress: an upstream that holds every answer
// until released, two requests that take the pool's room, and a third that overflows.
import type { InlineGateway, Teardown } from './gateway.js'
import { gatewayFor } from './gateway.js'
import { rawRequest, type SimpleResponse } from './raw-http.js'
import { upstreamFor } from './upstream.js'
import { sleep } from './wait.js'
import { destinationRule, gatewayApp, routeTo } from './yaml.js'

/**
 * meshgate routing every host to `app`, whose DestinationRule has `connectionPool: <pool>` (YAML
 * that admits two requests, one on the connection and one pending), and whose one endpoint holds
 * its answers. `/a` and `/b` are sent and, once the upstream holds `/a`, `/c`: its response is
 * `third`. `admitted()` releases the held answers until `/a` and `/b` complete and returns them.
 */
export async function overflowThird (t: Teardown, pool: string): Promise<{ gw: InlineGateway; third: SimpleResponse; admitted: () => Promise<SimpleResponse[]> }> {
  const hold: Array<() => void> = []
  const up = await upstreamFor(t, 'v1', (_req, res) => { hold.push(() => { res.writeHead(200); res.end('ok') }) })
  const gw = await gatewayFor(t, gatewayApp(routeTo(), { v1: up.port }, destinationRule('app', `  trafficPolicy:\n    connectionPool: ${pool}\n`)))
  const first = rawRequest(gw.ingress, '/a')
  const second = rawRequest(gw.ingress, '/b')
  const start = Date.now()
  while (hold.length < 1 && Date.now() - start < 5000) await sleep(10)
  const third = await rawRequest(gw.ingress, '/c')
  const admitted = async (): Promise<SimpleResponse[]> => {
    let settled = false
    const both = Promise.all([first, second])
    void both.finally(() => { settled = true })
    while (!settled && Date.now() - start < 10_000) {
      for (const f of hold.splice(0)) f()
      await sleep(10)
    }
    return both
  }
  return { gw, third, admitted }
}
