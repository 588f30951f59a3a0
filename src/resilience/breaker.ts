import CircuitBreaker from 'opossum'
import type { OutlierDetection } from '../config/model.js'
import { parseDurationMs } from '../config/duration.js'

/**
 * Error-rate circuit breaker settings. Istio has no field for an error-rate breaker, so they
 * come from the DestinationRule annotation `meshgate.io/circuit-breaker` (JSON or YAML flow):
 *   {"errorThresholdPercentage": 50, "volumeThreshold": 20, "resetTimeout": "30s", "rollingCountTimeout": "10s", "enabled": true}
 * The breaker is on when the DestinationRule has `outlierDetection` or the annotation (unless it
 * says `enabled: false`). Defaults follow the DestinationRule: `outlierDetection.baseEjectionTime` → resetTimeout,
 * `outlierDetection.interval` → rollingCountTimeout; opossum's own timeout is always off
 * (the route timeout rules, as in Istio).
 */
export interface BreakerConfig {
  enabled: boolean
  errorThresholdPercentage: number
  volumeThreshold: number
  resetTimeoutMs: number
  rollingCountTimeoutMs: number
}

export const BREAKER_ANNOTATION = 'meshgate.io/circuit-breaker'

/** Build the breaker config from the annotation value (already parsed) and the outlier settings. */
export function breakerConfig (annotation: Record<string, unknown> | undefined, od: OutlierDetection | undefined): BreakerConfig {
  const dur = (v: unknown, d: number): number => (typeof v === 'string' ? parseDurationMs(v) ?? d : typeof v === 'number' ? v : d)
  const num = (v: unknown, d: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : d)
  return {
    // Istio ejects hosts only with outlierDetection: without it a host answering 500 keeps its
    // traffic. The breaker follows: on with outlierDetection, or when the annotation asks for it.
    enabled: annotation !== undefined ? annotation.enabled !== false : od !== undefined,
    errorThresholdPercentage: num(annotation?.errorThresholdPercentage, 50),
    volumeThreshold: num(annotation?.volumeThreshold, 20),
    resetTimeoutMs: dur(annotation?.resetTimeout, parseDurationMs(od?.baseEjectionTime ?? '30s') ?? 30_000),
    rollingCountTimeoutMs: dur(annotation?.rollingCountTimeout, parseDurationMs(od?.interval ?? '10s') ?? 10_000)
  }
}

export type BreakerState = 'closed' | 'open' | 'halfOpen'

const NO_ARGS: unknown[] = []
/** A failed action's promise, shared (its rejection is handled once here). */
const FAILED: Promise<void> = Promise.reject(new Error('upstream failure'))
FAILED.catch(() => {})

/**
 * One opossum breaker for one endpoint of one cluster. It wraps the dispatch decision, never
 * the response stream: `begin()` asks for admission and returns the function that reports
 * the outcome once response headers (or an error) arrive. Half-open lets one trial through
 * (opossum's pending-close state).
 */
export class EndpointBreaker {
  private readonly cb: CircuitBreaker<[Promise<void>], void>

  constructor (readonly config: BreakerConfig, onState: (state: BreakerState) => void) {
    this.cb = new CircuitBreaker((p: Promise<void>) => p, {
      timeout: false,
      errorThresholdPercentage: config.errorThresholdPercentage,
      volumeThreshold: config.volumeThreshold,
      resetTimeout: config.resetTimeoutMs,
      rollingCountTimeout: config.rollingCountTimeoutMs,
      rollingCountBuckets: 10,
      enabled: config.enabled
    })
    this.cb.on('open', () => onState('open'))
    this.cb.on('halfOpen', () => onState('halfOpen'))
    this.cb.on('close', () => onState('closed'))
  }

  get state (): BreakerState {
    return this.cb.opened ? 'open' : this.cb.halfOpen ? 'halfOpen' : 'closed'
  }

  /** Would a request be let through now? (Closed, or half-open with no trial yet.) */
  get admits (): boolean {
    return this.cb.closed || this.cb.pendingClose
  }

  /**
   * Admit one request; undefined when refused. Call the result with the outcome.
   *
   * A closed breaker admits without a promise: a success is reported as the `fire` and
   * `success` events opossum's own call emits for a resolved action (its rolling counters and
   * the half-open → closed transition listen to exactly these), and a failure goes through
   * opossum's `fire` with a rejected action, so the error-rate check and the transition to open
   * stay opossum's. Half-open trials always go through `fire`. A request admitted while closed
   * whose failure arrives after the breaker opened is counted by opossum as a rejection rather
   * than a failure; the state is the same either way (open). The promise path per request was a
   * measurable share of the request path's CPU.
   */
  begin (): ((ok: boolean) => void) | undefined {
    if (this.cb.closed) return this.settleClosed
    if (!this.admits) return undefined
    let settle!: (ok: boolean) => void
    const p = new Promise<void>((resolve, reject) => {
      settle = ok => (ok ? resolve() : reject(new Error('upstream failure')))
    })
    this.cb.fire(p).catch(() => { /* outcome already counted by opossum */ })
    return settle
  }

  /** The outcome of a request admitted while closed (one function per breaker, not per request). */
  private readonly settleClosed = (ok: boolean): void => {
    if (ok) {
      this.cb.emit('fire', NO_ARGS)
      this.cb.emit('success', undefined, 0)
      return
    }
    this.cb.fire(FAILED).catch(() => { /* counted by opossum */ })
  }

  stats (): { fires: number; failures: number; successes: number; rejects: number } {
    const s = this.cb.stats
    return { fires: s.fires, failures: s.failures, successes: s.successes, rejects: s.rejects }
  }

  shutdown (): void {
    this.cb.shutdown()
  }
}
