/**
 * The Istio resource model, field names verbatim from istio/api
 * (networking/v1alpha3/{virtual_service,destination_rule,gateway,service_entry,workload_entry}.proto),
 * plus Alibaba Cloud Service Mesh's `HTTPRouteDestination.fallback`.
 *
 * These are the shapes a resource has after schema validation; the TypeBox schemas in
 * `schema.ts` describe exactly these fields, so unknown fields are rejected there.
 */

/** `StringMatch`: exactly one of exact, prefix, regex (RE2). An empty object means presence. */
export interface StringMatch {
  exact?: string
  prefix?: string
  regex?: string
}

export interface PortSelector {
  number?: number
}

export interface Destination {
  host: string
  subset?: string
  port?: PortSelector
}

export interface HeaderOperations {
  set?: Record<string, string>
  add?: Record<string, string>
  remove?: string[]
}

export interface Headers {
  request?: HeaderOperations
  response?: HeaderOperations
}

/** ASM extension (aliyun/alibabacloud-servicemesh-api virtual_service.proto, field 30). */
export interface HTTPRouteFallback {
  case?: string
  target: Destination
}

export interface HTTPRouteDestination {
  destination: Destination
  weight?: number
  headers?: Headers
  fallback?: HTTPRouteFallback
}

export interface HTTPMatchRequest {
  name?: string
  uri?: StringMatch
  scheme?: StringMatch
  method?: StringMatch
  authority?: StringMatch
  headers?: Record<string, StringMatch>
  port?: number
  sourceLabels?: Record<string, string>
  gateways?: string[]
  queryParams?: Record<string, StringMatch>
  ignoreUriCase?: boolean
  withoutHeaders?: Record<string, StringMatch>
  sourceNamespace?: string
  statPrefix?: string
}

export interface RegexRewrite {
  match: string
  rewrite: string
}

export interface HTTPRewrite {
  uri?: string
  authority?: string
  uriRegexRewrite?: RegexRewrite
}

export interface HTTPRedirect {
  uri?: string
  authority?: string
  port?: number
  derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT'
  scheme?: string
  redirectCode?: number
}

export interface HTTPBody {
  string?: string
  bytes?: string
}

export interface HTTPDirectResponse {
  status: number
  body?: HTTPBody
}

export interface Delegate {
  name?: string
  namespace?: string
}

export interface Percent {
  value?: number
}

export interface HTTPRetry {
  attempts?: number
  perTryTimeout?: string
  retryOn?: string
  retryRemoteLocalities?: boolean
  retryIgnorePreviousHosts?: boolean
  backoff?: string
}

export interface HTTPFaultInjectionDelay {
  fixedDelay?: string
  exponentialDelay?: string
  percentage?: Percent
  percent?: number
}

export interface HTTPFaultInjectionAbort {
  httpStatus?: number
  grpcStatus?: string
  http2Error?: string
  percentage?: Percent
}

export interface HTTPFaultInjection {
  delay?: HTTPFaultInjectionDelay
  abort?: HTTPFaultInjectionAbort
}

export interface HTTPMirrorPolicy {
  destination: Destination
  percentage?: Percent
}

export interface CorsPolicy {
  allowOrigin?: string[]
  allowOrigins?: StringMatch[]
  allowMethods?: string[]
  allowHeaders?: string[]
  exposeHeaders?: string[]
  maxAge?: string
  allowCredentials?: boolean
  unmatchedPreflights?: 'UNSPECIFIED' | 'FORWARD' | 'IGNORE'
}

export interface HTTPRoute {
  name?: string
  match?: HTTPMatchRequest[]
  route?: HTTPRouteDestination[]
  redirect?: HTTPRedirect
  directResponse?: HTTPDirectResponse
  delegate?: Delegate
  rewrite?: HTTPRewrite
  timeout?: string
  retries?: HTTPRetry
  fault?: HTTPFaultInjection
  mirror?: Destination
  mirrorPercent?: number
  mirrorPercentage?: Percent
  mirrors?: HTTPMirrorPolicy[]
  corsPolicy?: CorsPolicy
  headers?: Headers
}

/** TLS and TCP routes: served by the TCP listeners (docs/tcp.md). */
export interface L4MatchAttributes {
  destinationSubnets?: string[]
  port?: number
  sourceLabels?: Record<string, string>
  gateways?: string[]
  sourceNamespace?: string
}

export interface TLSMatchAttributes extends L4MatchAttributes {
  sniHosts: string[]
}

