import type { HTTPRetry } from '../config/model.js'
import { parseDurationMs } from '../config/duration.js'

/**
 * A route's retry and timeout policy, Istio defaults filled in (docs/architecture.md#istio-defaults):
 * no route timeout; 2 attempts on connect-failure, refused-stream, unavailable, cancelled and
 * retriable-status-codes (503); `attempts: 0` disables; retries avoid hosts already tried.
 */
export interface RetryPolicy {
  /** Retries after the first try (0 = none). */
  attempts: number
  /** Per-try timeout; 0 = none (then only the route timeout applies). */
  perTryTimeoutMs: number
  on: ReadonlySet<string>
  statusCodes: ReadonlySet<number>
  ignorePreviousHosts: boolean
  /** Base interval of Envoy's jittered exponential back-off (default 25 ms). */
  backoffBaseMs: number
  /** Some retryOn condition reads `grpc-status` (so a response head must be searched for it). */
  grpc: boolean
}

export interface TimeoutPolicy {
  /** Route timeout (whole request, all tries); 0 = none, Istio's default. */
  timeoutMs: number
}

export const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes'

/** Envoy retry-on names meshgate understands (HTTP and gRPC). */
export const RETRY_ON_NAMES = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx',
  'refused-stream', 'retriable-status-codes', 'retriable-headers', 'http3-post-connect-failure',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'
])

export function retryPolicy (r: HTTPRetry | undefined): RetryPolicy {
  const on = new Set<string>()
  const codes = new Set<number>()
  // Istio keeps its default retryOn (and 503) unless retryOn is a non-empty string (retry.go ConvertPolicy).
  const custom = r?.retryOn !== undefined && r.retryOn !== '' ? r.retryOn : undefined
  const spec = custom ?? DEFAULT_RETRY_ON
  for (const raw of spec.split(',')) {
    const item = raw.trim()
    if (item === '') continue
    if (/^\d{3}$/.test(item)) { codes.add(Number(item)); on.add('retriable-status-codes') } else on.add(item)
  }
  // Istio's default retriable status code is 503 (retry.go DefaultPolicy).
  if (custom === undefined) codes.add(503)
  return {
    // No `retries` block: Istio's default of 2. A block without `attempts` (proto3 zero) or with
    // attempts <= 0 disables retries (retry.go ConvertPolicy: `in.Attempts <= 0` → no policy).
    attempts: r === undefined ? 2 : Math.max(0, r.attempts ?? 0),
    perTryTimeoutMs: r?.perTryTimeout !== undefined ? parseDurationMs(r.perTryTimeout) ?? 0 : 0,
    on,
    statusCodes: codes,
    ignorePreviousHosts: r?.retryIgnorePreviousHosts ?? true,
    backoffBaseMs: r?.backoff !== undefined ? parseDurationMs(r.backoff) ?? 25 : 25,
    grpc: Object.keys(GRPC).some(name => on.has(name))
  }
}

/** What went wrong with one try, for the retry decision. */
export type TryFailure =
  | { kind: 'connect' }
  /** `refused`: an HTTP/2 stream the upstream reset with REFUSED_STREAM (never processed). */
  | { kind: 'reset'; refused?: boolean }
  | { kind: 'timeout' }
  | { kind: 'status'; status: number; grpcStatus?: number }

const GRPC: Record<string, number> = { cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14 }

/** Does the policy retry this failure? (Envoy router retry_state_impl semantics.) */
export function isRetriable (p: RetryPolicy, f: TryFailure): boolean {
  const on = p.on
  switch (f.kind) {
    case 'connect':
      return on.has('connect-failure') || on.has('5xx') || on.has('gateway-error') || on.has('reset') || on.has('reset-before-request')
    case 'reset':
      // A stream the upstream refused (HTTP/2 REFUSED_STREAM) is Envoy's remote refused stream
      // reset: retried by `refused-stream`, and by the conditions that cover every reset. The
      // request's headers went out, so neither `connect-failure` nor `reset-before-request`
      // covers it. Whatever the method: the upstream did not process the request.
      if (f.refused === true) return on.has('refused-stream') || on.has('reset') || on.has('5xx') || on.has('gateway-error')
      // A connection that closes before any response byte is treated like a connect failure:
      // that is what a stopped workload does to its open connections, and Istio's default
      // policy (connect-failure) then retries elsewhere (issue #3, sample 1).
      return on.has('reset') || on.has('5xx') || on.has('gateway-error') || on.has('connect-failure') || on.has('reset-before-request')
    case 'timeout':
      // A per-try timeout counts as 5xx/gateway-error/reset for retry purposes.
      return on.has('5xx') || on.has('gateway-error') || on.has('reset')
    case 'status': {
      const s = f.status
      if (on.has('5xx') && s >= 500) return true
      if (on.has('gateway-error') && (s === 502 || s === 503 || s === 504)) return true
      if (on.has('retriable-4xx') && s === 409) return true
      if (on.has('retriable-status-codes') && p.statusCodes.has(s)) return true
      if (f.grpcStatus !== undefined) {
        for (const [name, code] of Object.entries(GRPC)) if (code === f.grpcStatus && on.has(name)) return true
      }
      return false
    }
  }
}

/** Envoy's back-off: random in [0, base × 2^n), capped at 10 × base. */
export function backoffMs (p: RetryPolicy, retry: number, random: () => number): number {
  const ceiling = Math.min(p.backoffBaseMs * 2 ** retry, p.backoffBaseMs * 10)
  return Math.floor(random() * ceiling)
}
