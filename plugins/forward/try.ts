import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { TryFailure } from '../../src/resilience/retry.js'
import type { HeaderMap } from '../../src/routing/headers.js'

/**
 * One forwarding try: a request dispatched on an undici pool with a handler object instead
 * of undici's `request()` (no promise, no body stream object, no per-try closures). Its
 * owner hears about the response head, each body chunk, the end and an error, and decides
 * (retry, stream to the client, fail) — this file only carries bytes and classifies failures.
 */

/** A try in flight, HTTP/1.1 (`UpstreamTry`) or HTTP/2 (`H2Try` in h2-try.ts). */
export interface ForwardTry {
  /** Ended or failed; later callbacks are ignored. */
  settled: boolean
  /** Aborted by the gateway. */
  aborted: boolean
  /** Abort the try; the owner hears the error. */
  abort: (reason: Error) => void
  /** Resume a body paused by the owner. */
  resume: () => void
}

/** The one who started a try and hears what happens to it. */
export interface TryOwner {
  /**
   * Response head. Return false to pause the body until `resume()`. `endStream`: an HTTP/2 head
   * that also ended the response (gRPC's trailers-only answer).
   */
  onTryHeaders: (t: ForwardTry, status: number, rawHeaders: Buffer[], endStream?: boolean) => boolean
  /** A body chunk. Return false to pause. */
  onTryData: (t: ForwardTry, chunk: Buffer) => boolean
  /** Response trailers (HTTP/2 tries), just before `onTryEnd`. */
  onTryTrailers: (t: ForwardTry, trailers: Readonly<Record<string, string | string[] | undefined>>) => void
  onTryEnd: (t: ForwardTry) => void
  onTryError: (t: ForwardTry, err: Error) => void
}

export interface TryRequest {
  origin: string
  path: string
  method: string
  headers: HeaderMap
  body: Buffer | Readable | null
}

/** undici's legacy dispatch handler for one try. */
export class UpstreamTry implements ForwardTry {
  private abortFn: ((reason?: Error) => void) | undefined = undefined
  private abortReason: Error | undefined = undefined
  private resumeFn: (() => void) | undefined = undefined
  /** Settled: ended or failed; later callbacks are ignored. */
  settled = false
  /** Aborted by the gateway: the head and body that may still come are ignored, the error is reported. */
  aborted = false

  constructor (private readonly owner: TryOwner) {}

  /** Start the try on `dispatcher`. */
  start (dispatcher: Dispatcher, req: TryRequest): void {
    // The request has the fields of undici's dispatch options (undici reads them, never writes).
    dispatcher.dispatch(req as Dispatcher.DispatchOptions, this as unknown as Dispatcher.DispatchHandler)
  }

  /** Abort the try (timeout, client gone, retry decided on the head); the owner hears the error. */
  abort (reason: Error): void {
    if (this.settled || this.aborted) return
    this.aborted = true
    if (this.abortFn !== undefined) this.abortFn(reason)
    else this.abortReason = reason
  }

  /** Resume a body paused by the owner (downstream drained). */
  resume (): void {
    this.resumeFn?.()
  }

  onConnect (abort: (reason?: Error) => void): void {
    this.abortFn = abort
    if (this.abortReason !== undefined) abort(this.abortReason)
  }

  onHeaders (status: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (this.settled || this.aborted) return true
    // 1xx interim responses are not forwarded (the final head follows).
    if (status < 200) return true
    this.resumeFn = resume
    return this.owner.onTryHeaders(this, status, rawHeaders)
  }

  onData (chunk: Buffer): boolean {
    if (this.settled || this.aborted) return true
    return this.owner.onTryData(this, chunk)
  }

  onComplete (): void {
    if (this.settled || this.aborted) return
    this.settled = true
    this.owner.onTryEnd(this)
  }

  onError (err: Error): void {
    if (this.settled) return
    this.settled = true
    this.owner.onTryError(this, err)
  }

  onUpgrade (): void { /* upgrades never go through a try */ }
  onResponseStarted (): void {}
  onBodySent (): void {}
}

/** Errors of a failed connection attempt: evidence that the host is not there. */
const CONNECT_CODES = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'CERT_HAS_EXPIRED', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT', 'EADDRNOTAVAIL'])

/**
 * A connection attempt that failed: refused, timed out, no route. The only evidence that a
 * host is gone, so the only failure that marks it down at once (that is what makes fallback
 * instant when a workload is killed). Everything else a try can meet — a reset, an early
 * close, a malformed answer — is one bad exchange, left to outlier detection and retries.
 */
const FAILED_ATTEMPT_CODES = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH'])

export function isFailedConnectAttempt (err: unknown): boolean {
  const code = errCode(err)
  return code !== undefined && FAILED_ATTEMPT_CODES.has(code)
}

export function errCode (err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } }
  return e?.code ?? e?.cause?.code
}

/** undici's parser errors (`HPE_*`), length mismatches and refused header values. */
export function isProtocolError (err: unknown): boolean {
  const e = err as { name?: string; cause?: { name?: string } } | undefined
  if (e?.name === 'HTTPParserError' || e?.cause?.name === 'HTTPParserError') return true
  const code = errCode(err)
  return typeof code === 'string' && (code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_INFO' ||
    H2_PROTOCOL_CODES.has(code))
}

/** node:http2's codes for a peer that broke the protocol or a header value HTTP/2 refuses. */
const H2_PROTOCOL_CODES = new Set(['ERR_HTTP2_INVALID_HEADER_VALUE', 'ERR_INVALID_CHAR', 'ERR_HTTP2_INVALID_CONNECTION_HEADERS', 'ERR_HTTP2_INVALID_PSEUDOHEADER',
  'ERR_HTTP2_HEADER_SINGLE_VALUE'])

/** What kind of failure a try's error is, for retries and health. */
export function classify (err: unknown, timedOut: boolean): TryFailure {
  const code = errCode(err)
  if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT') return { kind: 'timeout' }
  if (code !== undefined && CONNECT_CODES.has(code)) return { kind: 'connect' }
  return code === 'REFUSED_STREAM' ? { kind: 'reset', refused: true } : { kind: 'reset' }
}

/** `%UPSTREAM_TRANSPORT_FAILURE_REASON%`-like text. */
export function failureReason (err: unknown, f: TryFailure): string {
  if (f.kind === 'timeout') return 'timeout'
  return errCode(err) ?? (err as Error)?.message ?? 'unknown'
}
