import { Type, type TSchema } from '@sinclair/typebox'

/**
 * TypeBox schemas of the five Istio kinds (istio/api networking/v1alpha3 protos, field names
 * verbatim) plus ASM's `fallback`. Every object is closed (`additionalProperties: false`), so an
 * unknown field — a typo — is an error, never silently ignored.
 */
const O = <T extends Record<string, TSchema>>(props: T, desc?: string) =>
  Type.Object(props, { additionalProperties: false, ...(desc !== undefined ? { description: desc } : {}) })
const Opt = Type.Optional
const Str = Type.String()
const Bool = Type.Boolean()
const Int = (min?: number, max?: number) => Type.Integer({ ...(min !== undefined ? { minimum: min } : {}), ...(max !== undefined ? { maximum: max } : {}) })
const Num = Type.Number()
const StrMap = Type.Record(Type.String(), Type.String())
const Enum = (...vals: string[]) => Type.Union(vals.map(v => Type.Literal(v)))
const Port = Int(1, 65535)
const UInt = Int(0)

export const StringMatch = O({ exact: Opt(Str), prefix: Opt(Str), regex: Opt(Str) })
const Percent = O({ value: Opt(Num) })
const PortSelector = O({ number: Opt(Port) })
export const Destination = O({ host: Str, subset: Opt(Str), port: Opt(PortSelector) })
const HeaderOperations = O({ set: Opt(StrMap), add: Opt(StrMap), remove: Opt(Type.Array(Str)) })
const Headers = O({ request: Opt(HeaderOperations), response: Opt(HeaderOperations) })

const HTTPMatchRequest = O({
  name: Opt(Str),
  uri: Opt(StringMatch),
  scheme: Opt(StringMatch),
  method: Opt(StringMatch),
  authority: Opt(StringMatch),
  headers: Opt(Type.Record(Type.String(), StringMatch)),
  port: Opt(Port),
  sourceLabels: Opt(StrMap),
  gateways: Opt(Type.Array(Str)),
  queryParams: Opt(Type.Record(Type.String(), StringMatch)),
  ignoreUriCase: Opt(Bool),
  withoutHeaders: Opt(Type.Record(Type.String(), StringMatch)),
  sourceNamespace: Opt(Str),
  statPrefix: Opt(Str)
})

/** ASM's `fallback` of a route destination (http, tcp and tls routes alike). */
const RouteFallback = O({ case: Opt(Str), target: Destination })

const HTTPRouteDestination = O({
  destination: Destination,
  weight: Opt(Int()),
  headers: Opt(Headers),
  fallback: Opt(RouteFallback)
})

const HTTPRoute = O({
  name: Opt(Str),
  match: Opt(Type.Array(HTTPMatchRequest)),
  route: Opt(Type.Array(HTTPRouteDestination)),
  redirect: Opt(O({
    uri: Opt(Str),
    authority: Opt(Str),
    port: Opt(Port),
    derivePort: Opt(Enum('FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT')),
    scheme: Opt(Str),
    redirectCode: Opt(Int())
  })),
  directResponse: Opt(O({ status: Int(), body: Opt(O({ string: Opt(Str), bytes: Opt(Str) })) })),
  delegate: Opt(O({ name: Opt(Str), namespace: Opt(Str) })),
  rewrite: Opt(O({ uri: Opt(Str), authority: Opt(Str), uriRegexRewrite: Opt(O({ match: Str, rewrite: Str })) })),
  timeout: Opt(Str),
  retries: Opt(O({
    attempts: Opt(Int()),
    perTryTimeout: Opt(Str),
    retryOn: Opt(Str),
    retryRemoteLocalities: Opt(Bool),
    retryIgnorePreviousHosts: Opt(Bool),
    backoff: Opt(Str)
  })),
  fault: Opt(O({
    delay: Opt(O({ fixedDelay: Opt(Str), exponentialDelay: Opt(Str), percentage: Opt(Percent), percent: Opt(Int(0, 100)) })),
    abort: Opt(O({ httpStatus: Opt(Int()), grpcStatus: Opt(Str), http2Error: Opt(Str), percentage: Opt(Percent) }))
  })),
  mirror: Opt(Destination),
  mirrorPercent: Opt(UInt),
  mirrorPercentage: Opt(Percent),
  mirrors: Opt(Type.Array(O({ destination: Destination, percentage: Opt(Percent) }))),
  corsPolicy: Opt(O({
    allowOrigin: Opt(Type.Array(Str)),
    allowOrigins: Opt(Type.Array(StringMatch)),
    allowMethods: Opt(Type.Array(Str)),
    allowHeaders: Opt(Type.Array(Str)),
    exposeHeaders: Opt(Type.Array(Str)),
    maxAge: Opt(Str),
    allowCredentials: Opt(Bool),
    unmatchedPreflights: Opt(Enum('UNSPECIFIED', 'FORWARD', 'IGNORE'))
  })),
  headers: Opt(Headers)
})