export interface RouteDestination {
  destination: Destination
  weight?: number
  /** ASM fallback, as on an HTTP route destination. */
  fallback?: HTTPRouteFallback
}

export interface TLSRoute {
  match: TLSMatchAttributes[]
  route?: RouteDestination[]
}

export interface TCPRoute {
  match?: L4MatchAttributes[]
  route?: RouteDestination[]
}

export interface VirtualServiceSpec {
  hosts?: string[]
  gateways?: string[]
  http?: HTTPRoute[]
  tls?: TLSRoute[]
  tcp?: TCPRoute[]
  exportTo?: string[]
}

// ---------------------------------------------------------------- DestinationRule

export interface ConsistentHashLB {
  httpHeaderName?: string
  httpCookie?: { name: string; path?: string; ttl?: string; attributes?: Array<{ name: string; value?: string }> }
  useSourceIp?: boolean
  httpQueryParameterName?: string
  ringHash?: { minimumRingSize?: number }
  maglev?: { tableSize?: number }
  minimumRingSize?: number
}

export interface LocalityLoadBalancerSetting {
  distribute?: Array<{ from?: string; to?: Record<string, number> }>
  failover?: Array<{ from?: string; to?: string }>
  failoverPriority?: string[]
  enabled?: boolean
}

export interface LoadBalancerSettings {
  simple?: 'UNSPECIFIED' | 'LEAST_CONN' | 'RANDOM' | 'PASSTHROUGH' | 'ROUND_ROBIN' | 'LEAST_REQUEST'
  consistentHash?: ConsistentHashLB
  localityLbSetting?: LocalityLoadBalancerSetting
  warmupDurationSecs?: string
  warmup?: { duration?: string; minimumPercent?: number; aggression?: number }
}

export interface ConnectionPoolSettings {
  tcp?: {
    maxConnections?: number
    connectTimeout?: string
    tcpKeepalive?: { probes?: number; time?: string; interval?: string }
    maxConnectionDuration?: string
    idleTimeout?: string
  }
  http?: {
    http1MaxPendingRequests?: number
    http2MaxRequests?: number
    maxRequestsPerConnection?: number
    maxRetries?: number
    idleTimeout?: string
    h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE'
    useClientProtocol?: boolean
    maxConcurrentStreams?: number
  }
}

export interface OutlierDetection {
  splitExternalLocalOriginErrors?: boolean
  consecutiveLocalOriginFailures?: number
  consecutiveGatewayErrors?: number
  consecutive5xxErrors?: number
  consecutiveErrors?: number
  interval?: string
  baseEjectionTime?: string
  maxEjectionPercent?: number
  minHealthPercent?: number
}

export interface ClientTLSSettings {
  mode?: 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL'
  clientCertificate?: string
  privateKey?: string
  caCertificates?: string
  credentialName?: string
  subjectAltNames?: string[]
  sni?: string
  insecureSkipVerify?: boolean
  caCrl?: string
}

export interface PortTrafficPolicy {
  port?: PortSelector
  loadBalancer?: LoadBalancerSettings
  connectionPool?: ConnectionPoolSettings
  outlierDetection?: OutlierDetection
  tls?: ClientTLSSettings
}

export interface TrafficPolicy {
  loadBalancer?: LoadBalancerSettings
  connectionPool?: ConnectionPoolSettings
  outlierDetection?: OutlierDetection
  tls?: ClientTLSSettings
  portLevelSettings?: PortTrafficPolicy[]
  tunnel?: { protocol?: string; targetHost: string; targetPort: number }
  proxyProtocol?: { version?: 'V1' | 'V2' }
  retryBudget?: { percent?: Percent; minRetryConcurrency?: number }
}

export interface Subset {
  name: string
  labels?: Record<string, string>
  trafficPolicy?: TrafficPolicy
}

export interface DestinationRuleSpec {
  host: string
  trafficPolicy?: TrafficPolicy
  subsets?: Subset[]
  exportTo?: string[]
  workloadSelector?: { matchLabels?: Record<string, string> }
}

// ---------------------------------------------------------------- Gateway

export interface GatewayPort {
  number: number
  protocol: string
  name?: string
  targetPort?: number
}

