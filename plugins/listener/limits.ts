import { getHeapStatistics } from 'node:v8'
import type { EscapedSlashesAction, PathNormalization } from '../../src/routing/path.js'

/** Event-loop and memory guards that shed requests with 503 OM before the process falls over. */
export interface OverloadOptions {
  /** Mean event-loop delay over a sample interval above which requests are shed. 0 = off. */
  maxEventLoopDelayMs: number
  /** Heap used above which requests are shed. 0 = off. Default: 95 % of V8's heap limit (Envoy edge). */
  maxHeapUsedBytes: number
  /** Resident set size above which requests are shed. 0 = off. */
  maxRssBytes: number
  /** How often the guards sample (ms). */
  sampleIntervalMs: number
}

/** `headers_with_underscores_action` (Envoy): REJECT answers 400, DROP removes the header. */
export type UnderscoreHeadersAction = 'REJECT' | 'DROP' | 'ALLOW'

/** The downstream limits of a proxy listener (docs/operations.md). */
export interface RequestLimits {
  pathNormalization: PathNormalization
  escapedSlashes: EscapedSlashesAction
  headersWithUnderscores: UnderscoreHeadersAction
  /** Request line plus headers, bytes (HTTP/1.1 `maxHeaderSize`, HTTP/2 `maxHeaderListSize`) → 431. */
  maxHeaderBytes: number
  /** Request header fields → 431. */
  maxHeadersCount: number
  /** Request body bytes, by Content-Length or counted while streaming → 413. 0 = unlimited. */
  maxRequestBodyBytes: number
  /** Time to receive the request headers → 408 and close (slowloris). */
  headersTimeoutMs: number
  /** Time to receive the whole request, body included → 408 and close (slow body). */
  requestTimeoutMs: number
  /** Idle keep-alive connections close after this long. Keep it above any load balancer's idle timeout. */
  keepAliveTimeoutMs: number
  /** Open downstream connections per listener; more are closed at accept. */
  maxConnections: number
  /** HTTP/2 streams per connection (Envoy edge: 100). */
  maxConcurrentStreams: number
  /**
   * Proxies in front of the gateway whose X-Forwarded-For entries are trusted (Istio
   * `gatewayTopology.numTrustedProxies`): the client address `remote.ip` and `remoteIpBlocks`
   * read is the entry this many hops from the right, else the peer.
   */
  numTrustedProxies: number
  overload: OverloadOptions | false
}

/** meshgate's defaults, documented in docs/operations.md. */
export const DEFAULT_LIMITS: Readonly<RequestLimits> = Object.freeze({
  pathNormalization: 'BASE',
  escapedSlashes: 'REJECT',
  headersWithUnderscores: 'REJECT',
  maxHeaderBytes: 60 * 1024,
  maxHeadersCount: 100,
  maxRequestBodyBytes: 1024 * 1024 * 1024,
  headersTimeoutMs: 30_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 75_000,
  maxConnections: 10_000,
  maxConcurrentStreams: 100,
  numTrustedProxies: 0,
  overload: Object.freeze({ maxEventLoopDelayMs: 1000, maxHeapUsedBytes: Math.floor(getHeapStatistics().heap_size_limit * 0.95), maxRssBytes: 0, sampleIntervalMs: 1000 })
})

/** Defaults filled in; `overload` merges field by field unless it is `false`. */
export function resolveLimits (partial: Partial<RequestLimits> | undefined): RequestLimits {
  const out = { ...DEFAULT_LIMITS, ...partial } as RequestLimits
  if (partial?.overload !== undefined && partial.overload !== false) out.overload = { ...(DEFAULT_LIMITS.overload as OverloadOptions), ...partial.overload }
  return out
}