const L4Match = {
  destinationSubnets: Opt(Type.Array(Str)),
  port: Opt(Port),
  sourceLabels: Opt(StrMap),
  gateways: Opt(Type.Array(Str)),
  sourceNamespace: Opt(Str)
}
const RouteDestination = O({ destination: Destination, weight: Opt(Int()), fallback: Opt(RouteFallback) })

export const VirtualServiceSpec = O({
  hosts: Opt(Type.Array(Str)),
  gateways: Opt(Type.Array(Str)),
  http: Opt(Type.Array(HTTPRoute)),
  tls: Opt(Type.Array(O({ match: Type.Array(O({ sniHosts: Type.Array(Str), ...L4Match })), route: Opt(Type.Array(RouteDestination)) }))),
  tcp: Opt(Type.Array(O({ match: Opt(Type.Array(O(L4Match))), route: Opt(Type.Array(RouteDestination)) }))),
  exportTo: Opt(Type.Array(Str))
})

const LoadBalancerSettings = O({
  simple: Opt(Enum('UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST')),
  consistentHash: Opt(O({
    httpHeaderName: Opt(Str),
    httpCookie: Opt(O({ name: Str, path: Opt(Str), ttl: Opt(Str), attributes: Opt(Type.Array(O({ name: Str, value: Opt(Str) }))) })),
    useSourceIp: Opt(Bool),
    httpQueryParameterName: Opt(Str),
    ringHash: Opt(O({ minimumRingSize: Opt(UInt) })),
    maglev: Opt(O({ tableSize: Opt(UInt) })),
    minimumRingSize: Opt(UInt)
  })),
  localityLbSetting: Opt(O({
    distribute: Opt(Type.Array(O({ from: Opt(Str), to: Opt(Type.Record(Type.String(), UInt)) }))),
    failover: Opt(Type.Array(O({ from: Opt(Str), to: Opt(Str) }))),
    failoverPriority: Opt(Type.Array(Str)),
    enabled: Opt(Bool)
  })),
  warmupDurationSecs: Opt(Str),
  warmup: Opt(O({ duration: Opt(Str), minimumPercent: Opt(Num), aggression: Opt(Num) }))
})

const ConnectionPoolSettings = O({
  tcp: Opt(O({
    maxConnections: Opt(Int()),
    connectTimeout: Opt(Str),
    tcpKeepalive: Opt(O({ probes: Opt(UInt), time: Opt(Str), interval: Opt(Str) })),
    maxConnectionDuration: Opt(Str),
    idleTimeout: Opt(Str)
  })),
  http: Opt(O({
    http1MaxPendingRequests: Opt(Int()),
    http2MaxRequests: Opt(Int()),
    maxRequestsPerConnection: Opt(Int()),
    maxRetries: Opt(Int()),
    idleTimeout: Opt(Str),
    h2UpgradePolicy: Opt(Enum('DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE')),
    useClientProtocol: Opt(Bool),
    maxConcurrentStreams: Opt(Int())
  }))
})

