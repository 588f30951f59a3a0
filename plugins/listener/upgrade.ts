import { type IncomingMessage, type Server, STATUS_CODES, request as httpRequest } from 'node:http'
import type { Duplex } from 'node:stream'
import { type ErrorSpec, Errors } from '../../src/errors.js'
import { type DecisionContext, type Plan, decide as decideRequest, routeOf } from '../../src/routing/decide.js'
import { applyDownstreamPolicy, upstreamHeaders } from '../../src/routing/header-policy.js'
import type { HeaderMap } from '../../src/routing/headers.js'
import type { RuntimeState } from '../../src/runtime/state.js'
import { Flag } from '../../src/upstream/endpoint.js'
import { type AccessLogContext, logFallback } from '../access-log.js'
import { chooseEndpoint } from '../forward/endpoint.js'
import { resetBody } from '../reply/local.js'
import type { LogLine } from './client-errors.js'
import { checkHeaders, hasRepeatedHeaders, matchHeaders, openContext } from './intake.js'
import type { RequestLimits } from './limits.js'
import { type Denial, type SecurityEnv, checkSecurity } from './security.js'
import type { Snapshot } from '../../src/compile/snapshot.js'
import type { RequestTrace, Tracing } from '../tracing.js'

export interface UpgradeOptions {
  mesh: boolean
  configPort: number
  scheme: string
  /** The decision context of the moment (the listener's current snapshot). */
  current: () => DecisionContext
  runtime: RuntimeState
  log: LogLine
  random: () => number
  now: () => number
  limits: RequestLimits
  server: string
  /** The listener's current snapshot (its security resources and clusters). */
  snapshot: () => Snapshot
  security: SecurityEnv
  /** Distributed tracing, when on: an upgrade is a server span and its upstream request a client span. */
  tracing?: Tracing
}

const UNSAFE_HEADER = /[\r\n\0]/

/**
 * HTTP/1.1 upgrades (WebSocket) through routes, as Envoy allows them by default. The request
 * goes through the same intake, header checks and routing decision as any other; a plan that is
 * not a forward (direct response, redirect, fault abort, NR, NC, UH) is answered here and never
 * opens an upstream connection. A forward is sent upstream with its own headers only: the bytes
 * the client sends after them are held back until the upstream answers 101, and then the two
 * sockets are joined. Any other answer is passed on as an ordinary response and the connection
 * closes after it, so nothing the client sent beyond the upgrade request reaches the upstream.
 */
export function attachUpgrade (server: Server, o: UpgradeOptions): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => { handleUpgrade(o, req, socket, head) })
}

function handleUpgrade (o: UpgradeOptions, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const repeated = hasRepeatedHeaders(req)
  const ctx = openContext(req, o.mesh ? 'mesh' : String(o.configPort), o.now)
  const lg = { logged: false }
  const trace = o.tracing?.start(req.headers, ctx, o.mesh, o.scheme)
  const log = (status: number): void => {
    if (lg.logged) return
    lg.logged = true
    trace?.end(ctx, status)
    o.log(ctx, status, Number((process.hrtime.bigint() - ctx.startHr) / 1000000n))
  }
  socket.on('error', () => socket.destroy())
  const headers = req.headers
  // `Upgrade: h2c` is a request to switch to cleartext HTTP/2, which the gateway does not do on
  // an HTTP/1.1 connection: like Envoy it drops the upgrade and serves the request as it is.
  const h2c = String(headers.upgrade ?? '').trim().toLowerCase() === 'h2c'
  const bodyLength = Number(headers['content-length'] ?? 0)
  if (h2c && (headers['transfer-encoding'] !== undefined || !Number.isSafeInteger(bodyLength) || bodyLength < 0)) {
    fail(socket, ctx, Errors.BadHeaders, o.server); log(400); return
  }
  ctx.xForwardedFor = applyDownstreamPolicy(headers, { mesh: o.mesh, remoteAddress: req.socket.remoteAddress ?? '' })
  const bad = checkHeaders(req, o.limits)
  if (bad !== undefined) { fail(socket, ctx, bad, o.server); log(bad.status); return }
  const snap = o.snapshot()
  const dc = o.current()
  const plan = decide(o, dc, req, ctx, repeated)
  const go = (d: Denial | undefined): void => {
    if (d !== undefined) { ctx.responseCodeDetails = d.error.details; fail(socket, ctx, d.error, o.server, d.headers); log(d.error.status); return }
    afterDecision(o, req, socket, head, ctx, plan, log, lg, h2c, bodyLength, trace)
  }
  if (snap.security === undefined) return go(undefined)
  const d = checkSecurity(snap.security, plan, req, req.socket.remoteAddress ?? '', ctx.xForwardedFor, snap.clusters, o.security)
  if (d instanceof Promise) d.then(go, () => go({ error: Errors.JwtDenied }))
  else go(d)
}