export interface ServerTLSSettings {
  httpsRedirect?: boolean
  mode?: 'PASSTHROUGH' | 'SIMPLE' | 'MUTUAL' | 'AUTO_PASSTHROUGH' | 'ISTIO_MUTUAL' | 'OPTIONAL_MUTUAL'
  serverCertificate?: string
  privateKey?: string
  caCertificates?: string
  caCrl?: string
  credentialName?: string
  credentialNames?: string[]
  subjectAltNames?: string[]
  verifyCertificateSpki?: string[]
  verifyCertificateHash?: string[]
  minProtocolVersion?: 'TLS_AUTO' | 'TLSV1_0' | 'TLSV1_1' | 'TLSV1_2' | 'TLSV1_3'
  maxProtocolVersion?: 'TLS_AUTO' | 'TLSV1_0' | 'TLSV1_1' | 'TLSV1_2' | 'TLSV1_3'
  cipherSuites?: string[]
}

export interface Server {
  port: GatewayPort
  bind?: string
  hosts: string[]
  tls?: ServerTLSSettings
  defaultEndpoint?: string
  name?: string
}

export interface GatewaySpec {
  servers: Server[]
  selector?: Record<string, string>
}

// ---------------------------------------------------------------- ServiceEntry / WorkloadEntry

export interface ServicePort {
  number: number
  protocol?: string
  name: string
  targetPort?: number
}

export interface WorkloadEntrySpec {
  address?: string
  ports?: Record<string, number>
  labels?: Record<string, string>
  network?: string
  locality?: string
  weight?: number
  serviceAccount?: string
}

export type Resolution = 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'DYNAMIC_DNS'

export interface ServiceEntrySpec {
  hosts: string[]
  addresses?: string[]
  ports?: ServicePort[]
  location?: 'MESH_EXTERNAL' | 'MESH_INTERNAL'
  resolution?: Resolution
  endpoints?: WorkloadEntrySpec[]
  workloadSelector?: { labels?: Record<string, string> }
  exportTo?: string[]
  subjectAltNames?: string[]
}

// ---------------------------------------------------------------- security.istio.io

/** `WorkloadSelector`: the workloads whose labels include all of these (type.istio.io). */
export interface WorkloadSelector {
  matchLabels?: Record<string, string>
}

/** `PolicyTargetReference`: a Gateway, Service or ServiceEntry the policy attaches to. */
export interface PolicyTargetReference {
  group?: string
  kind: string
  name: string
  namespace?: string
}

export interface AuthzSource {
  principals?: string[]
  notPrincipals?: string[]
  requestPrincipals?: string[]
  notRequestPrincipals?: string[]
  namespaces?: string[]
  notNamespaces?: string[]
  serviceAccounts?: string[]
  notServiceAccounts?: string[]
  ipBlocks?: string[]
  notIpBlocks?: string[]
  remoteIpBlocks?: string[]
  notRemoteIpBlocks?: string[]
}

export interface AuthzOperation {
  hosts?: string[]
  notHosts?: string[]
  ports?: string[]
  notPorts?: string[]
  methods?: string[]
  notMethods?: string[]
  paths?: string[]
  notPaths?: string[]
}

export interface AuthzCondition {
  key: string
  values?: string[]
  notValues?: string[]
}

export interface AuthzRule {
  from?: Array<{ source?: AuthzSource }>
  to?: Array<{ operation?: AuthzOperation }>
  when?: AuthzCondition[]
}

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM'

export interface AuthorizationPolicySpec {
  selector?: WorkloadSelector
  targetRef?: PolicyTargetReference
  targetRefs?: PolicyTargetReference[]
  rules?: AuthzRule[]
  action?: AuthzAction
  provider?: { name?: string }
}

export interface JwtHeader {
  name: string
  prefix?: string
}

export interface JWTRule {
  issuer: string
  audiences?: string[]
  jwksUri?: string
  jwks?: string
  fromHeaders?: JwtHeader[]
  fromParams?: string[]
  fromCookies?: string[]
  outputPayloadToHeader?: string
  forwardOriginalToken?: boolean
  outputClaimToHeaders?: Array<{ header: string; claim: string }>
  timeout?: string
}

export interface RequestAuthenticationSpec {
  selector?: WorkloadSelector
  targetRef?: PolicyTargetReference
  targetRefs?: PolicyTargetReference[]
  jwtRules?: JWTRule[]
}

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT'

export interface PeerAuthenticationSpec {
  selector?: WorkloadSelector
  mtls?: { mode?: MtlsMode }
  portLevelMtls?: Record<string, { mode?: MtlsMode }>
}

// ---------------------------------------------------------------- envelope

/** Where a resource came from, for error messages. */
export interface SourceRef {
  /** File path as given by the caller (or `<body>` for admin uploads). */
  file: string
  /** 0-based index of the YAML document within the file. */
  doc: number
  /** 1-based line and column of the document's start. */
  line: number
  column: number
}