const OutlierDetection = O({
  splitExternalLocalOriginErrors: Opt(Bool),
  consecutiveLocalOriginFailures: Opt(UInt),
  consecutiveGatewayErrors: Opt(UInt),
  consecutive5xxErrors: Opt(UInt),
  consecutiveErrors: Opt(Int()),
  interval: Opt(Str),
  baseEjectionTime: Opt(Str),
  maxEjectionPercent: Opt(Int(0, 100)),
  minHealthPercent: Opt(Int(0, 100))
})

const ClientTLSSettings = O({
  mode: Opt(Enum('DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL')),
  clientCertificate: Opt(Str),
  privateKey: Opt(Str),
  caCertificates: Opt(Str),
  credentialName: Opt(Str),
  subjectAltNames: Opt(Type.Array(Str)),
  sni: Opt(Str),
  insecureSkipVerify: Opt(Bool),
  caCrl: Opt(Str)
})

const policyFields = {
  loadBalancer: Opt(LoadBalancerSettings),
  connectionPool: Opt(ConnectionPoolSettings),
  outlierDetection: Opt(OutlierDetection),
  tls: Opt(ClientTLSSettings)
}
const TrafficPolicy = O({
  ...policyFields,
  portLevelSettings: Opt(Type.Array(O({ port: Opt(PortSelector), ...policyFields }))),
  tunnel: Opt(O({ protocol: Opt(Str), targetHost: Str, targetPort: Port })),
  proxyProtocol: Opt(O({ version: Opt(Enum('V1', 'V2')) })),
  retryBudget: Opt(O({ percent: Opt(Percent), minRetryConcurrency: Opt(UInt) }))
})

export const DestinationRuleSpec = O({
  host: Str,
  trafficPolicy: Opt(TrafficPolicy),
  subsets: Opt(Type.Array(O({ name: Str, labels: Opt(StrMap), trafficPolicy: Opt(TrafficPolicy) }))),
  exportTo: Opt(Type.Array(Str)),
  workloadSelector: Opt(O({ matchLabels: Opt(StrMap) }))
})

const TLSVersion = Enum('TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3')
export const GatewaySpec = O({
  servers: Type.Array(O({
    port: O({ number: Port, protocol: Str, name: Opt(Str), targetPort: Opt(Port) }),
    bind: Opt(Str),
    hosts: Type.Array(Str),
    tls: Opt(O({
      httpsRedirect: Opt(Bool),
      mode: Opt(Enum('PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL')),
      serverCertificate: Opt(Str),
      privateKey: Opt(Str),
      caCertificates: Opt(Str),
      caCrl: Opt(Str),
      credentialName: Opt(Str),
      credentialNames: Opt(Type.Array(Str)),
      subjectAltNames: Opt(Type.Array(Str)),
      verifyCertificateSpki: Opt(Type.Array(Str)),
      verifyCertificateHash: Opt(Type.Array(Str)),
      minProtocolVersion: Opt(TLSVersion),
      maxProtocolVersion: Opt(TLSVersion),
      cipherSuites: Opt(Type.Array(Str))
    })),
    defaultEndpoint: Opt(Str),
    name: Opt(Str)
  })),
  selector: Opt(StrMap)
})

export const WorkloadEntrySpec = O({
  address: Opt(Str),
  ports: Opt(Type.Record(Type.String(), Port)),
  labels: Opt(StrMap),
  network: Opt(Str),
  locality: Opt(Str),
  weight: Opt(UInt),
  serviceAccount: Opt(Str)
})

export const ServiceEntrySpec = O({
  hosts: Type.Array(Str),
  addresses: Opt(Type.Array(Str)),
  ports: Opt(Type.Array(O({ number: Port, protocol: Opt(Str), name: Str, targetPort: Opt(Port) }))),
  location: Opt(Enum('MESH_EXTERNAL', 'MESH_INTERNAL')),
  resolution: Opt(Enum('NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS')),
  endpoints: Opt(Type.Array(WorkloadEntrySpec)),
  workloadSelector: Opt(O({ labels: Opt(StrMap) })),
  exportTo: Opt(Type.Array(Str)),
  subjectAltNames: Opt(Type.Array(Str))
})

