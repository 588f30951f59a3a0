import type { HTTPMatchRequest, Resolution, TrafficPolicy } from '../config/model.js'
import type { Problem } from '../config/problem.js'
import type { BreakerConfig } from '../resilience/breaker.js'
import type { ProbeConfig } from '../upstream/probe-config.js'
import type { RetryPolicy } from '../resilience/retry.js'
import type { CompiledCors, CompiledDirectResponse, CompiledFault, CompiledRedirect } from '../routing/actions.js'
import type { CompiledHeaders } from '../routing/headers.js'
import type { CompiledMatch } from '../routing/match.js'
import type { CompiledRewrite } from '../routing/rewrite.js'
import type { RouteIndex } from '../routing/route-index.js'
import type { CallerIdentity, SecuritySpec } from '../security/spec.js'
import type { UpstreamProtocol } from './upstream-protocol.js'

/**
 * The compiled, frozen configuration. Built once per load; the request path only reads it.
 * Mutable state (health, balancer cursors, breakers) lives in src/runtime, keyed by the names here.
 */
export interface Snapshot {
  generation: number
  /** Epoch milliseconds when compiled. */
  createdAt: number
  /** One ingress listener per Gateway server port. */
  gateways: readonly ListenerSpec[]
  /** The mesh listener (sidecar outbound routes). */
  mesh: ListenerSpec
  /** Every cluster by Istio name `outbound|port|subset|host`. */
  clusters: ReadonlyMap<string, ClusterSpec>
  /** Mesh callers by address (WorkloadEntry and ServiceEntry endpoint addresses), for policies and metrics. */
  callers: ReadonlyMap<string, CallerIdentity>
  /** AuthorizationPolicy and RequestAuthentication per workload; absent when there are none. */
  security?: SecuritySpec
  /** Problems found while compiling (warnings; errors prevent a snapshot). */
  problems: readonly Problem[]
  /** TCP listeners: Gateway TCP and TLS-passthrough ports, and mesh TCP ports (docs/tcp.md). */
  l4?: readonly L4Listener[]
}

/**
 * One TCP listener (plugins/tcp): a Gateway server port with protocol TCP, or HTTPS/TLS with
 * `tls.mode: PASSTHROUGH` (routed by SNI), or a mesh port fronting one ServiceEntry TCP port.
 */
export interface L4Listener {
  /** `0.0.0.0_31400` for gateway ports, `mesh_tcp_HOST_PORT` for mesh ports. */
  name: string
  kind: 'gateway' | 'mesh'
  /** The port the configuration names (Gateway server port, or the mesh port the annotation gives); the bind port may differ. */
  port: number
  /** `tcp`: routes from `tcp:`; `sni`: routes from `tls:`, matched by the ClientHello's SNI, bytes passed through. */
  mode: 'tcp' | 'sni'
  /** `ns/name` of the Gateways with servers on this port (empty for mesh). */
  gatewayNames: readonly string[]
  /** Server hosts of the port (sni: the SNI must be one of them); `*` = any. */
  serverHosts: readonly string[]
  /** The service a mesh port stands for (its cluster is the default route). */
  service?: { host: string; port: number }
  /** The port routes resolve destination clusters against: the gateway port, or the service port. */
  destinationPort: number
  /** Ordered routes; the first whose match applies wins. */
  routes: readonly L4Route[]
}

export interface L4Route {
  /** `ns/name` of the VirtualService, or `-` for a mesh port's default route. */
  virtualService: string
  /** `tcp[0]` / `tls[1]`, or `default`. */
  name: string
  /** Match blocks, ORed; empty = every connection. */
  match: readonly L4Match[]
  destinations: readonly CompiledDestination[]
  totalWeight: number
}

/** One L4 match block (ANDed conditions), compiled. */
export interface L4Match {
  /** Subnets of the address the client connected to. */
  destinationSubnets?: ReadonlyArray<{ base: bigint; bits: number }>
  /** Labels the caller (identified by its address) must carry. */
  sourceLabels?: Readonly<Record<string, string>>
  /** Namespace the caller must be in. */
  sourceNamespace?: string
  /** SNI names, lowercase, exact or `*.suffix`. */
  sniHosts?: readonly string[]
}

/** TLS termination of one Gateway server (file paths as written; read by the plugin layer). */
export interface TlsServer {
  /** Server hosts (namespace part removed), for SNI selection. */
  hosts: readonly string[]
  mode: 'SIMPLE' | 'MUTUAL' | 'OPTIONAL_MUTUAL'
  serverCertificate: string
  privateKey: string
  caCertificates?: string
  minProtocolVersion?: string
  maxProtocolVersion?: string
  cipherSuites?: readonly string[]
}

