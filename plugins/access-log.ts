import { closeSync, mkdirSync, openSync, write, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import pino from 'pino'
import type { FallbackDecision } from '../src/resilience/fallback.js'
import { fallbackFields } from '../src/routing/decide.js'

/**
 * The per-request facts the access log needs, filled in as the request goes through the proxy.
 * One JSON line per request with Envoy/ASM field names (docs/operations.md#access-log); `-` where absent.
 */
export interface AccessLogContext {
  startTime: number
  /** High-resolution start, for durations. */
  startHr: bigint
  authority: string
  method: string
  path: string
  protocol: string
  requestId: string
  userAgent: string
  xForwardedFor: string
  traceId: string
  downstreamLocal: string
  downstreamRemote: string
  bytesReceived: number
  bytesSent: number
  responseFlags: string
  /**
   * `%RESPONSE_CODE_DETAILS%` of a request a security policy refused (`rbac_access_denied_matched_policy[…]`,
   * `jwt_authn_access_denied{…}`); '-' otherwise, and then the key is left out so ASM's line keeps its keys.
   */
  responseCodeDetails: string
  routeName: string
  upstreamCluster: string
  upstreamHost: string
  upstreamLocal: string
  /** Milliseconds from sending upstream to its response headers, or -1. */
  upstreamServiceTime: number
  upstreamTransportFailureReason: string
  fallbackPath: string
  fallbackFinalCluster: string
  fallbackResult: string
  /** Which listener served it (not logged; used by metrics). */
  listener: string
  /** The peer's IP address (not logged; metrics identify mesh callers by it). */
  downstreamAddress: string
  /** The serving endpoint's labels (not logged; metrics read its workload, app and version). */
  upstreamLabels: Readonly<Record<string, string>> | undefined
}

export function newAccessLogContext (): AccessLogContext {
  return {
    startTime: 0,
    startHr: 0n,
    authority: '-',
    method: '-',
    path: '-',
    protocol: '-',
    requestId: '-',
    userAgent: '-',
    xForwardedFor: '-',
    traceId: '-',
    downstreamLocal: '-',
    downstreamRemote: '-',
    bytesReceived: 0,
    bytesSent: 0,
    responseFlags: '-',
    responseCodeDetails: '-',
    routeName: '-',
    upstreamCluster: '-',
    upstreamHost: '-',
    upstreamLocal: '-',
    upstreamServiceTime: -1,
    upstreamTransportFailureReason: '-',
    fallbackPath: '-',
    fallbackFinalCluster: '-',
    fallbackResult: '-',
    listener: '-',
    downstreamAddress: '',
    upstreamLabels: undefined
  }
}

/** `upstream_cluster` and the `fallback_*` fields of a fallback resolution, written into the context. */
export function logFallback (ctx: AccessLogContext, d: FallbackDecision): void {
  const f = fallbackFields(d)
  ctx.upstreamCluster = f.upstreamCluster
  ctx.fallbackPath = f.fallbackPath
  ctx.fallbackResult = f.fallbackResult
  ctx.fallbackFinalCluster = f.fallbackFinalCluster
}

/** The JSON object of one access-log line, keys in the order of docs/operations.md#access-log, values as strings like ASM's. */
export function accessLogRecord (c: AccessLogContext, responseCode: number, durationMs: number): Record<string, string> {
  return {
    authority: c.authority,
    bytes_received: String(c.bytesReceived),
    bytes_sent: String(c.bytesSent),
    downstream_local_address: c.downstreamLocal,
    downstream_remote_address: c.downstreamRemote,
    duration: String(durationMs),
    fallback_final_cluster_name: c.fallbackFinalCluster,
    fallback_path: c.fallbackPath,
    fallback_result: c.fallbackResult,
    method: c.method,
    path: c.path,
    protocol: c.protocol,
    request_id: c.requestId,
    response_code: String(responseCode),
    ...(c.responseCodeDetails !== '-' ? { response_code_details: c.responseCodeDetails } : {}),
    response_flags: c.responseFlags,
    route_name: c.routeName,
    start_time: new Date(c.startTime).toISOString(),
    trace_id: c.traceId,
    upstream_cluster: c.upstreamCluster,
    upstream_host: c.upstreamHost,
    upstream_local_address: c.upstreamLocal,
    upstream_service_time: c.upstreamServiceTime < 0 ? '-' : String(c.upstreamServiceTime),
    upstream_transport_failure_reason: c.upstreamTransportFailureReason,
    user_agent: c.userAgent,
    x_forwarded_for: c.xForwardedFor
  }
}

/**
 * Characters after which a string needs JSON escaping: quote, backslash, controls and
 * surrogates (a lone surrogate is escaped by JSON.stringify). Anything else is written as is,
 * which gives exactly JSON.stringify's output.
 */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/

function q (s: string): string {
  if (s === '-') return '"-"'
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`
}

/**
 * Fields whose value is most often the same as on the previous line (the configuration's route,
 * cluster and endpoint, the listener's address, the authority): the last quoted value is reused.
 */
const SAME_AS_LAST = { authority: 0, local: 1, route: 2, cluster: 3, host: 4 } as const
const lastIn: string[] = ['', '', '', '', '']
const lastOut: string[] = ['""', '""', '""', '""', '""']

function qLast (s: string, slot: number): string {
  if (s === lastIn[slot]) return lastOut[slot]
  const quoted = q(s)
  lastIn[slot] = s
  lastOut[slot] = quoted
  return quoted
}

// The ISO text of the current second is reused: only the milliseconds change within it.
let isoSecond = NaN
let isoPrefix = ''
function isoTime (ms: number): string {
  if (!Number.isInteger(ms)) return new Date(ms).toISOString()
  const second = Math.floor(ms / 1000)
  if (second !== isoSecond) {
    const text = new Date(second * 1000).toISOString()
    isoSecond = second
    isoPrefix = text.slice(0, text.length - 4) // without `000Z`
  }
  const r = ms - second * 1000
  return isoPrefix + (r < 10 ? '00' : r < 100 ? '0' : '') + r + 'Z'
}

/**
 * One access-log line, byte for byte `JSON.stringify(accessLogRecord(…))`, built without the
 * intermediate object (the request path's cost is a few string concatenations).
 */
export function accessLogLine (c: AccessLogContext, responseCode: number, durationMs: number): string {
  return '{"authority":' + qLast(c.authority, SAME_AS_LAST.authority) +
    ',"bytes_received":"' + c.bytesReceived +
    '","bytes_sent":"' + c.bytesSent +
    '","downstream_local_address":' + qLast(c.downstreamLocal, SAME_AS_LAST.local) +
    ',"downstream_remote_address":' + q(c.downstreamRemote) +
    ',"duration":"' + durationMs +
    '","fallback_final_cluster_name":' + q(c.fallbackFinalCluster) +
    ',"fallback_path":' + q(c.fallbackPath) +
    ',"fallback_result":' + q(c.fallbackResult) +
    ',"method":' + q(c.method) +
    ',"path":' + q(c.path) +
    ',"protocol":' + q(c.protocol) +
    ',"request_id":' + q(c.requestId) +
    ',"response_code":"' + responseCode +
    (c.responseCodeDetails === '-' ? '","response_flags":' : '","response_code_details":' + q(c.responseCodeDetails) + ',"response_flags":') + q(c.responseFlags) +
    ',"route_name":' + qLast(c.routeName, SAME_AS_LAST.route) +
    ',"start_time":"' + isoTime(c.startTime) +
    '","trace_id":' + q(c.traceId) +
    ',"upstream_cluster":' + qLast(c.upstreamCluster, SAME_AS_LAST.cluster) +
    ',"upstream_host":' + qLast(c.upstreamHost, SAME_AS_LAST.host) +
    ',"upstream_local_address":' + q(c.upstreamLocal) +
    ',"upstream_service_time":"' + (c.upstreamServiceTime < 0 ? '-' : c.upstreamServiceTime) +
    '","upstream_transport_failure_reason":' + q(c.upstreamTransportFailureReason) +
    ',"user_agent":' + q(c.userAgent) +
    ',"x_forwarded_for":' + q(c.xForwardedFor) + '}'
}

/** Where access-log lines go: a file path, `-`/`stdout`, `stderr`, `off`, or a function (tests). */
export type AccessLogTarget = string | ((line: string) => void)

export interface AccessLogWriter {
  /** Log one request (the request path's entry point). */
  log: (ctx: AccessLogContext, responseCode: number, durationMs: number) => void
  flush: () => void
  close: () => Promise<void>
}

/**
 * An access-log writer. Files get meshgate's own appender (below); stdout and stderr go through
 * pino's asynchronous SonicBoom destination, which handles pipes and terminals. Either way a
 * line never blocks the event loop on I/O.
 */
export function createAccessLogWriter (target: AccessLogTarget): AccessLogWriter {
  if (typeof target === 'function') {
    return { log: (c, code, ms) => target(accessLogLine(c, code, ms)), flush: () => {}, close: async () => {} }
  }
  if (target === 'off') return { log: () => {}, flush: () => {}, close: async () => {} }
  const fd = target === '-' || target === 'stdout' ? 1 : target === 'stderr' ? 2 : undefined
  if (fd === undefined) return fileWriter(target)
  // Buffer mode: SonicBoom queues each line as a Buffer (O(1)); in its default string mode it
  // appends to one growing string and measures its UTF-8 length on every write.
  const dest = pino.destination({ dest: fd, sync: false, minLength: 0, contentMode: 'buffer' })
  // Lines of one event-loop turn are joined and handed over once (setImmediate): under load that
  // is one write call for many lines; when quiet, a line still goes out at once.
  let pending = ''
  let scheduled = false
  const drain = (): void => {
    scheduled = false
    if (pending === '') return
    const chunk = pending
    pending = ''
    // (SonicBoom's typings declare write(string) only; in buffer mode it takes Buffers.)
    dest.write(Buffer.from(chunk) as unknown as string)
  }
  return {
    log: (c, code, ms) => {
      pending += accessLogLine(c, code, ms) + '\n'
      if (!scheduled) { scheduled = true; setImmediate(drain) }
    },
    flush: () => { drain(); try { dest.flushSync() } catch { /* not ready yet: the async write completes on its own */ } },
    close: () => new Promise(resolve => {
      drain()
      try { dest.flushSync() } catch { /* ignore */ }
      resolve()
    })
  }
}

/** Bytes gathered before a file write: one write per ~45 lines under load. */
const FILE_CHUNK = 32 * 1024

/**
 * An append-only file writer: lines are joined into one string and written with one
 * asynchronous `fs.write` (the thread pool does the I/O) per 32 KiB, at most one write in
 * flight so lines stay in order, and whatever is pending is written every second so a quiet
 * gateway's lines never wait long. Measured against SonicBoom in buffer mode on the same lines:
 * 2.4 against 3.2 µs of process CPU per line (docs/decisions/0007-access-log-appender.md).
 */
function fileWriter (path: string): AccessLogWriter {
  mkdirSync(dirname(path), { recursive: true })
  const fd = openSync(path, 'a')
  let pending = ''
  let inFlight = false
  let closing: (() => void) | undefined
  const kick = (force: boolean): void => {
    if (inFlight || pending === '' || (!force && pending.length < FILE_CHUNK)) {
      if (!inFlight && pending === '' && closing !== undefined) finish()
      return
    }
    const chunk = pending
    pending = ''
    inFlight = true
    write(fd, chunk, null, 'utf8', (err, written) => {
      inFlight = false
      // A short write (rare on files): the rest goes next, ahead of anything newer.
      if (err === null && written < Buffer.byteLength(chunk)) pending = Buffer.from(chunk).subarray(written).toString() + pending
      kick(closing !== undefined)
    })
  }
  const finish = (): void => {
    const done = closing
    closing = undefined
    clearInterval(timer)
    try { closeSync(fd) } catch { /* already closed */ }
    done?.()
  }
  const timer = setInterval(() => kick(true), 1000)
  timer.unref()
  return {
    log: (c, code, ms) => {
      pending += accessLogLine(c, code, ms) + '\n'
      if (pending.length >= FILE_CHUNK) kick(false)
    },
    // Synchronous only when no write is in flight (a sync write then could overtake it).
    flush: () => { if (!inFlight && pending !== '') { writeSync(fd, pending); pending = '' } },
    close: () => new Promise(resolve => {
      closing = resolve
      kick(true)
    })
  }
}
