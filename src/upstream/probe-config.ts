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
  /** `httpGet.scheme`: HTTPS probes over TLS (without verifying the certificate, as a kubelet does). */
  scheme: 'HTTP' | 'HTTPS'
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
  scheme: 'HTTP',
  headers: [],
  initialDelayMs: 0,
  periodMs: 1000,
  timeoutMs: 1000,
  successThreshold: 1,
  failureThreshold: 2
})

const KNOWN = new Set(['initialDelaySeconds', 'timeoutSeconds', 'periodSeconds', 'successThreshold', 'failureThreshold', 'httpGet', 'tcpSocket', 'exec'])
/** WorkloadGroup's HTTPHealthCheckConfig fields. */
const KNOWN_HTTP = new Set(['path', 'port', 'host', 'scheme', 'httpHeaders'])

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
    for (const k of Object.keys(http)) if (!KNOWN_HTTP.has(k)) return { error: `unknown field "httpGet.${k}"` }
    cfg.kind = 'http'
    if (http.scheme !== undefined) {
      const scheme = typeof http.scheme === 'string' ? http.scheme.toUpperCase() : ''
      if (scheme !== 'HTTP' && scheme !== 'HTTPS') return { error: '"httpGet.scheme" must be HTTP or HTTPS' }
      cfg.scheme = scheme
    }
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

/** What a probe speaks: a TCP connect, or an HTTP GET over HTTP/1.1 (cleartext or TLS), h2c or h2 (TLS, ALPN). */
export type ProbeTransport = 'tcp' | 'http1' | 'https1' | 'h2c' | 'h2'

/** A probe's transport, and whose TLS settings it uses: the cluster's, or none (unverified TLS, or cleartext). */
export interface ProbePlan {
  transport: ProbeTransport
  clusterTls: boolean
}

/**
 * How one endpoint is probed. An `httpGet` probe of the port the cluster serves speaks what the
 * cluster's requests speak there: HTTP/2 when the cluster's upstream protocol is (an HTTP/2-only
 * or gRPC server would refuse an HTTP/1.1 request), and TLS with the cluster's certificates when
 * the cluster originates SIMPLE or MUTUAL TLS (the port takes nothing else). A probe of another
 * port (`httpGet.port`), a separate health port as a kubelet probes it, speaks HTTP/1.1, over TLS
 * when `httpGet.scheme` is HTTPS; so does `scheme: HTTPS` on a cleartext HTTP/1.1 cluster's port.
 */
export function probeTransport (cfg: ProbeConfig, cluster: { http2: boolean; tls: boolean }, endpointPort: number): ProbePlan {
  if (cfg.kind === 'tcp') return { transport: 'tcp', clusterTls: false }
  if (cfg.port === undefined || cfg.port === endpointPort) {
    if (cluster.http2) return { transport: cluster.tls ? 'h2' : 'h2c', clusterTls: cluster.tls }
    if (cluster.tls) return { transport: 'https1', clusterTls: true }
  }
  return { transport: cfg.scheme === 'HTTPS' ? 'https1' : 'http1', clusterTls: false }
}
