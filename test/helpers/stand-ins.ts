// Talking to the Bookinfo stand-ins directly, without meshgate: `call` sends one request to a
// stand-in's port, and `fake` is a backend a stand-in calls, which records what it was sent.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { rawRequest, type SimpleResponse } from './raw-http.js'

/** A response, with the milliseconds from sending the request to the end of the body. */
export interface TimedResponse extends SimpleResponse { ms: number }

/** One request to 127.0.0.1:`port` on a fresh connection. */
export async function call (port: number, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<TimedResponse> {
  const t0 = Date.now()
  const res = await rawRequest(`http://127.0.0.1:${port}`, path, opts)
  return { ...res, ms: Date.now() - t0 }
}

export interface Seen { method: string; url: string; headers: IncomingHttpHeaders }
export interface Fake { port: number; seen: Seen[]; close: () => Promise<void> }

/**
 * A backend on 127.0.0.1, port 0, that records each request's head as it arrives (the body is
 * read and dropped) and lets `handler` answer; `n` counts the requests so far, this one included.
 */
export async function fake (handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<Fake> {
  const seen: Seen[] = []
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    req.resume()
    handler(req, res, seen.length)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () => new Promise<void>(resolve => { server.close(() => resolve()); server.closeAllConnections() })
  }
}

/** A JSON answer with only a lower-case `content-type` header, as a test backend writes it. */
export function json (res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(body)
}
