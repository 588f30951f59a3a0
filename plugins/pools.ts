import { Agent, buildConnector } from 'undici'
import type { PoolLimits } from '../src/resilience/pool.js'
import type { ClientTLSSettings } from '../src/config/model.js'
import { upstreamTlsOptions } from './tls.js'
import { H2ClusterPool } from './forward/h2-pool.js'

/** Default upstream stream-idle timeout: Envoy's `stream_idle_timeout` (5 min). */
export const DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS = 300_000

/**
 * One undici Agent per cluster (a keep-alive pool per endpoint origin inside it), sized from
 * the cluster's `connectionPool`. Istio sets no request timeout by default; route and per-try
 * timeouts are applied by the forwarder. Like Envoy's stream idle timeout, an upstream that
 * sends nothing for `idleTimeoutMs` (before its headers, or between body bytes) is dropped:
 * 504 UT before headers, an aborted response after.
 */
export class ClusterPools {
  private readonly agents = new Map<string, { agent: Agent; key: string }>()
  /** HTTP/2 sessions of the clusters whose upstream protocol is h2c or h2. */
  private readonly h2pools = new Map<string, { pool: H2ClusterPool; key: string }>()

  constructor (readonly idleTimeoutMs: number = DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS) {}

  /**
   * The HTTP/2 pool of an h2c or h2 cluster: sessions per endpoint, at most `maxConcurrentStreams`
   * streams each (`connectionPool.http.maxConcurrentStreams`), at most `tcp.maxConnections`
   * sessions per endpoint; `http2MaxRequests` is enforced by admission like any cluster's.
   */
  h2 (cluster: string, limits: PoolLimits, tls: ClientTLSSettings | undefined, maxConcurrentStreams: number | undefined): H2ClusterPool {
    const key = `${limits.maxConnections}|${limits.connectTimeoutMs}|${limits.maxRequestsPerConnection}|${limits.idleTimeoutMs}|${maxConcurrentStreams ?? 0}|${tls === undefined ? '' : JSON.stringify(tls)}`
    const cur = this.h2pools.get(cluster)
    if (cur !== undefined && cur.key === key) return cur.pool
    if (cur !== undefined) void cur.pool.close()
    const tlsOpts = upstreamTlsOptions(tls)
    const pool = new H2ClusterPool({ limits, maxConcurrentStreams: maxConcurrentStreams ?? 0, ...(tlsOpts !== undefined ? { tls: tlsOpts } : {}) })
    this.h2pools.set(cluster, { pool, key })
    return pool
  }

  get (cluster: string, limits: PoolLimits, tls?: ClientTLSSettings): Agent {
    const key = `${limits.maxConnections}|${limits.connectTimeoutMs}|${limits.maxRequestsPerConnection}|${limits.idleTimeoutMs}|${tls === undefined ? '' : JSON.stringify(tls)}`
    const cur = this.agents.get(cluster)
    if (cur !== undefined && cur.key === key) return cur.agent
    if (cur !== undefined) void cur.agent.close().catch(() => {})
    const tlsOpts = upstreamTlsOptions(tls)
    // undici derives SNI from the Host header; DestinationRule `tls.sni` must win when set.
    const base = buildConnector({ timeout: limits.connectTimeoutMs, ...tlsOpts } as buildConnector.BuildOptions)
    const sni = tls?.sni
    const connect: buildConnector.connector = sni === undefined ? base : (opts, cb) => base({ ...opts, servername: sni }, cb)
    const agent = new Agent({
      connections: Number.isFinite(limits.maxConnections) ? limits.maxConnections : null,
      connect,
      headersTimeout: this.idleTimeoutMs,
      bodyTimeout: this.idleTimeoutMs,
      keepAliveTimeout: Math.min(limits.idleTimeoutMs, 60_000),
      keepAliveMaxTimeout: limits.idleTimeoutMs,
      ...(limits.maxRequestsPerConnection > 0 ? { maxRequestsPerClient: limits.maxRequestsPerConnection } : {}),
      pipelining: 1
    })
    this.agents.set(cluster, { agent, key })
    return agent
  }

  /** Close the pools of clusters that left the configuration (after their requests finish). */
  release (clusters: readonly string[]): void {
    for (const name of clusters) {
      const h2 = this.h2pools.get(name)
      if (h2 !== undefined) { this.h2pools.delete(name); void h2.pool.close() }
      const cur = this.agents.get(name)
      if (cur === undefined) continue
      this.agents.delete(name)
      void cur.agent.close().catch(() => {})
    }
  }

  async close (): Promise<void> {
    const all = [...this.agents.values()]
    this.agents.clear()
    this.closing.push(...all.map(a => a.agent))
    const h2 = [...this.h2pools.values()].map(p => p.pool)
    this.h2pools.clear()
    this.closingH2.push(...h2)
    await Promise.allSettled([...all.map(a => a.agent.close()), ...h2.map(p => p.close())])
  }

  /** Abort everything in flight and close every pool now (the shutdown deadline). */
  destroy (): void {
    for (const a of this.agents.values()) void a.agent.destroy().catch(() => {})
    for (const agent of this.closing) void agent.destroy().catch(() => {})
    for (const p of this.h2pools.values()) p.pool.destroy()
    for (const p of this.closingH2) p.destroy()
  }

  /** Agents whose graceful close is under way (destroy() still reaches them). */
  private readonly closing: Agent[] = []
  private readonly closingH2: H2ClusterPool[] = []

  get size (): number {
    return this.agents.size + this.h2pools.size
  }
}
