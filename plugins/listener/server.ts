import { createServer as createHttp1Server, type IncomingMessage, type Server as Http1Server, type ServerResponse } from 'node:http'
import { createServer as createH2cServer, type Http2Session } from 'node:http2'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { ListenerSpec } from '../../src/compile/snapshot.js'
import { httpsServerOptions } from '../tls.js'
import type { RequestLimits } from './limits.js'

/**
 * The Node and Fastify server options of one listener: llhttp strict, header and connection
 * caps, timeouts, HTTP/2 by ALPN on HTTPS ports and h2c with prior knowledge on HTTP2/GRPC
 * ports and the mesh listener. Everything a listener needs from its server before the first request arrives.
 */

export interface ServerSetup {
  /** Fastify options for this listener's server. */
  options: Record<string, unknown>
  /** HTTP/2 sessions of the listener (GOAWAY at close, destroyed at the deadline). */
  sessions: Set<Http2Session>
  secure: boolean
  h2c: boolean
}

/** Server options for a listener whose spec is `initial` (TLS settings re-read through `currentTls`). */
export function serverSetup (initial: ListenerSpec | undefined, mesh: boolean, lim: RequestLimits, currentTls: () => ListenerSpec['tls']): ServerSetup {
  const secure = initial?.tls !== undefined && initial.tls.length > 0
  // Node's parser options, explicit so no leniency can slip in: llhttp strict, Host required,
  // duplicate headers not joined (duplicate Host is refused by intake), header bytes capped.
  const httpOptions = {
    maxHeaderSize: lim.maxHeaderBytes,
    insecureHTTPParser: false,
    requireHostHeader: true,
    joinDuplicateHeaders: false,
    // Node enforces headersTimeout/requestTimeout only when it checks (every 30 s by default).
    connectionsCheckingInterval: connectionsCheckingInterval(lim)
  }
  const h2Settings = { maxConcurrentStreams: lim.maxConcurrentStreams, maxHeaderListSize: lim.maxHeaderBytes }
  // Plain Gateway ports declared HTTP2 or GRPC take HTTP/1.1 and h2c with prior knowledge, and so
  // does the mesh listener, as a sidecar's outbound listener detects the protocol of each
  // connection: a workload's gRPC client speaks h2c to it.
  const h2c = !secure && (mesh || initial?.protocol === 'HTTP2' || initial?.protocol === 'GRPC')
  const sessions = new Set<Http2Session>()
  const transport = secure
    // HTTPS listeners speak HTTP/2 (ALPN h2) and HTTP/1.1; requests go upstream as HTTP/1.1.
    ? { http2: true, https: { ...httpsServerOptions(initial!.tls!, currentTls), allowHTTP1: true, settings: h2Settings, maxHeaderListPairs: lim.maxHeadersCount + 4 } }
    : h2c
      ? { serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => polyglotServer(handler, httpOptions, { settings: h2Settings,
        maxHeaderListPairs: lim.maxHeadersCount + 4 }, lim.headersTimeoutMs, sessions) }
      : { http: httpOptions }
  return {
    options: {
      ...transport,
      requestTimeout: lim.requestTimeoutMs,
      keepAliveTimeout: lim.keepAliveTimeoutMs,
      forceCloseConnections: 'idle',
      logger: false,
      return503OnClosing: true
    },
    sessions,
    secure,
    h2c
  }
}

function connectionsCheckingInterval (lim: RequestLimits): number {
  return Math.max(100, Math.min(1000, Math.floor(lim.headersTimeoutMs / 4)))
}

/**
 * Apply the limits to the server itself too: Fastify applies them only to plain HTTP/1 servers
 * it creates, and HTTPS listeners parse their HTTP/1.1 fallback with these properties. HTTPS
 * servers get the session tracking and closeAllConnections Node's HTTP/2 secure server lacks.
 */
