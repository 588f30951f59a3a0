// Real HTTP upstreams on 127.0.0.1, port 0: an echo server that records what it received, and
// one that also counts the bytes read on every connection.
//
// This module also re-exports the gateway, YAML and raw-HTTP helpers it used to hold, so that
// existing imports of `test/helpers/upstream.js` keep working.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Teardown } from './gateway.js'

export { startInlineGateway } from './gateway.js'
export { rawRequest, type SimpleResponse } from './raw-http.js'
export { waitForLogs } from './wait.js'
export { serviceEntry } from './yaml.js'

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

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, body: string) => void

/**
 * A real HTTP upstream on 127.0.0.1, port 0. By default it answers 200 with JSON
 * `{ upstream, method, url, headers, body }` describing what it received.
 */
export async function startUpstream (name: string, handler?: UpstreamHandler): Promise<Upstream> {
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

/** One `startUpstream` per name, each closed when the test ends. */
export async function upstreamsFor (t: Teardown, ...names: string[]): Promise<Upstream[]> {
  const ups: Upstream[] = []
  for (const name of names) ups.push(await upstreamFor(t, name))
  return ups
}

/** `startUpstream`, closed when the test ends. */
export async function upstreamFor (t: Teardown, name: string, handler?: UpstreamHandler): Promise<Upstream> {
  const up = await startUpstream(name, handler)
  t.teardown(() => up.close())
  return up
}

/** An upstream that also counts the bytes it read on every connection (closed ones included). */
export interface CountingUpstream extends Upstream {
  bytes: () => number
  connections: () => number
  open: () => number
}

export async function countingUpstream (name: string, handler?: UpstreamHandler): Promise<CountingUpstream> {
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

/** A loopback port with nothing listening (connection refused). */
export async function closedPort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise(resolve => s.close(resolve))
  return port
}