/** Kubernetes ObjectMeta fields a `kubectl get -o yaml` dump may carry. */
export const ObjectMeta = O({
  name: Str,
  namespace: Opt(Str),
  labels: Opt(StrMap),
  annotations: Opt(StrMap),
  uid: Opt(Str),
  resourceVersion: Opt(Str),
  generation: Opt(Int()),
  creationTimestamp: Opt(Type.Union([Str, Type.Null()])),
  generateName: Opt(Str),
  finalizers: Opt(Type.Array(Str)),
  ownerReferences: Opt(Type.Array(Type.Unknown())),
  managedFields: Opt(Type.Array(Type.Unknown()))
})

// security.istio.io (istio/api security/v1beta1 and type/v1beta1/selector.proto).
const WorkloadSelector = O({ matchLabels: Opt(StrMap) })
const PolicyTargetReference = O({ group: Opt(Str), kind: Str, name: Str, namespace: Opt(Str) })
const StrList = Type.Array(Str)
const targets = { selector: Opt(WorkloadSelector), targetRef: Opt(PolicyTargetReference), targetRefs: Opt(Type.Array(PolicyTargetReference)) }

const AuthzSource = O({
  principals: Opt(StrList), notPrincipals: Opt(StrList),
  requestPrincipals: Opt(StrList), notRequestPrincipals: Opt(StrList),
  namespaces: Opt(StrList), notNamespaces: Opt(StrList),
  serviceAccounts: Opt(StrList), notServiceAccounts: Opt(StrList),
  ipBlocks: Opt(StrList), notIpBlocks: Opt(StrList),
  remoteIpBlocks: Opt(StrList), notRemoteIpBlocks: Opt(StrList)
})
const AuthzOperation = O({
  hosts: Opt(StrList), notHosts: Opt(StrList),
  ports: Opt(StrList), notPorts: Opt(StrList),
  methods: Opt(StrList), notMethods: Opt(StrList),
  paths: Opt(StrList), notPaths: Opt(StrList)
})
export const AuthorizationPolicySpec = O({
  ...targets,
  rules: Opt(Type.Array(O({
    from: Opt(Type.Array(O({ source: Opt(AuthzSource) }))),
    to: Opt(Type.Array(O({ operation: Opt(AuthzOperation) }))),
    when: Opt(Type.Array(O({ key: Str, values: Opt(StrList), notValues: Opt(StrList) })))
  }))),
  action: Opt(Enum('ALLOW', 'DENY', 'AUDIT', 'CUSTOM')),
  provider: Opt(O({ name: Opt(Str) }))
})

export const RequestAuthenticationSpec = O({
  ...targets,
  jwtRules: Opt(Type.Array(O({
    issuer: Str,
    audiences: Opt(StrList),
    jwksUri: Opt(Str),
    jwks: Opt(Str),
    fromHeaders: Opt(Type.Array(O({ name: Str, prefix: Opt(Str) }))),
    fromParams: Opt(StrList),
    fromCookies: Opt(StrList),
    outputPayloadToHeader: Opt(Str),
    forwardOriginalToken: Opt(Bool),
    outputClaimToHeaders: Opt(Type.Array(O({ header: Str, claim: Str }))),
    timeout: Opt(Str)
  })))
})

const MtlsMode = Enum('UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT')
export const PeerAuthenticationSpec = O({
  selector: Opt(WorkloadSelector),
  mtls: Opt(O({ mode: Opt(MtlsMode) })),
  portLevelMtls: Opt(Type.Record(Type.String(), O({ mode: Opt(MtlsMode) })))
})

export const SPEC_SCHEMAS: Record<string, TSchema> = {
  AuthorizationPolicy: AuthorizationPolicySpec,
  RequestAuthentication: RequestAuthenticationSpec,
  PeerAuthentication: PeerAuthenticationSpec,
  VirtualService: VirtualServiceSpec,
  DestinationRule: DestinationRuleSpec,
  Gateway: GatewaySpec,
  ServiceEntry: ServiceEntrySpec,
  WorkloadEntry: WorkloadEntrySpec
}
