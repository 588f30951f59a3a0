import type { OutlierDetection } from '../config/model.js'
import { parseDurationMs } from '../config/duration.js'
import { type EndpointState, Flag } from './endpoint.js'

/** Outlier detection settings with Istio's defaults filled in (destination_rule.proto, Envoy outlier_detection.proto). */
export interface OutlierConfig {
  /** Consecutive 5xx (and, unless split, local-origin failures) before ejection; 0 disables. Default 5. */
  consecutive5xx: number
  /** Consecutive 502/503/504 (and, unless split, local-origin failures); 0 disables (the default). */
  consecutiveGateway: number
  /** With `splitExternalLocalOriginErrors`: consecutive local-origin failures; default 5. */
  consecutiveLocal: number
  split: boolean
  intervalMs: number
  baseEjectionMs: number
  /** Envoy's max_ejection_time default (300 s), or the base time when that is larger. */
  maxEjectionMs: number
  maxEjectionPercent: number
  /** Panic threshold: below this percentage of healthy hosts, route to every present host. Istio default 0. */
  minHealthPercent: number
}

const positive = (n: number | undefined, d: number): number => (n !== undefined && n > 0 ? n : d)

/** Istio's translation of `outlierDetection`; undefined when the DestinationRule sets none (no detection). */
export function outlierConfig (od: OutlierDetection | undefined): OutlierConfig | undefined {
  if (od === undefined) return undefined
  const base = parseDurationMs(od.baseEjectionTime ?? '30s') ?? 30_000
  return {
    consecutive5xx: od.consecutive5xxErrors ?? (od.consecutiveErrors !== undefined ? 0 : 5),
    // The deprecated `consecutiveErrors` meant gateway errors (Istio maps it to consecutive_gateway_failure).
    consecutiveGateway: od.consecutiveGatewayErrors ?? od.consecutiveErrors ?? 0,
    // Istio passes consecutiveLocalOriginFailures and maxEjectionPercent only when > 0; otherwise
    // Envoy's defaults (5 and 10%) apply (cluster_traffic_policy.go applyOutlierDetection).
    consecutiveLocal: positive(od.consecutiveLocalOriginFailures, 5),
    split: od.splitExternalLocalOriginErrors === true,
    intervalMs: parseDurationMs(od.interval ?? '10s') ?? 10_000,
    baseEjectionMs: base,
    maxEjectionMs: Math.max(300_000, base),
    maxEjectionPercent: positive(od.maxEjectionPercent, 10),
    minHealthPercent: od.minHealthPercent ?? 0
  }
}

/** The result of one request to one endpoint, as outlier detection sees it. */
export type Outcome =
  | { kind: 'response'; status: number }
  /** Failure originating locally: connect failure, timeout, reset before a response. */
  | { kind: 'local'; error: 'connect' | 'timeout' | 'reset' }

/**
 * Envoy's outlier detector for one cluster: consecutive-error ejection at once, un-ejection and
 * ejection-count decay on each interval sweep. Time is injected, so tests use a fake clock.
 */
export class OutlierDetector {
  constructor (readonly config: OutlierConfig, private readonly now: () => number) {}

  /**
   * Record an outcome; returns true when the endpoint was ejected by it.
   * `members` are the cluster's endpoints (for maxEjectionPercent).
   */
  record (ep: EndpointState, outcome: Outcome, members: readonly EndpointState[]): boolean {
    const c = this.config
    let status: number
    if (outcome.kind === 'local') {
      if (c.split) {
        ep.consecutiveLocal++
        if (c.consecutiveLocal > 0 && ep.consecutiveLocal >= c.consecutiveLocal) return this.eject(ep, members, 'local')
        return false
      }
      // Not split: local failures count as the 5xx Envoy would answer (503 connect/reset, 504 timeout).
      status = outcome.error === 'timeout' ? 504 : 503
    } else {
      status = outcome.status
      // Split: any response means the connection succeeded (Envoy LocalOriginConnectSuccess),
      // which resets the local-origin counter even when the status is a 5xx.
      if (c.split) ep.consecutiveLocal = 0
    }
    if (status >= 500) {
      ep.consecutive5xx++
      if (status === 502 || status === 503 || status === 504) ep.consecutiveGateway++
      else ep.consecutiveGateway = 0
    } else {
      ep.consecutive5xx = 0
      ep.consecutiveGateway = 0
      if (!c.split) ep.consecutiveLocal = 0
      return false
    }
    if (c.consecutive5xx > 0 && ep.consecutive5xx >= c.consecutive5xx && this.eject(ep, members, '5xx')) return true
    if (c.consecutiveGateway > 0 && ep.consecutiveGateway >= c.consecutiveGateway) return this.eject(ep, members, 'gateway')
    return false
  }

  /**
   * Eject unless maxEjectionPercent forbids it. Envoy checks the share already ejected before
   * ejecting, and always allows one host (docs/architecture.md#outlier-detection-defaults). As in Envoy
   * (onConsecutiveErrorWorker), the counter that fired is reset even when the ejection is
   * refused, so a refused host needs another full run of errors, not one more.
   */
  private eject (ep: EndpointState, members: readonly EndpointState[], kind: '5xx' | 'gateway' | 'local'): boolean {
    if ((ep.flags & Flag.Ejected) !== 0) return false
    const ejected = members.reduce((n, m) => n + ((m.flags & Flag.Ejected) !== 0 ? 1 : 0), 0)
    if (ejected > 0 && (ejected * 100) / members.length >= this.config.maxEjectionPercent) {
      if (kind === '5xx') ep.consecutive5xx = 0
      else if (kind === 'gateway') ep.consecutiveGateway = 0
      else ep.consecutiveLocal = 0
      return false
    }
    ep.ejections++
    ep.flags |= Flag.Ejected
    ep.ejectedUntil = this.now() + Math.min(this.config.baseEjectionMs * ep.ejections, this.config.maxEjectionMs)
    ep.consecutive5xx = 0
    ep.consecutiveGateway = 0
    ep.consecutiveLocal = 0
    return true
  }

  /** The interval sweep: un-eject hosts whose time is up; decay the count of healthy ones. Returns true on change. */
  sweep (members: readonly EndpointState[]): boolean {
    const now = this.now()
    let changed = false
    for (const m of members) {
      if ((m.flags & Flag.Ejected) !== 0) {
        if (now >= m.ejectedUntil) {
          m.flags &= ~Flag.Ejected
          m.ejectedUntil = 0
          changed = true
        }
      } else if (m.ejections > 0) {
        m.ejections--
      }
    }
    return changed
  }
}
