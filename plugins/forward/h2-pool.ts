import { type ClientHttp2Session, type SecureClientSessionOptions, connect } from 'node:http2'
import type { PoolLimits } from '../../src/resilience/pool.js'

/**
 * HTTP/2 sessions of one cluster, by endpoint origin: h2c with prior knowledge for `http://`
 * origins, h2 by ALPN for `https://` ones. A stream goes on the least busy live session of its
 * endpoint; a new session is opened while every one has `maxConcurrentStreams` streams and the
 * cluster is under `tcp.maxConnections` sessions for that endpoint (unset: one session per
 * endpoint, multiplexed, as Envoy does). A session that served `maxRequestsPerConnection`
 * streams takes no new ones and closes once its streams end; an idle one closes after the
 * pool's idle timeout.
 */

export interface H2Session {
  session: ClientHttp2Session
  /** Streams open on it now. */
  streams: number
  /** Streams it has carried. */
  total: number
  /** Takes no new stream (closing, failed, or served its quota). */
  dead: boolean
}

export interface H2PoolOptions {
  limits: PoolLimits
  /** `connectionPool.http.maxConcurrentStreams` (0 or absent: no limit of ours). */
  maxConcurrentStreams: number
  /** TLS options for `https://` origins (CA, client certificate, SNI, verification). */
  tls?: Record<string, unknown>
}

const CONNECT_TIMEOUT = 'UND_ERR_CONNECT_TIMEOUT'

export class H2ClusterPool {
  private readonly byOrigin = new Map<string, H2Session[]>()
  /** Every session not yet closed, in rotation or retired. */
  private readonly live = new Set<H2Session>()
  private readonly maxStreams: number
  private closed = false

  constructor (private readonly opts: H2PoolOptions) {
    this.maxStreams = opts.maxConcurrentStreams > 0 ? opts.maxConcurrentStreams : Number.POSITIVE_INFINITY
  }

  /** A session to `origin` for one more stream (counted until `release`). */
  acquire (origin: string): H2Session {
    let list = this.byOrigin.get(origin)
    if (list === undefined) { list = []; this.byOrigin.set(origin, list) }
    let best: H2Session | undefined
    for (const s of list) if (!s.dead && (best === undefined || s.streams < best.streams)) best = s
    if (best === undefined || (best.streams >= this.maxStreams && list.length < this.opts.limits.maxConnections)) best = this.open(origin, list)
    best.streams++
    best.total++
    const quota = this.opts.limits.maxRequestsPerConnection
    if (quota > 0 && best.total >= quota) this.retire(best, origin)
    return best
  }

  /** A stream of `s` closed. */
  release (s: H2Session): void {
    s.streams--
  }

  private open (origin: string, list: H2Session[]): H2Session {
    const { limits, tls } = this.opts
    const options: SecureClientSessionOptions = { ...(tls ?? {}), ALPNProtocols: ['h2'], settings: { enablePush: false } }
    const session = connect(origin, options)
    const s: H2Session = { session, streams: 0, total: 0, dead: false }
    list.push(s)
    this.live.add(s)
    const timer = setTimeout(() => {
      session.destroy(Object.assign(new Error(`connect timeout after ${limits.connectTimeoutMs} ms`), { code: CONNECT_TIMEOUT }))
    }, limits.connectTimeoutMs)
    session.once('connect', () => clearTimeout(timer))
    // Errors reach the streams; the session's own error event must not go unhandled.
    session.on('error', () => {})
    session.once('goaway', () => this.retire(s, origin))
    session.once('close', () => { clearTimeout(timer); this.live.delete(s); this.retire(s, origin) })
    session.setTimeout(Math.min(limits.idleTimeoutMs, 2_147_483_647), () => {
      if (s.streams === 0) { this.retire(s, origin); session.close() }
    })
    return s
  }

  /** Take `s` out of rotation; it closes once its open streams end. */
  private retire (s: H2Session, origin: string): void {
    if (s.dead) return
    s.dead = true
    const list = this.byOrigin.get(origin)
    const i = list?.indexOf(s) ?? -1
    if (i >= 0) list!.splice(i, 1)
    if (list?.length === 0) this.byOrigin.delete(origin)
    if (!s.session.closed && !s.session.destroyed) s.session.close()
  }

  /** Graceful close: streams in flight finish, no new ones start. */
  async close (): Promise<void> {
    this.closed = true
    const all = [...this.live]
    this.byOrigin.clear()
    await Promise.all(all.map(s => new Promise<void>(resolve => {
      s.dead = true
      if (s.session.destroyed) return resolve()
      s.session.close(() => resolve())
    })))
  }

  /** Abort everything now. */
  destroy (): void {
    for (const s of this.live) s.session.destroy()
    this.live.clear()
    this.byOrigin.clear()
  }

  get isClosed (): boolean {
    return this.closed
  }
}
