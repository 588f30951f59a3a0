// TCP test parts: echo servers on loopback that greet with their name, a client that sends bytes
// and half-closes, and YAML for TCP services.
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net'
import type { Teardown } from '../../helpers/gateway.js'

export interface EchoServer {
  name: string
  port: number
  server: Server
  /** Connections accepted so far. */
  accepted: number
  /** Connections open now. */
  open: Set<Socket>
  close: () => Promise<void>
}

/** A TCP server that writes `NAME:` on connect, echoes every byte, and ends when the client ends. */
export async function echoServer (t: Teardown, name: string): Promise<EchoServer> {
  const open = new Set<Socket>()
  const e: EchoServer = { name, port: 0, server: createServer({ allowHalfOpen: true }), accepted: 0, open, close: async () => {} }
  e.server.on('connection', sock => {
    e.accepted++
    open.add(sock)
    sock.once('close', () => open.delete(sock))
    sock.on('error', () => sock.destroy())
    sock.write(`${name}:`)
    sock.on('data', c => sock.write(c))
    sock.on('end', () => sock.end())
  })
  await new Promise<void>(resolve => e.server.listen(0, '127.0.0.1', resolve))
  e.port = (e.server.address() as AddressInfo).port
  let closed = false
  e.close = async () => {
    if (closed) return
    closed = true
    for (const s of open) s.destroy()
    await new Promise(resolve => e.server.close(resolve))
  }
  t.teardown(() => e.close())
  return e
}

export interface Exchange {
  /** Everything received before the connection closed. */
  data: string
  /** Whether the peer closed the connection before any byte was received. */
  refused: boolean
}

/**
 * Connect, send `send`, half-close, and collect the answer until the connection closes (or
 * `timeoutMs`, then it is destroyed).
 */
export function exchange (port: number, send = 'ping', opts: { localAddress?: string; host?: string; timeoutMs?: number } = {}): Promise<Exchange> {
  return new Promise(resolve => {
    const sock = connect({ host: opts.host ?? '127.0.0.1', port, allowHalfOpen: true, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) })
    let data = ''
    const timer = setTimeout(() => sock.destroy(), opts.timeoutMs ?? 5000)
    sock.on('data', c => { data += c.toString() })
    sock.on('error', () => {})
    sock.once('connect', () => { sock.end(send) })
    sock.once('close', () => { clearTimeout(timer); resolve({ data, refused: data === '' }) })
  })
}

/** An open connection to keep (UO, reload, idle tests): resolves once the greeting arrived. */
export function openConnection (port: number): Promise<{ sock: Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: '127.0.0.1', port })
    let data = ''
    const closed = new Promise<void>(res => sock.once('close', () => res()))
    sock.on('error', () => {})
    sock.on('data', c => {
      const first = data === ''
      data += c.toString()
      if (first) resolve({ sock, received: () => data, closed })
    })
    sock.once('close', () => { if (data === '') reject(new Error('closed before the greeting')) })
  })
}

/** A ServiceEntry for a TCP service on loopback: `{ subsetLabel: port }` endpoints, probes off. */
export function tcpServiceEntry (host: string, endpoints: Record<string, number>, opts: { servicePort?: number; protocol?: string; annotations?: Record<string, string> } = {}): string {
  const annotations = { 'meshgate.io/probe': 'off', ...opts.annotations }
  const eps = Object.entries(endpoints).map(([version, port]) => `
  - address: 127.0.0.1
    ports: { tcp: ${port} }
    labels: { app: ${host}, version: ${version} }`).join('')
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${host}
  annotations:
${Object.entries(annotations).map(([k, v]) => `    ${k}: '${v}'`).join('\n')}
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  ports:
  - { number: ${opts.servicePort ?? 9000}, name: tcp, protocol: ${opts.protocol ?? 'TCP'} }
  resolution: STATIC
  endpoints:${eps.length > 0 ? eps : ' []'}
`
}

/** A Gateway `tcp-gw` with one TCP server per port. */
export function tcpGateway (ports: number[], name = 'tcp-gw'): string {
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: ${name} }
spec:
  selector: { istio: ingressgateway }
  servers:
${ports.map(p => `  - port: { number: ${p}, name: tcp-${p}, protocol: TCP }
    hosts: ["*"]`).join('\n')}
`
}

/** Subsets named after the endpoints' `version` label. */
export function subsets (host: string, names: string[], trafficPolicy = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${host} }
spec:
  host: ${host}
${trafficPolicy}  subsets:
${names.map(n => `  - { name: ${n}, labels: { version: ${n} } }`).join('\n')}
`
}
