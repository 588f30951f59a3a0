/**
 * Active health probe of a service's endpoints: the analogue of Kubernetes readiness, which is
 * what takes a stopped pod out of its subset in Istio. Configured per ServiceEntry with the
 * annotation `meshgate.io/probe`, in the shape of Istio's WorkloadGroup `probe`
 * (workload_group.proto ReadinessProbe), as JSON or YAML:
 *
 *   meshgate.io/probe: '{"httpGet": {"path": "/health"}, "periodSeconds": 1, "failureThreshold": 2}'
 *
 * Fractional seconds are accepted. `"off"` disables probing. Default: TCP connect every 1 s,
 * 1 s timeout, unhealthy after 2 failures, healthy after 1 success — a stopped endpoint
 * leaves its subset within about 2 s (at once if a request meets the refused connection).
 */
export interface ProbeConfig {
  enabled: boolean
  kind: 'tcp' | 'http'
  /** HTTP path for `httpGet`. */
  path: string
  /** Probe port; undefined = the endpoint's port. */
  port?: number
  /** Host header for HTTP probes. */
  host?: string
  headers: Array<[string, string]>
  initialDelayMs: number
  periodMs: number
  timeoutMs: number
  successThreshold: number
  failureThreshold: number
}

export const PROBE_ANNOTATION = 'meshgate.io/probe'

export const DEFAULT_PROBE: ProbeConfig = Object.freeze({
  enabled: true,
  kind: 'tcp',
  path: '/',
  headers: [],
  initialDelayMs: 0,
  periodMs: 1000,
  timeoutMs: 1000,
  successThreshold: 1,
  failureThreshold: 2
})

const KNOWN = new Set(['initialDelaySeconds', 'timeoutSeconds', 'periodSeconds', 'successThreshold', 'failureThreshold', 'httpGet', 'tcpSocket', 'exec'])

/** Parse an annotation value already decoded from JSON/YAML. Returns the config or an error message. */
export function probeConfig (raw: unknown): { config: ProbeConfig } | { error: string } {
  if (raw === undefined || raw === null) return { config: DEFAULT_PROBE }
  if (raw === 'off' || raw === false) return { config: { ...DEFAULT_PROBE, enabled: false } }
  if (typeof raw !== 'object' || Array.isArray(raw)) return { error: 'must be an object like WorkloadGroup probe, or "off"' }
  const o = raw as Record<string, unknown>
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) return { error: `unknown field "${k}"` }
  if (o.exec !== undefined) return { error: '"exec" probes cannot run outside Kubernetes; use httpGet or tcpSocket' }
  const sec = (k: string, d: number): number | string => {
    const v = o[k]
    if (v === undefined) return d
    return typeof v === 'number' && v >= 0 ? v * 1000 : `"${k}" must be a non-negative number of seconds`
  }
  const int = (k: string, d: number): number | string => {
    const v = o[k]
    if (v === undefined) return d
    return typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : `"${k}" must be an integer >= 1`
  }
  const fields = {
    initialDelayMs: sec('initialDelaySeconds', DEFAULT_PROBE.initialDelayMs),
    periodMs: sec('periodSeconds', DEFAULT_PROBE.periodMs),
    timeoutMs: sec('timeoutSeconds', DEFAULT_PROBE.timeoutMs),
    successThreshold: int('successThreshold', DEFAULT_PROBE.successThreshold),
    failureThreshold: int('failureThreshold', DEFAULT_PROBE.failureThreshold)
  }
  for (const v of Object.values(fields)) if (typeof v === 'string') return { error: v }
  const cfg: ProbeConfig = { ...DEFAULT_PROBE, ...(fields as Record<string, number>), headers: [] }
  if (cfg.periodMs < 50) return { error: '"periodSeconds" must be at least 0.05' }
  // A zero timeout would fail every probe and take every endpoint out (Kubernetes' minimum is 1 s).
  if (cfg.timeoutMs <= 0) return { error: '"timeoutSeconds" must be greater than 0' }
  const http = o.httpGet as Record<string, unknown> | undefined
  const tcp = o.tcpSocket as Record<string, unknown> | undefined
  if (http !== undefined && tcp !== undefined) return { error: 'set one of httpGet and tcpSocket' }
  if (http !== undefined) {
    cfg.kind = 'http'
    cfg.path = typeof http.path === 'string' && http.path.startsWith('/') ? http.path : '/'
    if (typeof http.port === 'number') cfg.port = http.port
    if (typeof http.host === 'string') cfg.host = http.host
    if (Array.isArray(http.httpHeaders)) {
      cfg.headers = http.httpHeaders.map(h => [String((h as { name: unknown }).name).toLowerCase(), String((h as { value: unknown }).value)])
    }
  } else if (tcp !== undefined && typeof tcp.port === 'number') {
    cfg.port = tcp.port
  }
  return { config: cfg }
}

/** What a probe speaks: a TCP connect, or an HTTP GET over HTTP/1.1, h2c or h2 (TLS, ALPN). */
export type ProbeTransport = 'tcp' | 'http1' | 'h2c' | 'h2'

/**
 * The transport of one endpoint's probe. An `httpGet` probe of the port the cluster serves
 * speaks the cluster's protocol (`upstream`: its compiled upstream protocol, absent for
 * HTTP/1.1): an HTTP/2-only or gRPC server would refuse an HTTP/1.1 request. A probe of another
 * port (`httpGet.port`), a separate health port as a kubelet probes it, speaks HTTP/1.1.
 */
export function probeTransport (cfg: ProbeConfig, upstream: 'h2c' | 'h2' | undefined, endpointPort: number): ProbeTransport {
  if (cfg.kind === 'tcp') return 'tcp'
  if (upstream === undefined || (cfg.port !== undefined && cfg.port !== endpointPort)) return 'http1'
  return upstream
}
