// Shared fixture for the request-path hardening tests (docs/testing.md#hardening-tables, A–D): the path-confusion
// routes of table B (`/public/` → pub, `/admin` → adm, anything else 404 NR) on a Gateway
// listener and the mesh listener, upstreams that count every byte they receive on any
// connection, and a raw TCP client (framing tests must not go through a client that fixes bytes).
import type { IncomingMessage, ServerResponse } from 'node:http'
import { connect, type Socket } from 'node:net'
import { serviceEntry, startInlineGateway, startUpstream, type Upstream } from '../helpers/upstream.js'
import type { GatewayOptions } from '../../plugins/gateway.js'

/** An upstream that also counts the bytes it read on every connection (closed ones included). */
export interface CountingUpstream extends Upstream {
  bytes: () => number
  connections: () => number
  open: () => number
}

export async function countingUpstream (name: string, handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<CountingUpstream> {
  const up = await startUpstream(name, handler)
  const sockets = new Set<Socket>()
  let closedBytes = 0
  let count = 0
  up.server.on('connection', (s: Socket) => {
    count++
    sockets.add(s)
    s.once('close', () => { closedBytes += s.bytesRead; sockets.delete(s) })
  })
  return Object.assign(up, {
    bytes: () => closedBytes + [...sockets].reduce((n, s) => n + s.bytesRead, 0),
    connections: () => count,
    open: () => sockets.size
  })
}

export const HOST = 'app.example.com'

/** Table B routes on a Gateway (port 8080) and on the mesh (Host `app`). */
export function pathYaml (pubPort: number, admPort: number): string {
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  servers:
  - port: { number: 8080, name: http, protocol: HTTP }
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: app }
spec:
  hosts: [${HOST}, app]
  gateways: [gw, mesh]
  http:
  - name: pub
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
---
${serviceEntry('pub', { v1: pubPort })}
---
${serviceEntry('adm', { v1: admPort })}`
}

export type PathGateway = Awaited<ReturnType<typeof startInlineGateway>> & { pub: CountingUpstream; adm: CountingUpstream; upstreamBytes: () => number }

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

export interface RawResult {
  /** Everything the gateway sent, latin1. */
  data: string
  /** The gateway closed the connection (FIN or reset) before `waitMs` ran out. */
  closed: boolean
  /** Status codes of every response found in `data`, in order. */
  statuses: number[]
}

/**
 * Send raw bytes on a fresh TCP connection and collect what comes back until the gateway
 * closes the connection or `waitMs` passes. `chunks` are written `gapMs` apart.
 */
export function rawExchange (base: string, chunks: string | Buffer | Array<string | Buffer>, opts: { waitMs?: number; gapMs?: number } = {}): Promise<RawResult> {
  const u = new URL(base)
  const list = Array.isArray(chunks) ? chunks : [chunks]
  return new Promise((resolve, reject) => {
    const sock = connect({ host: u.hostname, port: Number(u.port) })
    let data = ''
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      sock.destroy()
      const statuses = [...data.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map(m => Number(m[1]))
      resolve({ data, closed, statuses })
    }
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 3000)
    sock.on('data', d => { data += d.toString('latin1') })
    sock.on('end', () => finish(true))
    sock.on('close', () => finish(true))
    sock.on('error', err => { if ((err as { code?: string }).code === 'ECONNRESET') finish(true); else if (!done) { done = true; clearTimeout(timer); reject(err) } })
    sock.once('connect', async () => {
      for (let i = 0; i < list.length; i++) {
        if (i > 0 && (opts.gapMs ?? 0) > 0) await new Promise(resolve => setTimeout(resolve, opts.gapMs))
        if (sock.destroyed) return
        sock.write(list[i])
      }
    })
  })
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
