// Clients that send exactly what a test writes: `rawRequest` (one HTTP/1.1 request with any
// target and headers, a fresh connection each time; `appRequest` and `loggedRequest` are two
// common uses of it) and `rawExchange` (raw bytes over TCP, for framing tests that must not go
// through a client that fixes them).
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import { waitForLogs } from './wait.js'

export interface SimpleResponse {
  status: number
  headers: IncomingMessage['headers']
  body: string
}

/**
 * One HTTP/1.1 request with full control over the target and headers (fetch would normalise
 * the path and forbid Host). A fresh connection each time, from `localAddress` when given (the
 * mesh listener tells callers apart by their address).
 */
export function rawRequest (
  base: string,
  target: string,
  opts: { method?: string; headers?: Record<string, string | string[]>; body?: string | Buffer; localAddress?: string } = {}
): Promise<SimpleResponse> {
  const u = new URL(base)
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: u.hostname,
      port: Number(u.port),
      method: opts.method ?? 'GET',
      path: target,
      headers: opts.headers,
      localAddress: opts.localAddress,
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

/**
 * A request to the mesh listener for the service `app`: Host `app` unless `opts.headers` names
 * another, `/x` unless another path is given.
 */
export function appRequest (gw: { mesh: string }, path = '/x', opts: Parameters<typeof rawRequest>[2] = {}): Promise<SimpleResponse> {
  return rawRequest(gw.mesh, path, { ...opts, headers: { host: 'app', ...opts.headers } })
}

/** A GET to the ingress listener, with the access-log line it was logged with. */
export async function loggedRequest (
  gw: { ingress: string; logs: Array<Record<string, string>> },
  path: string,
  headers: Record<string, string>
): Promise<SimpleResponse & { log: Record<string, string> }> {
  const before = gw.logs.length
  const res = await rawRequest(gw.ingress, path, { headers })
  await waitForLogs(gw.logs, before + 1, 5000)
  return { ...res, log: gw.logs[before] }
}

/** The request the upstream saw, as the helper upstream (`startUpstream`) echoes it. */
export function echoed (res: SimpleResponse): { upstream: string; url: string; headers: Record<string, string | string[]> } {
  return JSON.parse(res.body)
}

/** Which upstream answered (the helper upstream echoes its name), or the status when not 200. */
export async function who (base: string, target: string, headers?: Record<string, string>): Promise<string | number> {
  const res = await rawRequest(base, target, { headers })
  if (res.status !== 200) return res.status
  return echoed(res).upstream
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
