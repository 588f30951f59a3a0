import { Agent, buildConnector } from 'undici'
import type { PoolLimits } from '../src/resilience/pool.js'
import type { ClientTLSSettings } from '../src/config/model.js'
import { upstreamTlsOptions } from './tls.js'

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

  constructor (private readonly idleTimeoutMs: number = DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS) {}

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
    await Promise.allSettled(all.map(a => a.agent.close()))
  }

  /** Abort everything in flight and close every pool now (the shutdown deadline). */
  destroy (): void {
    for (const a of this.agents.values()) void a.agent.destroy().catch(() => {})
    for (const agent of this.closing) void agent.destroy().catch(() => {})
  }

  /** Agents whose graceful close is under way (destroy() still reaches them). */
  private readonly closing: Agent[] = []

  get size (): number {
    return this.agents.size
  }
}
