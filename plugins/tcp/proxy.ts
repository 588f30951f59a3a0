import { type Socket, connect as netConnect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { getExtensionData, readTlsClientHello } from 'read-tls-client-hello'
import type { L4Listener, Snapshot } from '../../src/compile/snapshot.js'
import { parseDurationMs } from '../../src/config/duration.js'
import type { ClientTLSSettings } from '../../src/config/model.js'
import { resolveFallback } from '../../src/resilience/fallback.js'
import { pickL4Destination, selectL4Route } from '../../src/routing/l4.js'
import type { ClusterState } from '../../src/runtime/cluster-state.js'
import type { RuntimeState } from '../../src/runtime/state.js'
import { type EndpointState, Flag } from '../../src/upstream/endpoint.js'
import { type AccessLogWriter, logFallback, newAccessLogContext } from '../access-log.js'
import type { Metrics } from '../metrics.js'
import { upstreamTlsOptions } from '../tls.js'

/**
 * One TCP connection through meshgate (docs/tcp.md), as Envoy's TCP proxy handles it: read the
 * snapshot once, peek the SNI on a passthrough port, choose a route and a weighted destination,
 * resolve the ASM fallback against health, pick an endpoint, admit it under
 * `connectionPool.tcp.maxConnections`, connect (with `connectTimeout`), then pipe bytes both
 * ways until either side closes or nothing moves for `idleTimeout`. One access-log line per
 * connection, with Envoy's TCP flags: `UF` connect failure, `UO` overflow, `UH` no healthy
 * upstream, `NR` no route, `NC` no cluster.
 */

export interface ProxyEnv {
  runtime: RuntimeState
  accessLog: AccessLogWriter
  /** Istio's TCP metrics (docs/tcp.md#metrics). */
  metrics?: Pick<Metrics, 'tcpConnection'>
  random: () => number
  now: () => number
  /** How long a passthrough port waits for the ClientHello (Envoy's listener filter timeout, 15 s). */
  helloTimeoutMs: number
}

/** Envoy's TCP proxy idle timeout when the DestinationRule sets none: 1 h. */
const DEFAULT_IDLE_MS = 3_600_000
const NO_HOSTS: ReadonlySet<EndpointState> = new Set()

/** Errors of a connection attempt that show the host is not there (as for HTTP, plugins/forward/try.ts). */
const FAILED_ATTEMPT = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH'])

/** Handle one accepted connection on a TCP listener. */
export function proxyConnection (down: Socket, spec: L4Listener, snap: Snapshot, env: ProxyEnv): void {
  const ctx = newAccessLogContext()
  ctx.startTime = env.now()
  ctx.startHr = process.hrtime.bigint()
  ctx.listener = spec.name
  ctx.downstreamAddress = down.remoteAddress ?? ''
  ctx.downstreamRemote = addr(down.remoteAddress, down.remotePort)
  ctx.downstreamLocal = addr(down.localAddress, down.localPort)
  const metrics = env.metrics?.tcpConnection(ctx, spec.kind)
  let logged = false
  const log = (): void => {
    if (logged) return
    logged = true
    metrics?.closed()
    env.accessLog.log(ctx, 0, Number((process.hrtime.bigint() - ctx.startHr) / 1000000n))
  }
  const refuse = (flag: string): void => { ctx.responseFlags = flag; log(); down.destroy() }
  down.on('error', () => down.destroy())
  down.once('close', log)
  // The socket stays paused (pauseOnConnect) until the upstream is connected; a passthrough
  // port's ClientHello is read and put back first, so bytes are counted only when piped.

  if (spec.mode === 'tcp') { route(undefined); return }
  // TLS passthrough: read the ClientHello's SNI, then hand its bytes on untouched.
  const timer = setTimeout(() => refuse('NR'), env.helloTimeoutMs)
  down.once('close', () => clearTimeout(timer))
  readTlsClientHello(down).then(hello => {
    clearTimeout(timer)
    if (down.destroyed) return
    const sni = getExtensionData(hello, 'sni')?.serverName
    route(typeof sni === 'string' ? sni.toLowerCase() : undefined)
  }, () => {
    clearTimeout(timer)
    if (!down.destroyed) refuse('NR') // not TLS: no filter chain matches
  })

  function route (sni: string | undefined): void {
    if (sni !== undefined) ctx.authority = sni
    const r = selectL4Route(spec, { localAddress: down.localAddress ?? '', remoteAddress: down.remoteAddress ?? '', ...(sni !== undefined ? { sni } : {}) }, snap.callers)
    if (r === undefined) { refuse('NR'); return }
    ctx.routeName = r.name === 'default' ? '-' : r.name
    const dest = pickL4Destination(r, env.random)
    if (dest === undefined) { refuse('NR'); return }
    const d = resolveFallback(dest, spec.destinationPort, snap.clusters, { hasHealthy: n => env.runtime.cluster(n)?.hasHealthy() === true })
    logFallback(ctx, d)
    const cluster = d.cluster === undefined ? undefined : env.runtime.cluster(d.cluster)
    if (cluster === undefined) { refuse(d.failure ?? 'NC'); return }
    const hashKey = cluster.spec.policy.loadBalancer?.consistentHash?.useSourceIp === true ? down.remoteAddress : undefined
    const ep = cluster.pick({ random: env.random, hashKey, exclude: NO_HOSTS })
    if (ep === undefined) { cluster.stats.noHealthy++; refuse('UH'); return }
    // Envoy's TCP proxy has no pending queue: beyond maxConnections a connection overflows.
    if (cluster.active >= cluster.limits.maxConnections) { cluster.stats.overflows++; refuse('UO'); return }
    forward(cluster, ep)
  }

  function forward (cluster: ClusterState, ep: EndpointState): void {
    cluster.active++
    ep.active++
    cluster.stats.requests++
    ep.requests++
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      cluster.active--
      ep.active--
    }
    ctx.upstreamHost = ep.spec.address.includes(':') ? `[${ep.spec.address}]:${ep.spec.port}` : ep.spec.key
    ctx.upstreamLabels = ep.spec.labels
    const tcpPolicy = cluster.spec.policy.connectionPool?.tcp
    const idleMs = parseDurationMs(tcpPolicy?.idleTimeout ?? '') ?? DEFAULT_IDLE_MS
    const tls = cluster.spec.policy.tls
    const secure = tls?.mode === 'SIMPLE' || tls?.mode === 'MUTUAL'
    const up = secure
      ? tlsConnect({ host: ep.spec.address, port: ep.spec.port, ...tlsOptions(tls), servername: tls!.sni ?? cluster.spec.host })
      : netConnect({ host: ep.spec.address, port: ep.spec.port, allowHalfOpen: true })
    let connected = false
    up.setTimeout(cluster.limits.connectTimeoutMs)
    const failed = (code: string): void => {
      if (connected) return
      connected = true // settled
      release()
      ctx.upstreamTransportFailureReason = code
      if (FAILED_ATTEMPT.has(code)) ep.host.set(Flag.FailedConnect, true)
      cluster.record(ep, { kind: 'local', error: code === 'ETIMEDOUT' ? 'timeout' : 'connect' })
      up.destroy()
      refuse('UF')
    }
    up.once('timeout', () => failed('ETIMEDOUT'))
    up.on('error', (err: Error & { code?: string }) => { if (!connected) failed(err.code ?? err.message); else up.destroy() })
    up.once(secure ? 'secureConnect' : 'connect', () => {
      if (connected) return
      connected = true
      ctx.upstreamLocal = addr(up.localAddress, up.localPort)
      metrics?.connected()
      cluster.record(ep, { kind: 'response', status: 200 })
      up.setTimeout(idleMs)
      down.setTimeout(idleMs)
      const idle = (): void => { up.destroy(); down.destroy() }
      up.once('timeout', idle)
      down.once('timeout', idle)
      up.on('data', (c: Buffer) => { ctx.bytesSent += c.length })
      down.on('data', (c: Buffer) => { ctx.bytesReceived += c.length })
      // FIN travels both ways (half-close); when one side is gone the other is ended after
      // what it still has to write, and then released.
      up.once('close', () => { release(); if (!down.destroyed) { down.end(); down.once('finish', () => down.destroy()) } })
      down.once('close', () => { release(); if (!up.destroyed) { up.end(); up.once('finish', () => up.destroy()) } })
      up.pipe(down)
      down.pipe(up)
    })
    down.once('close', () => { if (!connected) { up.destroy(); release() } })
  }
}

/** TLS origination options per DestinationRule setting, read once (certificate files). */
const tlsCache = new Map<string, Record<string, unknown>>()
function tlsOptions (tls: ClientTLSSettings): Record<string, unknown> {
  const key = JSON.stringify(tls)
  let o = tlsCache.get(key)
  if (o === undefined) {
    o = upstreamTlsOptions(tls) ?? {}
    if (tlsCache.size > 256) tlsCache.clear()
    tlsCache.set(key, o)
  }
  return o
}

function addr (a: string | undefined, p: number | undefined): string {
  if (a === undefined) return '-'
  return a.includes(':') ? `[${a}]:${p ?? 0}` : `${a}:${p ?? 0}`
}
