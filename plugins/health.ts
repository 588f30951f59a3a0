import { lookup } from 'node:dns/promises'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { type OutgoingHttpHeaders, type SecureClientSessionOptions, connect as h2connect } from 'node:http2'
import { connect, isIP } from 'node:net'
import type { ClientTLSSettings } from '../src/config/model.js'
import type { RuntimeState } from '../src/runtime/state.js'
import { type HostHealth, Flag } from '../src/upstream/endpoint.js'
import { type ProbeConfig, type ProbeTransport, applyProbeResult, probeTransport } from '../src/upstream/probe.js'
import { upstreamTlsOptions } from './tls.js'

/** How often names of DNS endpoints are re-resolved. */
export const DNS_REFRESH_MS = 5000

interface ProbeTarget {
  host: HostHealth
  address: string
  port: number
  config: ProbeConfig
  /** What the probe speaks (src/upstream/probe-config.ts `probeTransport`). */
  transport: ProbeTransport
  /** The cluster's TLS settings, when the probe uses them (`h2`, and `https1` of a TLS cluster's serving port). */
  tls?: ClientTLSSettings
  timer?: NodeJS.Timeout
  running: boolean
}

type WantedProbe = Omit<ProbeTarget, 'timer' | 'running'>

/** What restarts a probe when it changes. */
function probeKey (p: WantedProbe): string {
  return JSON.stringify([p.config, p.transport, p.tls])
}

/**
 * The health writers that do I/O: active probes (TCP connect or HTTP GET) per endpoint, DNS
 * re-resolution of named endpoints, and each cluster's outlier-detection interval sweep.
 * `sync()` runs after every snapshot swap: new endpoints start probing, removed ones stop.
 */
export class HealthChecker {
  private readonly probes = new Map<string, ProbeTarget>()
  private readonly sweeps = new Map<string, { timer: NodeJS.Timeout; interval: number }>()
  private readonly dns = new Map<string, NodeJS.Timeout>()
  private closed = false

  private readonly lookupName: (name: string) => Promise<unknown>
  private readonly dnsRefreshMs: number

  /**
   * `opts.lookup` resolves endpoint names (default: the system resolver, as undici uses when it
   * connects); `opts.dnsRefreshMs` is the re-resolution period (default {@link DNS_REFRESH_MS}).
   */
  constructor (private readonly runtime: RuntimeState, opts: { lookup?: (name: string) => Promise<unknown>; dnsRefreshMs?: number } = {}) {
    this.lookupName = opts.lookup ?? (name => lookup(name))
    this.dnsRefreshMs = opts.dnsRefreshMs ?? DNS_REFRESH_MS
  }

  sync (): void {
    if (this.closed) return
    const wanted = new Map<string, WantedProbe>()
    const sweeps = new Map<string, number>()
    for (const c of this.runtime.allClusters()) {
      const { probe, upstreamProtocol, policy } = c.spec
      // TLS when the cluster's connections are (as the endpoint origin is chosen).
      const cluster = { http2: upstreamProtocol !== undefined, tls: policy.tls?.mode === 'SIMPLE' || policy.tls?.mode === 'MUTUAL' }
      for (const e of c.endpoints) {
        if (wanted.has(e.key)) continue
        const { transport, clusterTls } = probeTransport(probe, cluster, e.spec.port)
        wanted.set(e.key, { host: e.host, address: e.spec.address, port: e.spec.port, config: probe, transport, ...(clusterTls && policy.tls !== undefined ? { tls: policy.tls } : {}) })
      }
      if (c.outlier !== undefined) sweeps.set(c.spec.name, c.outlier.config.intervalMs)
    }
    for (const [key, p] of this.probes) {
      const w = wanted.get(key)
      if (w === undefined || probeKey(w) !== probeKey(p)) {
        if (p.timer !== undefined) clearTimeout(p.timer)
        this.probes.delete(key)
        const t = this.dns.get(key)
        if (t !== undefined && w === undefined) { clearInterval(t); this.dns.delete(key) }
      }
    }
    for (const [key, w] of wanted) {
      if (this.probes.has(key)) continue
      const p: ProbeTarget = { ...w, running: false }
      this.probes.set(key, p)
      if (w.config.enabled) p.timer = setTimeout(() => this.runProbe(p), w.config.initialDelayMs)
      else { w.host.set(Flag.FailedProbe, false) }
      if (isIP(w.address) === 0 && !this.dns.has(key)) {
        const t = setInterval(() => { void this.resolve(w.host, w.address) }, this.dnsRefreshMs)
        t.unref()
        this.dns.set(key, t)
        void this.resolve(w.host, w.address)
      }
    }
    for (const [name, s] of this.sweeps) {
      if (sweeps.get(name) !== s.interval) { clearInterval(s.timer); this.sweeps.delete(name) }
    }
    for (const [name, interval] of sweeps) {
      if (this.sweeps.has(name)) continue
      const timer = setInterval(() => this.runtime.cluster(name)?.sweep(), interval)
      timer.unref()
      this.sweeps.set(name, { timer, interval })
    }
  }

  /** Probe one target now and report the result (for tests and the admin API). */
  async probeOnce (key: string): Promise<boolean | undefined> {
    const p = this.probes.get(key)
    if (p === undefined) return undefined
    const r = await probe(p)
    applyProbeResult(p.host, r.ok, p.config, Date.now(), r.error)
    return r.ok
  }

