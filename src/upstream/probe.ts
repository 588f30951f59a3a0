import { type HostHealth, Flag } from './endpoint.js'

import type { ProbeConfig } from './probe-config.js'

export { DEFAULT_PROBE, PROBE_ANNOTATION, type ProbeConfig, type ProbePlan, type ProbeTransport, probeConfig, probeTransport } from './probe-config.js'

/**
 * Apply one probe result to a host: `failureThreshold` consecutive failures set FailedProbe,
 * `successThreshold` consecutive successes clear it (and clear FailedConnect, which a refused
 * request set). Returns true when the host's flags changed.
 */
export function applyProbeResult (host: HostHealth, ok: boolean, cfg: ProbeConfig, now: number, error = ''): boolean {
  const before = host.flags
  host.lastProbeAt = now
  host.lastProbeError = ok ? '' : error
  if (ok) {
    host.probeFailures = 0
    host.probeSuccesses++
    if (host.probeSuccesses >= cfg.successThreshold) {
      host.set(Flag.FailedProbe, false)
      host.set(Flag.FailedConnect, false)
    }
  } else {
    host.probeSuccesses = 0
    host.probeFailures++
    if (host.probeFailures >= cfg.failureThreshold) host.set(Flag.FailedProbe, true)
  }
  return host.flags !== before
}