export interface ListenerSpec {
  /** `0.0.0.0_8080` for gateway ports, `mesh` for the mesh listener. */
  name: string
  kind: 'gateway' | 'mesh'
  /** The port the configuration names (the Gateway server port); the bind port may differ. */
  port: number
  protocol: string
  /** `ns/name` of the Gateways with servers on this port (empty for mesh). */
  gatewayNames: readonly string[]
  hosts: HostIndex
  /** HTTPS: the servers' TLS settings, in order (the first is the default certificate). */
  tls?: readonly TlsServer[]
  /** Hosts of HTTP servers with `tls.httpsRedirect`: requests for them get a 301 to https. */
  httpsRedirectHosts?: readonly string[]
}

/** Virtual-host lookup: exact host, then longest wildcard suffix, then `*` (Envoy's order). */
export interface HostIndex {
  exact: ReadonlyMap<string, VirtualHost>
  /** `[suffix with leading dot, vhost]`, longest suffix first. */
  wildcards: ReadonlyArray<readonly [string, VirtualHost]>
  any?: VirtualHost
  /** Every virtual host once, for the admin API. */
  all: readonly VirtualHost[]
}

export interface VirtualHost {
  /** e.g. `bookinfo-gateway:8080:*` or `reviews.default.svc.cluster.local:9080`. */
  name: string
  domains: readonly string[]
  routes: readonly CompiledRoute[]
  /**
   * Candidate index over `routes` (src/routing/route-index.ts), built with the snapshot when the
   * host has enough routes to profit; absent = linear first-match scan.
   */
  routeIndex?: RouteIndex<CompiledRoute>
}

export interface CompiledRoute {
  /** `%ROUTE_NAME%`: route name, `route.match` when the match block is named too, or '-'. */
  name: string
  /** `namespace/name` of the VirtualService this route came from (or `-` for default routes). */
  virtualService: string
  /** Index in the VirtualService's `http` list and in that route's `match` list. */
  httpIndex: number
  matchIndex: number
  match: CompiledMatch
  /** The match block as written (absent for a route without `match`), for the admin API. */
  matchSpec?: HTTPMatchRequest
  rewrite?: CompiledRewrite
  headers?: CompiledHeaders
  destinations: readonly CompiledDestination[]
  /** Sum of the destination weights; destinations with weight 0 are dropped at compile time. */
  totalWeight: number
  /** Retry policy (Istio's default when the route sets none). */
  retry?: RetryPolicy
  /** Route timeout in ms; absent = none (Istio's default). */
  timeoutMs?: number
  redirect?: CompiledRedirect
  directResponse?: CompiledDirectResponse
  fault?: CompiledFault
  cors?: CompiledCors
  /** Mirror targets with the fraction of requests copied to each. */
  mirrors?: ReadonlyArray<{ target: DestinationTarget; fraction: number }>
}

/** Where one weighted destination goes, resolved to cluster names at compile time. */
export interface DestinationTarget {
  /** FQDN of the destination host. */
  host: string
  subset: string
  /** Cluster name when the port is known at compile time. */
  cluster?: string
  /** Port → cluster name, when the cluster depends on the port the caller addressed (mesh). */
  byPort?: ReadonlyMap<number, string>
  /** Cluster used when the addressed port is not one of the service's ports. */
  fallbackPortCluster?: string
}

export interface CompiledDestination extends DestinationTarget {
  weight: number
  headers?: CompiledHeaders
  /** ASM fallback target (never followed further: fallback does not cascade). */
  fallback?: DestinationTarget
}

export interface EndpointSpec {
  /** `address:port`: the endpoint's identity across reloads. */
  key: string
  address: string
  port: number
  labels: Readonly<Record<string, string>>
  weight: number
}

export interface ClusterSpec {
  name: string
  /** Service FQDN. */
  host: string
  /** Service port. */
  port: number
  subset: string
  resolution: Resolution
  endpoints: readonly EndpointSpec[]
  /** The effective traffic policy (DR level merged with subset level, port level applied). */
  policy: TrafficPolicy
  /** `namespace/name` of the DestinationRule that shaped it, if any. */
  destinationRule?: string
  /** Error-rate breaker per endpoint (DestinationRule annotation, outlier timings). */
  breaker: BreakerConfig
  /** Active health probe of the service's endpoints (ServiceEntry annotation or defaults). */
  probe: ProbeConfig
  /** HTTP/2 in cleartext or over TLS (src/compile/upstream-protocol.ts); absent = HTTP/1.1. */
  upstreamProtocol?: Exclude<UpstreamProtocol, 'http1'>
}

/** Istio's cluster name. */
export function clusterName (port: number, subset: string, host: string): string {
  return `outbound|${port}|${subset}|${host}`
}
