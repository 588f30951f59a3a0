import { type ClientHttp2Stream, type IncomingHttpHeaders, type IncomingHttpStatusHeader, type OutgoingHttpHeaders, constants } from 'node:http2'
import type { Readable } from 'node:stream'
import type { H2ClusterPool, H2Session } from './h2-pool.js'
import type { ForwardTry, TryOwner, TryRequest } from './try.js'

/**
 * One forwarding try over HTTP/2 (`node:http2`), for clusters whose upstream protocol is h2c or
 * h2. It reports to the same owner as an HTTP/1.1 try (head, chunks, end, error) and, in addition,
 * the response trailers (`grpc-status`, `grpc-message`…) just before the end. Failures carry the
 * codes `classify` knows: a refused connection is ECONNREFUSED, a reset stream ECONNRESET (or
 * REFUSED_STREAM when the upstream refused it before processing), the idle timeout
 * UND_ERR_HEADERS_TIMEOUT / UND_ERR_BODY_TIMEOUT as undici's.
 */

/** Request headers HTTP/2 forbids (connection-specific) or carries as a pseudo-header. */
const NOT_H2 = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings'])

export class H2Try implements ForwardTry {
  settled = false
  aborted = false
  private stream: ClientHttp2Stream | undefined = undefined
  private session: H2Session | undefined = undefined
  private body: Readable | undefined = undefined
  private gotHead = false
  private trailers: IncomingHttpHeaders | undefined = undefined

  constructor (private readonly owner: TryOwner, private readonly pool: H2ClusterPool, private readonly idleTimeoutMs: number) {}

  start (req: TryRequest): void {
    const sep = req.origin.indexOf('://')
    const h: OutgoingHttpHeaders = {
      ':method': req.method,
      ':scheme': req.origin.slice(0, sep),
      ':authority': (req.headers.host as string | undefined) ?? req.origin.slice(sep + 3),
      ':path': req.path
    }
    const src = req.headers
    for (const k in src) if (!NOT_H2.has(k) && src[k] !== undefined) h[k] = src[k]
    // gRPC requires `te: trailers` from the client side of every hop (the only TE HTTP/2 allows).
    const ct = src['content-type']
    if (typeof ct === 'string' && ct.startsWith('application/grpc')) h.te = 'trailers'
    const session = this.pool.acquire(req.origin)
    this.session = session
    let stream: ClientHttp2Stream
    try {
      stream = session.session.request(h, { endStream: req.body === null })
    } catch (err) {
      // A header value HTTP/2 refuses (CR, LF, NUL), or a session already closing.
      this.pool.release(session)
      this.session = undefined
      queueMicrotask(() => this.fail(err as Error))
      return
    }
    this.stream = stream
    stream.on('response', this.onResponse)
    stream.on('data', this.onData)
    stream.once('trailers', this.onTrailers)
    stream.once('end', this.onEnd)
    stream.once('error', this.onError)
    stream.once('close', this.onClose)
    stream.setTimeout(this.idleTimeoutMs, this.onIdle)
    const body = req.body
    if (body === null) return
    if (Buffer.isBuffer(body)) { stream.end(body); return }
    this.body = body
    body.pipe(stream)
  }

  abort (reason: Error): void {
    if (this.settled || this.aborted) return
    this.aborted = true
    this.stopBody()
    if (this.stream !== undefined && !this.stream.destroyed) this.stream.close(constants.NGHTTP2_CANCEL)
    this.fail(reason)
  }

  resume (): void {
    this.stream?.resume()
  }

  private readonly onResponse = (headers: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number): void => {
    if (this.settled || this.aborted) return
    this.gotHead = true
    const raw: Buffer[] = []
    for (const name in headers) {
      if (name.charCodeAt(0) === 58 /* : */) continue
      const v = headers[name]
      if (v === undefined) continue
      if (Array.isArray(v)) for (const one of v) raw.push(Buffer.from(name, 'latin1'), Buffer.from(one, 'latin1'))
      else raw.push(Buffer.from(name, 'latin1'), Buffer.from(String(v), 'latin1'))
    }
    const endStream = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0
    if (!this.owner.onTryHeaders(this, Number(headers[':status']), raw, endStream)) this.stream?.pause()
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.settled || this.aborted) return
    if (!this.owner.onTryData(this, chunk)) this.stream?.pause()
  }

  private readonly onTrailers = (trailers: IncomingHttpHeaders): void => {
    this.trailers = trailers
  }

  private readonly onEnd = (): void => {
    if (this.settled || this.aborted) return
    if (!this.gotHead) return // a stream that ends without a response head fails on close
    this.settled = true
    if (this.trailers !== undefined) this.owner.onTryTrailers(this, this.trailers)
    this.owner.onTryEnd(this)
  }

  private readonly onError = (err: Error): void => {
    // A session that failed cancels its streams with ERR_HTTP2_STREAM_CANCEL; the cause says why.
    const e = err as Error & { code?: string; cause?: Error }
    if (e.code === 'ERR_HTTP2_STREAM_CANCEL' && e.cause !== undefined) return this.fail(e.cause)
    // A stream the upstream reset with an error code: REFUSED_STREAM means it never processed it.
    if (e.code === 'ERR_HTTP2_STREAM_ERROR' && this.stream?.rstCode === constants.NGHTTP2_REFUSED_STREAM) return this.fail(Object.assign(err, { code: 'REFUSED_STREAM' }))
    this.fail(err)
  }

  private readonly onClose = (): void => {
    if (this.session !== undefined) { this.pool.release(this.session); this.session = undefined }
    this.stopBody()
    if (this.settled) return
    const code = this.stream?.rstCode
    const refused = code === constants.NGHTTP2_REFUSED_STREAM
    this.fail(Object.assign(new Error(`HTTP/2 stream closed${code !== undefined ? ` (RST_STREAM ${code})` : ''}`), { code: refused ? 'REFUSED_STREAM' : 'ECONNRESET' }))
  }

  private readonly onIdle = (): void => {
    if (this.settled) return
    const code = this.gotHead ? 'UND_ERR_BODY_TIMEOUT' : 'UND_ERR_HEADERS_TIMEOUT'
    this.stream?.close(constants.NGHTTP2_CANCEL)
    this.fail(Object.assign(new Error(`HTTP/2 stream idle for ${this.idleTimeoutMs} ms`), { code }))
  }

  private fail (err: Error): void {
    if (this.settled) return
    this.settled = true
    this.stopBody()
    this.owner.onTryError(this, err)
  }

  private stopBody (): void {
    const b = this.body
    if (b === undefined) return
    this.body = undefined
    if (this.stream !== undefined) b.unpipe(this.stream)
  }
}
