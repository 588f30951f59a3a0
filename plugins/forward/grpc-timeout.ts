/**
 * The `grpc-timeout` request header (gRPC over HTTP/2: 1 to 8 digits and a unit, H M S m u n),
 * in milliseconds, rounded up; undefined when malformed. Istio lets Envoy honour it (its route's
 * `max_grpc_timeout` is the route timeout, or unbounded when the route has none), so a gRPC
 * request's timeout is the smaller of its deadline and the route timeout.
 */
export function grpcTimeoutMs (value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || value.length < 2 || value.length > 9) return undefined
  const n = Number(value.slice(0, -1))
  if (!/^\d+$/.test(value.slice(0, -1)) || !Number.isFinite(n)) return undefined
  const per = UNIT_MS[value.charCodeAt(value.length - 1)]
  return per === undefined ? undefined : Math.max(1, Math.ceil(n * per))
}

const UNIT_MS: Record<number, number> = {
  72: 3_600_000, // H
  77: 60_000, // M
  83: 1000, // S
  109: 1, // m
  117: 0.001, // u
  110: 0.000001 // n
}

/** The request's timeout: the route timeout, shortened by a gRPC deadline (0 = none). */
export function effectiveTimeoutMs (routeMs: number, grpcTimeout: string | string[] | undefined): number {
  const g = grpcTimeoutMs(grpcTimeout)
  if (g === undefined) return routeMs
  return routeMs > 0 && routeMs < g ? routeMs : g
}
