import { type AddressInfo, type Server, type Socket, createServer } from 'node:net'
import type { Snapshot } from '../../src/compile/snapshot.js'
import { Codes, type Problem } from '../../src/config/problem.js'
import type { RuntimeState } from '../../src/runtime/state.js'
import type { SnapshotStore } from '../../src/runtime/store.js'
import type { AccessLogWriter } from '../access-log.js'
import type { Metrics } from '../metrics.js'
import { proxyConnection } from './proxy.js'

/**
 * The raw TCP listeners (not Fastify): Gateway TCP and TLS-passthrough ports and mesh TCP ports
 * (docs/tcp.md). Each new connection reads the current snapshot once and keeps it, so a reload
 * never cuts an established connection and the next connection uses the new routes. Like the
 * HTTP listeners, the set of ports is fixed until restart (`sameL4Ports`).
 */

export interface TcpListenerOptions {
  store: SnapshotStore
  runtime: RuntimeState
  accessLog: AccessLogWriter
  /** Istio's TCP metrics; none are counted without it. */
  metrics?: Pick<Metrics, 'tcpConnection'>
  /** Address to bind. */
  host: string
  /** Bind port per configured port (tests bind to 0). */
  portMap?: Record<number, number>
  random?: () => number
  now?: () => number
  helloTimeoutMs?: number
}

/** A listener bound to its address, as `RunningGateway.listeners` lists it (HTTP and TCP alike). */
export interface BoundListener {
  name: string
  kind: 'gateway' | 'mesh'
  configPort: number
  host: string
  port: number
  url: string
}

export class TcpListeners {
  readonly bound: BoundListener[] = []
  private readonly servers = new Map<string, Server>()
  private readonly sockets = new Set<Socket>()
  private closing: Promise<void> | undefined

  constructor (private readonly o: TcpListenerOptions) {}

  /** Open a listener for each TCP listener of the snapshot not open yet. */
  async listen (snap: Snapshot): Promise<BoundListener[]> {
    const opened: BoundListener[] = []
    for (const spec of snap.l4 ?? []) {
      const key = `${spec.kind}:${spec.port}`
      if (this.servers.has(key)) continue
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, sock => this.accept(sock, spec.kind, spec.port))
      this.servers.set(key, server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen({ host: this.o.host, port: this.o.portMap?.[spec.port] ?? spec.port }, () => { server.off('error', reject); resolve() })
      })
      const a = server.address() as AddressInfo
      const shown = this.o.host === '0.0.0.0' || this.o.host === '::' ? '127.0.0.1' : this.o.host
      const b = { name: spec.name, kind: spec.kind, configPort: spec.port, host: this.o.host, port: a.port, url: `tcp://${shown.includes(':') ? `[${shown}]` : shown}:${a.port}` }
      this.bound.push(b)
      opened.push(b)
    }
    return opened
  }

  private accept (sock: Socket, kind: 'gateway' | 'mesh', port: number): void {
    if (this.closing !== undefined) { sock.destroy(); return }
    // The snapshot is read once per connection: a reload never changes it half way.
    const snap = this.o.store.current
    const spec = snap.l4?.find(l => l.kind === kind && l.port === port)
    if (spec === undefined) { sock.destroy(); return }
    this.sockets.add(sock)
    sock.once('close', () => this.sockets.delete(sock))
    proxyConnection(sock, spec, snap, {
      runtime: this.o.runtime,
      accessLog: this.o.accessLog,
      ...(this.o.metrics !== undefined ? { metrics: this.o.metrics } : {}),
      random: this.o.random ?? Math.random,
      now: this.o.now ?? Date.now,
      helloTimeoutMs: this.o.helloTimeoutMs ?? 15_000
    })
  }

  /** Open connections (tests, drain). */
  get connections (): number {
    return this.sockets.size
  }

  /**
   * Stop accepting; connections in flight may finish until `deadlineMs`, then they are destroyed.
   */
  close (deadlineMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      const closed = [...this.servers.values()].map(s => new Promise<void>(resolve => s.close(() => resolve())))
      const timer = setTimeout(() => { for (const s of this.sockets) s.destroy() }, deadlineMs)
      timer.unref()
      await Promise.all(closed)
      clearTimeout(timer)
    })()
    return this.closing
  }

  /** Destroy every open connection now (the gateway's hard deadline). */
  destroyAll (): void {
    for (const s of this.sockets) s.destroy()
  }
}

/**
 * TCP listener ports are fixed until restart, as Gateway HTTP ports are: a reload that adds,
 * removes or changes the kind of one is refused (MG0007).
 */
export function sameL4Ports (next: Snapshot, current: Snapshot | undefined): Problem[] {
  if (current === undefined) return []
  const ports = (s: Snapshot): string => (s.l4 ?? []).map(l => `${l.kind}:${l.port}/${l.mode}`).sort().join(',')
  if (ports(next) === ports(current)) return []
  return [{ severity: 'Error', code: Codes.FixedUntilRestart, message: `the set of TCP listener ports changed (${ports(current) || 'none'} → ${ports(next) || 'none'}); listeners are fixed until restart`, file: '-', line: 1, column: 1 }]
}
