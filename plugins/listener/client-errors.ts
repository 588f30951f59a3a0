import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { type AccessLogContext, newAccessLogContext } from '../access-log.js'

/**
 * Requests Node's parser refuses before any request object exists (malformed framing, header
 * overflow, slow headers): an Envoy-style local reply on the socket, an access-log line, and
 * the connection closed without reading further — the rest of the bytes may be a smuggled
 * request.
 */

/** Where a client error's access-log line goes. */
export type LogLine = (ctx: AccessLogContext, status: number, durationMs: number) => void

export function onClientError (err: Error & { code?: string }, socket: Socket, listener: string, log: LogLine, now: () => number): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const inFlight = (socket as unknown as { _httpMessage?: { headersSent: boolean } | null })._httpMessage
  // Bytes after a `Connection: close` request: never parsed; the response in flight finishes
  // and the connection closes after it.
  if (err.code === 'HPE_CLOSED_CONNECTION' && inFlight !== undefined && inFlight !== null) return
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400
  const ctx = newAccessLogContext()
  ctx.startTime = now()
  ctx.startHr = process.hrtime.bigint()
  ctx.protocol = 'HTTP/1.1'
  ctx.downstreamLocal = `${socket.localAddress}:${socket.localPort}`
  ctx.downstreamRemote = `${socket.remoteAddress}:${socket.remotePort}`
  ctx.listener = listener
  ctx.responseFlags = status === 408 ? '-' : 'DPE'
  ctx.upstreamTransportFailureReason = err.code ?? '-'
  const body = STATUS_CODES[status] ?? ''
  ctx.bytesSent = body.length
  if (socket.writable && (inFlight === undefined || inFlight === null || !inFlight.headersSent)) {
    socket.write(`HTTP/1.1 ${status} ${body}\r\ncontent-length: ${body.length}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${body}`)
  }
  socket.destroySoon()
  setTimeout(() => socket.destroy(), 1000).unref()
  log(ctx, status, 0)
}