/** The upgrade after the routing decision and the security stage. */
function afterDecision (o: UpgradeOptions, req: IncomingMessage, socket: Duplex, head: Buffer, ctx: AccessLogContext, plan: Plan, log: (status: number) => void,
  lg: { logged: boolean }, h2c: boolean, bodyLength: number, trace: RequestTrace | undefined): void {
  if (socket.destroyed) { log(0); return }
  const headers = req.headers
  if (plan.kind !== 'forward') { answerLocally(socket, ctx, plan, o.server); log(statusOf(plan)); return }
  logFallback(ctx, plan.resolution)
  const served = plan.resolution.cluster
  if (served === undefined) {
    const e = plan.resolution.failure === 'NC' ? Errors.NoCluster : Errors.NoHealthyUpstream
    fail(socket, ctx, e, o.server); log(e.status); return
  }
  const cluster = o.runtime.cluster(served)!
  const choice = chooseEndpoint(cluster, o.random, undefined, undefined, false)
  if (choice.kind !== 'endpoint') {
    const e = choice.kind === 'overflow' ? Errors.Overflow : Errors.NoHealthyUpstream
    fail(socket, ctx, e, o.server); log(e.status); return
  }
  const ep = choice.ep
  ctx.upstreamHost = ep.spec.address.includes(':') ? `[${ep.spec.address}]:${ep.spec.port}` : ep.spec.key
  ctx.authority = plan.authority
  const out: HeaderMap = upstreamHeaders(headers, plan, { mesh: o.mesh, scheme: o.scheme, bodyless: true })
  if (h2c) {
    delete out['http2-settings']
    if (bodyLength > 0) out['content-length'] = String(bodyLength)
  } else {
    out.connection = 'upgrade'
    out.upgrade = headers.upgrade
  }
  for (const k in out) {
    const v = out[k]
    // undici's check does not run here: a CR, LF or NUL would split the request.
    if (v !== undefined && ([v].flat().some(one => UNSAFE_HEADER.test(one)) || UNSAFE_HEADER.test(k))) { fail(socket, ctx, Errors.UpstreamProtocolError, o.server); log(502); return }
  }
  trace?.startTry(out, served, ctx.upstreamHost)
  ep.active++
  cluster.active++
  let released = false
  const release = (ok: boolean): void => {
    if (released) return
    released = true
    ep.active--
    cluster.active--
    choice.settle?.(ok)
  }
  const started = process.hrtime.bigint()
  const up = httpRequest({ host: ep.spec.address, port: ep.spec.port, method: ctx.method, path: plan.path, headers: out as Record<string, string>, agent: false, setHost: false })
  let upgraded = false
  // The client leaves before the upstream answered: DC, the upstream request is dropped.
  socket.once('close', () => { if (!lg.logged && !upgraded) { if (ctx.responseFlags === '-') ctx.responseFlags = 'DC'; up.destroy(); release(true); log(0) } })
  up.on('upgrade', (res, upSocket, upHead) => {
    upgraded = true
    ctx.upstreamServiceTime = Number((process.hrtime.bigint() - started) / 1000000n)
    cluster.record(ep, { kind: 'response', status: 101 })
    trace?.tryStatus(101)
    upSocket.on('error', () => upSocket.destroy())
    socket.write(headLines(101, res.statusMessage, res.rawHeaders, o.server, false))
    if (upHead.length > 0) socket.write(upHead)
    // Only now may the client's bytes reach the upstream.
    if (head.length > 0) upSocket.write(head)
    upSocket.pipe(socket)
    socket.pipe(upSocket)
    socket.once('close', () => { upSocket.destroy(); release(true); log(101) })
    upSocket.once('close', () => { if (!socket.destroyed) socket.end() })
  })
  up.on('response', res => {
    // Not switching protocols: an ordinary response, passed on and then the connection closes
    // (the request's remaining bytes are never read, so they cannot become a second request).
    const status = res.statusCode ?? 502
    ctx.upstreamServiceTime = Number((process.hrtime.bigint() - started) / 1000000n)
    cluster.record(ep, { kind: 'response', status })
    trace?.tryStatus(status)
    release(status < 500)
    socket.write(headLines(status, res.statusMessage, res.rawHeaders, o.server, true))
    res.on('data', (c: Buffer) => { ctx.bytesSent += c.length; socket.write(c) })
    res.once('end', () => { log(status); socket.end() })
    res.once('error', () => { ctx.responseFlags = 'UC'; log(status); socket.destroy() })
  })
  up.on('error', err => {
    release(false)
    if (lg.logged || socket.destroyed) { socket.destroy(); return }
    const code = (err as { code?: string }).code
    ctx.upstreamTransportFailureReason = code ?? err.message
    // Only a failed connection attempt is evidence that the host is gone.
    const connectFailure = code === 'ECONNREFUSED' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
    if (connectFailure) ep.host.set(Flag.FailedConnect, true)
    cluster.record(ep, { kind: 'local', error: connectFailure ? 'connect' : 'reset' })
    const e = connectFailure ? Errors.UpstreamConnectFailure : Errors.UpstreamReset
    fail(socket, ctx, e, o.server)
    log(e.status)
  })
  if (h2c && bodyLength > 0) sendBody(head, socket, bodyLength, up)
  else up.end()
}