export function applyServerLimits (app: FastifyInstance, setup: ServerSetup, lim: RequestLimits): void {
  const srv = app.server as unknown as Http1Server & { connectionsCheckingInterval?: number; maxHeaderSize?: number; requireHostHeader?: boolean;
    insecureHTTPParser?: boolean; joinDuplicateHeaders?: boolean }
  srv.maxHeaderSize = lim.maxHeaderBytes
  srv.requireHostHeader = true
  srv.insecureHTTPParser = false
  srv.joinDuplicateHeaders = false
  srv.headersTimeout = lim.headersTimeoutMs
  srv.requestTimeout = lim.requestTimeoutMs
  srv.keepAliveTimeout = lim.keepAliveTimeoutMs
  srv.maxHeadersCount = lim.maxHeadersCount + 1
  srv.maxConnections = lim.maxConnections
  srv.connectionsCheckingInterval = connectionsCheckingInterval(lim)
  if (setup.secure) {
    const tlsSockets = new Set<Socket>()
    srv.on('secureConnection', (s: Socket) => { tlsSockets.add(s); s.once('close', () => tlsSockets.delete(s)) })
    srv.on('session', (s: Http2Session) => { setup.sessions.add(s); s.once('close', () => setup.sessions.delete(s)) })
    if (typeof srv.closeAllConnections !== 'function') srv.closeAllConnections = () => { for (const s of tlsSockets) s.destroy() }
  }
  if (setup.h2c || setup.secure) {
    // HTTP/2 sessions are not connections Fastify tracks: end them gracefully (GOAWAY) on close.
    app.addHook('preClose', async () => { for (const s of setup.sessions) s.close() })
  }
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

/**
 * One port, two protocols: HTTP/1.1 and HTTP/2 cleartext with prior knowledge (gRPC clients).
 * The first bytes of each connection are read: the HTTP/2 connection preface hands the socket
 * to an http2 server, anything else to the HTTP/1.1 server; the bytes read are put back first.
 * A connection that sends nothing decisive is closed after `sniffTimeoutMs`, or as soon as the
 * client closes its side.
 */
function polyglotServer (
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  httpOptions: Record<string, unknown>,
  h2Options: Record<string, unknown>,
  sniffTimeoutMs: number,
  sessions: Set<Http2Session>
): Http1Server {
  const h1 = createHttp1Server(httpOptions, handler)
  const h2 = createH2cServer(h2Options, handler as unknown as Parameters<typeof createH2cServer>[1])
  h2.on('session', (s: Http2Session) => { sessions.add(s); s.once('close', () => sessions.delete(s)) })
  const h1Connection = h1.listeners('connection') as Array<(socket: Socket) => void>
  h1.removeAllListeners('connection')
  h1.on('connection', (socket: Socket) => {
    let seen: Buffer = Buffer.alloc(0)
    const timer = setTimeout(() => socket.destroy(), sniffTimeoutMs)
    const onError = (): void => { clearTimeout(timer); socket.destroy() }
    socket.once('error', onError)
    // The client closed before it sent anything decisive (nothing, or part of the preface):
    // there is no request to answer, and the socket must not wait for the sniff timeout.
    socket.once('end', onError)
    const onReadable = (): void => {
      let chunk: Buffer | null
      while ((chunk = socket.read() as Buffer | null) !== null) seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk])
      const n = Math.min(seen.length, H2_PREFACE.length)
      const isH2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n))
      if (isH2 && n < H2_PREFACE.length) return // a prefix of the preface so far: wait for more
      socket.off('readable', onReadable)
      socket.off('error', onError)
      socket.off('end', onError)
      clearTimeout(timer)
      socket.unshift(seen)
      if (isH2) h2.emit('connection', socket)
      else for (const l of h1Connection) l.call(h1, socket)
    }
    socket.on('readable', onReadable)
  })
  // The shutdown deadline destroys what is left: HTTP/2 sessions too, not only HTTP/1 sockets.
  const closeAll = h1.closeAllConnections.bind(h1)
  h1.closeAllConnections = () => { closeAll(); for (const s of sessions) s.destroy() }
  return h1
}
