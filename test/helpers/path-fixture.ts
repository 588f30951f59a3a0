// The request-path hardening fixture (docs/testing.md#hardening-tables, A–D): the path-confusion
// routes of table B (`/public/` → pub, `/admin` → adm, anything else 404 NR) on a Gateway
// listener and the mesh listener, with upstreams that count every byte they receive.
import type { GatewayOptions } from '../../plugins/gateway.js'
import { startInlineGateway, type InlineGateway } from './gateway.js'
import { countingUpstream, type CountingUpstream } from './upstream.js'
import { GATEWAY, serviceEntry, virtualService } from './yaml.js'

export const HOST = 'app.example.com'

/** Table B routes on a Gateway (port 8080) and on the mesh (Host `app`). */
export function pathYaml (pubPort: number, admPort: number): string {
  return `${GATEWAY}---
${virtualService(`  - name: pub
    match: [{ uri: { prefix: /public/ } }]
    headers:
      request:
        set: { x-fixture: pub }
    route:
    - destination: { host: pub }
  - name: adm
    match: [{ uri: { prefix: /admin } }]
    route:
    - destination: { host: adm }
  - name: api
    match: [{ uri: { prefix: /api } }]
    rewrite: { uri: /v1 }
    route:
    - destination: { host: pub }
`, { name: 'app', hosts: [HOST, 'app'], gateways: ['gw', 'mesh'] })}---
${serviceEntry('pub', { v1: pubPort })}
---
${serviceEntry('adm', { v1: admPort })}`
}

export type PathGateway = InlineGateway & { pub: CountingUpstream; adm: CountingUpstream; upstreamBytes: () => number }

/** The table B fixture with its two counting upstreams; `close()` stops everything. */
export async function startPathFixture (opts: Partial<GatewayOptions> = {}): Promise<PathGateway> {
  const pub = await countingUpstream('pub')
  const adm = await countingUpstream('adm')
  const gw = await startInlineGateway(pathYaml(pub.port, adm.port), { overload: false, ...opts })
  const close = gw.close
  return Object.assign(gw, {
    pub,
    adm,
    upstreamBytes: () => pub.bytes() + adm.bytes(),
    close: async (deadline?: number) => { await close(deadline); await pub.close(); await adm.close() }
  })
}