/** The Content-Length body of a plain request that came in as an h2c upgrade: exactly that many bytes. */
function sendBody (head: Buffer, socket: Duplex, length: number, up: import('node:http').ClientRequest): void {
  let left = length
  const take = (chunk: Buffer): void => {
    const part = chunk.subarray(0, left)
    left -= part.length
    up.write(part)
    if (left === 0) { socket.off('data', take); socket.pause(); up.end() }
  }
  if (head.length > 0) take(head)
  if (left > 0) socket.on('data', take)
}

function decide (o: UpgradeOptions, dc: DecisionContext, req: IncomingMessage, ctx: AccessLogContext, repeated: boolean): Plan {
  const plan = decideRequest({
    method: ctx.method,
    scheme: o.scheme,
    authority: req.headers.host ?? '',
    target: req.url ?? '/',
    headers: matchHeaders(req, repeated),
    listenerPort: o.mesh ? undefined : o.configPort,
    localPort: req.socket.localPort
  }, dc)
  const route = routeOf(plan)
  if (route !== undefined) ctx.routeName = route.name
  return plan
}

function statusOf (plan: Plan): number {
  switch (plan.kind) {
    case 'reject': return plan.error!.status
    case 'redirect': return plan.status!
    case 'error': return plan.error.status
    case 'local': return plan.status
    case 'forward': return 0
  }
}

/** A plan that is not a forward, answered on the socket; the connection closes after it. */
function answerLocally (socket: Duplex, ctx: AccessLogContext, plan: Plan, server: string): void {
  if (plan.kind === 'reject') return fail(socket, ctx, plan.error!, server)
  if (plan.kind === 'error') {
    if (plan.flags !== '') ctx.responseFlags = plan.flags
    ctx.upstreamCluster = plan.upstreamCluster
    return fail(socket, ctx, plan.error, server)
  }
  if (plan.kind === 'redirect') return write(socket, ctx, plan.status!, { location: plan.location! }, undefined, server)
  if (plan.kind === 'local') {
    if (plan.flags !== '') ctx.responseFlags = plan.flags
    if (plan.upstreamCluster !== '-') ctx.upstreamCluster = plan.upstreamCluster
    return write(socket, ctx, plan.status, plan.headers, plan.body, server)
  }
}

function fail (socket: Duplex, ctx: AccessLogContext, e: ErrorSpec, server: string, extra?: Record<string, string>): void {
  ctx.responseFlags = e.flag
  const body = e.flag === 'UF' || e.flag === 'UC' ? resetBody(e, ctx, false) : e.body
  write(socket, ctx, e.status, { ...(body === '' ? {} : { 'content-type': 'text/plain' }), ...extra }, body === '' ? undefined : Buffer.from(body), server)
}

function write (socket: Duplex, ctx: AccessLogContext, status: number, headers: Record<string, string>, body: Buffer | undefined, server: string): void {
  const len = body?.length ?? 0
  ctx.bytesSent = len
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nserver: ${server}\r\n`
  for (const k in headers) head += `${k}: ${headers[k]}\r\n`
  head += `content-length: ${len}\r\nconnection: close\r\n\r\n`
  socket.end(body === undefined ? head : Buffer.concat([Buffer.from(head, 'latin1'), body]))
}

/** The status line and headers of an upstream answer, `server` replaced; a non-101 closes the connection. */
function headLines (status: number, message: string | undefined, raw: string[], server: string, closing: boolean): string {
  let head = `HTTP/1.1 ${status} ${message ?? STATUS_CODES[status] ?? ''}\r\n`
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase()
    if (name === 'server') continue
    // A passed-on ordinary response is close-delimited: its own framing and keep-alive go.
    if (closing && (name === 'connection' || name === 'keep-alive' || name === 'transfer-encoding' || name === 'content-length')) continue
    head += `${raw[i]}: ${raw[i + 1]}\r\n`
  }
  head += `server: ${server}\r\n`
  if (closing) head += 'connection: close\r\n'
  return head + '\r\n'
}