export interface ObjectMeta {
  name: string
  namespace: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}

interface ResourceBase<K extends string, S> {
  apiVersion: string
  kind: K
  metadata: ObjectMeta
  spec: S
  source: SourceRef
  /**
   * Position lookup for a field path inside this resource (e.g. `['spec','http',0,'route',1]`),
   * falling back to the nearest enclosing node that exists. Never throws.
   */
  locate: (path: ReadonlyArray<string | number>) => { line: number; column: number }
}

export type VirtualService = ResourceBase<'VirtualService', VirtualServiceSpec>
export type DestinationRule = ResourceBase<'DestinationRule', DestinationRuleSpec>
export type Gateway = ResourceBase<'Gateway', GatewaySpec>
export type ServiceEntry = ResourceBase<'ServiceEntry', ServiceEntrySpec>
export type WorkloadEntry = ResourceBase<'WorkloadEntry', WorkloadEntrySpec>

export type AuthorizationPolicy = ResourceBase<'AuthorizationPolicy', AuthorizationPolicySpec>
export type RequestAuthentication = ResourceBase<'RequestAuthentication', RequestAuthenticationSpec>
export type PeerAuthentication = ResourceBase<'PeerAuthentication', PeerAuthenticationSpec>

export type Resource = VirtualService | DestinationRule | Gateway | ServiceEntry | WorkloadEntry |
  AuthorizationPolicy | RequestAuthentication | PeerAuthentication
export type Kind = Resource['kind']

/** Every kind meshgate reads, with the API versions it accepts for it. */
export const KIND_VERSIONS: Readonly<Record<Kind, readonly string[]>> = {
  VirtualService: ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'],
  DestinationRule: ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'],
  Gateway: ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'],
  ServiceEntry: ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'],
  WorkloadEntry: ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'],
  AuthorizationPolicy: ['security.istio.io/v1', 'security.istio.io/v1beta1'],
  RequestAuthentication: ['security.istio.io/v1', 'security.istio.io/v1beta1'],
  PeerAuthentication: ['security.istio.io/v1', 'security.istio.io/v1beta1']
}
export const KINDS = Object.keys(KIND_VERSIONS) as readonly Kind[]
/** The networking.istio.io versions (every traffic kind accepts these). */
export const API_VERSIONS: readonly string[] = KIND_VERSIONS.VirtualService

/** Istio's API groups: a kind of these groups that meshgate does not read is never silently skipped. */
export const ISTIO_GROUPS: readonly string[] = ['networking.istio.io', 'security.istio.io', 'telemetry.istio.io', 'extensions.istio.io']

/**
 * Istio kinds meshgate reads none of, which change no access decision: skipped with a warning.
 * Any other kind of an Istio group (a security kind, a misspelt kind) is an error.
 */
export const SKIPPED_ISTIO_KINDS: readonly string[] = ['Sidecar', 'EnvoyFilter', 'WorkloadGroup', 'ProxyConfig', 'Telemetry', 'WasmPlugin']

/** The resources of one configuration, grouped by kind, each list in load order. */
export interface ResourceSet {
  gateways: Gateway[]
  virtualServices: VirtualService[]
  destinationRules: DestinationRule[]
  serviceEntries: ServiceEntry[]
  workloadEntries: WorkloadEntry[]
  authorizationPolicies: AuthorizationPolicy[]
  requestAuthentications: RequestAuthentication[]
  peerAuthentications: PeerAuthentication[]
}

/** The list of a `ResourceSet` each kind goes to. */
export const SET_LISTS = {
  Gateway: 'gateways',
  VirtualService: 'virtualServices',
  DestinationRule: 'destinationRules',
  ServiceEntry: 'serviceEntries',
  WorkloadEntry: 'workloadEntries',
  AuthorizationPolicy: 'authorizationPolicies',
  RequestAuthentication: 'requestAuthentications',
  PeerAuthentication: 'peerAuthentications'
} as const satisfies Record<Kind, keyof ResourceSet>

/** A set with no resources. */
export function emptySet (): ResourceSet {
  return {
    gateways: [], virtualServices: [], destinationRules: [], serviceEntries: [], workloadEntries: [],
    authorizationPolicies: [], requestAuthentications: [], peerAuthentications: []
  }
}

/** `Kind/namespace/name`, as istioctl prints resources. */
export function resourceId (r: { kind: string; metadata: { namespace: string; name: string } }): string {
  return `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`
}
