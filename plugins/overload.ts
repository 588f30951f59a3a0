import { monitorEventLoopDelay } from 'node:perf_hooks'

/** Thresholds of the overload guard; 0 turns one off. */
export interface OverloadThresholds {
  /** Mean event-loop delay over a sample interval above which requests are shed (ms). */
  maxEventLoopDelayMs: number
  /** Heap used above which requests are shed (bytes). */
  maxHeapUsedBytes: number
  /** Resident set size above which requests are shed (bytes). */
  maxRssBytes: number
  /** How often the guard samples (ms). */
  sampleIntervalMs: number
}

/** Resolution of the event-loop delay histogram (ms), subtracted from its mean as under-pressure does. */
const RESOLUTION_MS = 10

/**
 * Envoy's overload manager in miniature (what `@fastify/under-pressure` does, sampled the same
 * way): a timer samples the event-loop delay, heap and RSS, and `reason` names the first
 * threshold exceeded, or is undefined. The request path reads one field: under-pressure's own
 * hook reads `request.routeOptions`, which Fastify builds anew on every access, and the CPU
 * profile showed it as a top cost of a proxied request.
 */
export class OverloadGuard {
  /** Why requests are being shed right now (`eventLoopDelay`, `heapUsedBytes`, `rssBytes`), else undefined. */
  reason: string | undefined
  private readonly histogram: ReturnType<typeof monitorEventLoopDelay>
  private readonly timer: NodeJS.Timeout
  private readonly interval: number
  private last = performance.now()

  constructor (private readonly t: OverloadThresholds) {
    this.histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
    this.histogram.enable()
    this.interval = Math.max(RESOLUTION_MS, t.sampleIntervalMs)
    this.timer = setTimeout(() => { this.sample(); this.timer.refresh() }, this.interval)
    this.timer.unref()
  }

  private sample (): void {
    let delay = Math.max(0, this.histogram.mean / 1e6 - RESOLUTION_MS)
    // No sample at all: the loop was blocked for the whole interval.
    if (Number.isNaN(delay)) delay = Infinity
    this.histogram.reset()
    // This timer's own lateness: when it runs before the histogram's timer has recorded the stall
    // that just ended (both are due in the same turn of the loop), the histogram misses it.
    const now = performance.now()
    delay = Math.max(delay, now - this.last - this.interval)
    this.last = now
    const mem = process.memoryUsage()
    const t = this.t
    if (t.maxEventLoopDelayMs > 0 && delay > t.maxEventLoopDelayMs) this.reason = 'eventLoopDelay'
    else if (t.maxHeapUsedBytes > 0 && mem.heapUsed > t.maxHeapUsedBytes) this.reason = 'heapUsedBytes'
    else if (t.maxRssBytes > 0 && mem.rss > t.maxRssBytes) this.reason = 'rssBytes'
    else this.reason = undefined
  }

  close (): void {
    clearTimeout(this.timer)
    this.histogram.disable()
  }
}
