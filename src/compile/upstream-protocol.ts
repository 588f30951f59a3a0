import type { ServicePort, TrafficPolicy } from '../config/model.js'

/**
 * The protocol a cluster speaks to its endpoints:
 * - `http1`: HTTP/1.1 (plain or TLS), the default;
 * - `h2c`: HTTP/2 over cleartext, with prior knowledge (no Upgrade dance, as Envoy's upstream codec);
 * - `h2`: HTTP/2 over TLS, negotiated by ALPN.
 */
export type UpstreamProtocol = 'http1' | 'h2c' | 'h2'

/** Port protocols Istio runs as HTTP/2 upstream. */
const H2_PROTOCOLS = new Set(['HTTP2', 'GRPC', 'GRPC-WEB'])

/**
 * The port's protocol as Istio selects it: the declared `protocol`, else the port name's prefix
 * (`<protocol>[-<suffix>]`: `grpc-api`, `http2`, `grpc-web-x`), upper-cased; undefined when neither
 * says anything (Istio then sniffs; meshgate treats such ports as HTTP/1.1).
 */
export function portProtocol (port: Pick<ServicePort, 'name' | 'protocol'>): string | undefined {
  if (port.protocol !== undefined && port.protocol !== '') return port.protocol.toUpperCase()
  const name = port.name?.toLowerCase() ?? ''
  if (name === 'grpc-web' || name.startsWith('grpc-web-')) return 'GRPC-WEB'
  for (const p of ['grpc', 'http2', 'https', 'http', 'tcp', 'tls', 'mongo', 'redis', 'mysql']) {
    if (name === p || name.startsWith(`${p}-`)) return p.toUpperCase()
  }
  return undefined
}

/**
 * The upstream protocol of a cluster: HTTP/2 for HTTP2/GRPC/GRPC-WEB ports, and for HTTP ports
 * whose DestinationRule says `connectionPool.http.h2UpgradePolicy: UPGRADE` (Istio's
 * `DO_NOT_UPGRADE`/`DEFAULT` keep HTTP/1.1; neither downgrades a port declared HTTP/2).
 * HTTP/2 goes over TLS (`h2`, by ALPN) when the policy originates TLS (`SIMPLE` or `MUTUAL`),
 * else in cleartext (`h2c`). At run time the connection follows the cluster's final TLS settings
 * (the endpoint origin's scheme), so an ISTIO_MUTUAL cluster later run as MUTUAL gets TLS too.
 */
export function upstreamProtocol (port: Pick<ServicePort, 'name' | 'protocol'>, policy: TrafficPolicy): UpstreamProtocol {
  const declared = portProtocol(port)
  const h2 = (declared !== undefined && H2_PROTOCOLS.has(declared)) ||
    (policy.connectionPool?.http?.h2UpgradePolicy === 'UPGRADE' && (declared === undefined || declared === 'HTTP'))
  if (!h2) return 'http1'
  const mode = policy.tls?.mode
  return mode === 'SIMPLE' || mode === 'MUTUAL' ? 'h2' : 'h2c'
}