  private runProbe (p: ProbeTarget): void {
    if (this.closed || this.probes.get(p.host.key) !== p) return
    p.running = true
    void probe(p).then(r => {
      p.running = false
      if (this.closed || this.probes.get(p.host.key) !== p) return
      applyProbeResult(p.host, r.ok, p.config, Date.now(), r.error)
      p.timer = setTimeout(() => this.runProbe(p), p.config.periodMs)
      p.timer.unref()
    })
  }

  private async resolve (host: HostHealth, name: string): Promise<void> {
    try {
      await this.lookupName(name)
      host.set(Flag.Unresolved, false)
    } catch (err) {
      const code = (err as { code?: string }).code
      // Only a definite "no such name" takes the endpoint out; a transient failure keeps it.
      if (code === 'ENOTFOUND' || code === 'ENODATA') host.set(Flag.Unresolved, true)
    }
  }

  close (): void {
    this.closed = true
    for (const p of this.probes.values()) if (p.timer !== undefined) clearTimeout(p.timer)
    for (const s of this.sweeps.values()) clearInterval(s.timer)
    for (const t of this.dns.values()) clearInterval(t)
    this.probes.clear()
    this.sweeps.clear()
    this.dns.clear()
  }
}

/**
 * One probe: TCP connect, or HTTP GET where 200–399 is success (Kubernetes semantics), over
 * HTTP/1.1 (cleartext or TLS) or, for an HTTP/2 cluster's serving port, over a short-lived HTTP/2 session (h2c, or
 * h2 with the cluster's TLS settings), closed after the answer as the HTTP/1.1 probe's
 * connection is. Timeout, headers and the status rule are the same for all three.
 */
function probe (p: ProbeTarget): Promise<{ ok: boolean; error?: string }> {
  const port = p.config.port ?? p.port
  const timeout = p.config.timeoutMs
  return new Promise(resolve => {
    let done = false
    const finish = (ok: boolean, error?: string): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve({ ok, error })
    }
    const failed = (err: Error): void => finish(false, (err as { code?: string }).code ?? err.message)
    const answered = (s: number): void => finish(s >= 200 && s < 400, s >= 200 && s < 400 ? undefined : `status ${s}`)
    const timer = setTimeout(() => { cleanup(); finish(false, 'timeout') }, timeout)
    let cleanup = (): void => {}
    if (p.transport === 'tcp') {
      const sock = connect({ host: p.address, port })
      cleanup = () => sock.destroy()
      sock.once('connect', () => { sock.destroy(); finish(true) })
      sock.once('error', err => { sock.destroy(); failed(err) })
      return
    }
    if (p.transport === 'h2c' || p.transport === 'h2') {
      let options: SecureClientSessionOptions
      try {
        options = { ...(p.transport === 'h2' ? upstreamTlsOptions(p.tls) ?? {} : {}), ALPNProtocols: ['h2'], settings: { enablePush: false } }
      } catch (err) {
        return failed(err as Error) // a certificate file that cannot be read
      }
      const authority = `${isIP(p.address) === 6 ? `[${p.address}]` : p.address}:${port}`
      const session = h2connect(`${p.transport === 'h2' ? 'https' : 'http'}://${authority}`, options)
      cleanup = () => session.destroy()
      session.once('error', err => { session.destroy(); failed(err) })
      // Host as HTTP/1.1 has it: httpGet.host, else a Host among httpHeaders, else the endpoint.
      const host = p.config.host ?? p.config.headers.find(([k]) => k === 'host')?.[1] ?? authority
      const headers: OutgoingHttpHeaders = { ':method': 'GET', ':path': p.config.path, ':authority': host, 'user-agent': 'meshgate-probe' }
      for (const [k, v] of p.config.headers) if (!NOT_H2.has(k)) headers[k] = v
      let req
      try {
        req = session.request(headers, { endStream: true })
      } catch (err) {
        session.destroy()
        return failed(err as Error) // a header value HTTP/2 refuses
      }
      req.once('response', h => {
        answered(Number(h[':status']))
        // Done with the session: it closes once the body is read (or at the probe timeout).
        session.close()
        setTimeout(() => session.destroy(), timeout).unref()
      })
      req.once('error', (err: Error & { code?: string }) => {
        session.destroy()
        // A failed session cancels its streams; its own error (TLS, refused…) is the cause.
        failed(err.code === 'ERR_HTTP2_STREAM_CANCEL' && err.cause instanceof Error ? err.cause : err)
      })
      req.once('close', () => finish(false, `HTTP/2 stream closed (RST_STREAM ${req.rstCode ?? '?'})`))
      req.resume()
      return
    }
    const headers: Record<string, string> = { 'user-agent': 'meshgate-probe', connection: 'close' }
    for (const [k, v] of p.config.headers) headers[k] = v
    if (p.config.host !== undefined) headers.host = p.config.host
    let tls: Record<string, unknown> | undefined
    try {
      // A TLS cluster's port: its CA, client certificate and SNI. `scheme: HTTPS` alone: TLS
      // without verifying the certificate, as a kubelet's HTTPS probe.
      tls = p.transport !== 'https1' ? undefined : p.tls !== undefined ? upstreamTlsOptions(p.tls) : { rejectUnauthorized: false }
    } catch (err) {
      return failed(err as Error) // a certificate file that cannot be read
    }
    const send = tls === undefined ? httpRequest : httpsRequest
    const req = send({ host: p.address, port, path: p.config.path, method: 'GET', headers, agent: false, ...tls }, res => {
      res.resume()
      answered(res.statusCode ?? 0)
    })
    cleanup = () => req.destroy()
    req.once('error', failed)
    req.end()
  })
}

/** Probe headers HTTP/2 forbids (connection-specific) or carries as `:authority` (Host). */
const NOT_H2 = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te'])
