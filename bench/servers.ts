// The bench's Node processes, one per child: the upstream and the Node peers. Started by
// bench/run.ts as `node dist/bench/servers.js KIND [UPSTREAM_URL]`; each listens on 127.0.0.1
// port 0 and reports `{ port }` over IPC (or prints `port=N` when run by hand).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import { Pool } from 'undici'
import { importPeer } from './peers.js'

/** The upstream's answer: a fixed ~300-byte JSON document (Bookinfo-ish product details). */
export const UPSTREAM_BODY = Buffer.from(JSON.stringify({
  id: 0,
  author: 'William Shakespeare',
  year: 1595,
  type: 'paperback',
  pages: 200,
  publisher: 'PublisherA',
  language: 'English',
  'ISBN-10': '1234567890',
  'ISBN-13': '123-1234567890',
  reviews: [{ reviewer: 'Reviewer1', text: 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!' }],
  rating: { stars: 5, color: 'black' }
}))

export type ServerKind = 'upstream' | 'floor' | 'reply-from' | 'http-proxy' | 'fast-gateway'

const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host'])

async function start (kind: ServerKind, upstream: string): Promise<number> {
  if (kind === 'upstream') {
    const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      // Drain a request body if any, then the fixed answer.
      req.resume()
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': UPSTREAM_BODY.length })
      res.end(UPSTREAM_BODY)
    })
    server.keepAliveTimeout = 60_000
    return await listen(server)
  }
  if (kind === 'floor') {
    // The Node floor: node:http in front of an undici Pool, no routing, response streamed.
    const pool = new Pool(upstream, { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 })
    const server = createServer({ keepAliveTimeout: 60_000 }, (req: IncomingMessage, res: ServerResponse) => {
      const headers: Record<string, string | string[]> = {}
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v
      const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
      pool.request({ method: req.method as 'GET', path: req.url ?? '/', headers, body: hasBody ? req : null }).then(r => {
        const out: Record<string, string | string[]> = {}
        for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && !HOP.has(k)) out[k] = v
        res.writeHead(r.statusCode, out)
        r.body.pipe(res)
      }, () => { res.statusCode = 502; res.end() })
    })
    server.keepAliveTimeout = 60_000
    return await listen(server)
  }
  if (kind === 'reply-from' || kind === 'http-proxy') {
    const { default: Fastify } = await import('fastify')
    const app = Fastify({ logger: false, keepAliveTimeout: 60_000 })
    if (kind === 'reply-from') {
      const { default: replyFrom } = await importPeer('@fastify/reply-from')
      await app.register(replyFrom, { base: upstream })
      app.all('/*', (req, reply) => { (reply as unknown as { from: (url: string) => void }).from(req.url) })
    } else {
      const { default: proxy } = await importPeer('@fastify/http-proxy')
      await app.register(proxy, { upstream, prefix: '/' })
    }
    await app.listen({ host: '127.0.0.1', port: 0 })
    return (app.server.address() as AddressInfo).port
  }
  if (kind === 'fast-gateway') {
    const { default: gateway } = await importPeer('fast-gateway')
    // One route for the bench path; the prefix is stripped by fast-gateway, so it is put back.
    const server = gateway({ routes: [{ prefix: '/api', prefixRewrite: '/api', target: upstream }] })
    await server.start(0, '127.0.0.1')
    return (server.getServer().address() as AddressInfo).port
  }
  throw new Error(`unknown server kind ${kind as string}`)
}

function listen (server: ReturnType<typeof createServer>): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
  })
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const kind = process.argv[2] as ServerKind
  start(kind, process.argv[3] ?? '').then(port => {
    if (process.send !== undefined) process.send({ port })
    else process.stdout.write(`port=${port}\n`)
  }, err => { process.stderr.write(`${kind}: ${String(err?.stack ?? err)}\n`); process.exit(1) })
  process.on('SIGTERM', () => process.exit(0))
}
