import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startGateway, type GatewayOptions, type RunningGateway } from '../../plugins/gateway.js'

export interface SeenRequest {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
}

export interface Upstream {
  name: string
  port: number
  server: Server
  seen: SeenRequest[]
  close: () => Promise<void>
}

/**
 * A real HTTP upstream on 127.0.0.1, port 0. By default it answers 200 with JSON
 * `{ upstream, method, url, headers, body }` describing what it received.
 */
export async function startUpstream (
  name: string,
  handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void
): Promise<Upstream> {
  const seen: SeenRequest[] = []
  const server = createServer((req, res) => {
    if (handler !== undefined && req.headers['x-test-stream'] !== undefined) {
      handler(req, res, '')
      return
    }
    const chunks: Buffer[] = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      if (handler !== undefined) { handler(req, res, body); return }
      const out = JSON.stringify({ upstream: name, method: req.method, url: req.url, headers: req.headers, body })
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name })
      res.end(out)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    name,
    port,
    server,
    seen,
    close: () => new Promise(resolve => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

/** A ServiceEntry registering endpoints (`{ version: port }`) for a host on loopback. */
export function serviceEntry (host: string, endpoints: Record<string, number>, opts: { servicePort?: number; namespace?: string } = {}): string {
  const eps = Object.entries(endpoints).map(([version, port]) => `
  - address: 127.0.0.1
    ports:
      http: ${port}
    labels:
      app: ${host}
      version: ${version}`).join('')
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${host}
${opts.namespace !== undefined ? `  namespace: ${opts.namespace}\n` : ''}spec:
  hosts:
  - ${host}
  location: MESH_INTERNAL
  ports:
  - number: ${opts.servicePort ?? 9080}
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:${eps.length > 0 ? eps : ' []'}
`
}

/** Start meshgate on free ports with inline YAML; every access-log line is collected. */
export async function startInlineGateway (
  yaml: string,
  opts: Partial<GatewayOptions> & { gatewayPorts?: number[] } = {}
): Promise<RunningGateway & { logs: Array<Record<string, string>>; ingress: string; mesh: string }> {
  const logs: Array<Record<string, string>> = []
  const portMap: Record<number, number> = {}
  for (const p of opts.gatewayPorts ?? [8080]) portMap[p] = 0
  const gw = await startGateway({
    config: { inputs: [{ file: 'inline.yaml', text: yaml }] },
    host: '127.0.0.1',
    meshPort: 0,
    portMap,
    accessLog: line => logs.push(JSON.parse(line)),
    ...opts
  })
  const ingress = gw.listeners.find(l => l.kind === 'gateway')?.url ?? ''
  const mesh = gw.listeners.find(l => l.kind === 'mesh')?.url ?? ''
  return Object.assign(gw, { logs, ingress, mesh })
}

export interface SimpleResponse {
  status: number
  headers: IncomingMessage['headers']
  body: string
}

/**
 * One HTTP/1.1 request with full control over the target and headers (fetch would normalise
 * the path and forbid Host). A fresh connection each time.
 */
export function rawRequest (
  base: string,
  target: string,
  opts: { method?: string; headers?: Record<string, string | string[]>; body?: string | Buffer } = {}
): Promise<SimpleResponse> {
  const u = new URL(base)
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: u.hostname,
      port: Number(u.port),
      method: opts.method ?? 'GET',
      path: target,
      headers: opts.headers,
      agent: false
    }, res => {
      const chunks: Buffer[] = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    if (opts.body !== undefined) req.end(opts.body)
    else req.end()
  })
}

/** Wait until the access log has `n` lines (they are written when the response finishes). */
export async function waitForLogs (logs: unknown[], n: number, timeoutMs = 2000): Promise<void> {
  const start = Date.now()
  while (logs.length < n) {
    if (Date.now() - start > timeoutMs) throw new Error(`expected ${n} access-log lines, got ${logs.length}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
