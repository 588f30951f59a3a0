/**
 * The one table of request errors: code → HTTP status, Envoy response flag, body.
 * Flags and bodies follow Envoy (docs: configuration/observability/access_log/usage.rst);
 * the rows are the table of docs/operations.md#errors.
 */
export interface ErrorSpec {
  status: number
  /** Envoy response flag, as logged in `response_flags`. */
  flag: string
  /** Response body, `text/plain`, as Envoy's local replies. */
  body: string
  /** `%RESPONSE_CODE_DETAILS%` as Envoy logs it. */
  details: string
  /** Close the downstream connection after this answer (the rest of the request is not read). */
  close?: boolean
}

export const Errors = {
  /** No virtual host or no route matched. */
  NoRoute: { status: 404, flag: 'NR', body: '', details: 'route_not_found' },
  /** The route names a host or subset that no ServiceEntry/DestinationRule defines. */
  NoCluster: { status: 503, flag: 'NC', body: '', details: 'cluster_not_found' },
  /** The destination has no healthy endpoint, and no usable fallback. */
  NoHealthyUpstream: { status: 503, flag: 'UH', body: 'no healthy upstream', details: 'no_healthy_upstream' },
  /** Connect failure, refused, or reset before any response byte. */
  UpstreamConnectFailure: {
    status: 503,
    flag: 'UF',
    body: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure',
    details: 'upstream_reset_before_response_started{connection_failure}'
  },
  /** The upstream reset the stream before sending headers (connection was established). */
  UpstreamReset: {
    status: 503,
    flag: 'UC',
    body: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
    details: 'upstream_reset_before_response_started{connection_termination}'
  },
  /** The upstream refused an HTTP/2 stream (RST_STREAM REFUSED_STREAM) before processing it. */
  UpstreamRefusedStream: {
    status: 503,
    flag: 'UR',
    body: 'upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset',
    details: 'upstream_reset_before_response_started{remote_refused_stream_reset}'
  },
  /** Circuit breaker open, or connection-pool overflow. */
  Overflow: { status: 503, flag: 'UO', body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow', details: 'upstream_reset_before_response_started{overflow}' },
  /** Route or per-try timeout. */
  UpstreamTimeout: { status: 504, flag: 'UT', body: 'upstream request timeout', details: 'upstream_response_timeout' },
  /** The request target cannot be processed (malformed path or escape). */
  BadRequest: { status: 400, flag: 'DPE', body: 'Bad Request', details: 'path_normalization_failed' },
  /** Escaped slash, header name with an underscore, duplicate Host: refused like a malformed path. */
  BadHeaders: { status: 400, flag: 'DPE', body: 'Bad Request', details: 'http1.invalid_characters', close: true },
  /** More request headers than the configured count (Envoy max_headers_count). */
  HeadersTooLarge: { status: 431, flag: 'DPE', body: 'Request Header Fields Too Large', details: 'http1.headers_too_large', close: true },
  /** Request body over the configured limit, by Content-Length or while streaming. */
  PayloadTooLarge: { status: 413, flag: '-', body: 'Payload Too Large', details: 'request_payload_too_large', close: true },
  /** Shed by the overload guard (event-loop delay, heap, RSS): Envoy's overload manager flag. */
  Overloaded: { status: 503, flag: 'OM', body: 'envoy overloaded', details: 'overload', close: true },
  /** The upstream answered something that is not valid HTTP. */
  /** An AuthorizationPolicy denied the request (Envoy RBAC filter); the details name the policy. */
  RbacDenied: { status: 403, flag: '-', body: 'RBAC: access denied', details: 'rbac_access_denied_matched_policy[none]' },
  /** A JWT was present and failed verification (Envoy jwt_authn); body and details name the reason. */
  JwtDenied: { status: 401, flag: '-', body: 'Jwt verification fails', details: 'jwt_authn_access_denied{Jwt_verification_fails}' },
  UpstreamProtocolError: { status: 502, flag: 'UPE', body: 'upstream connect error or disconnect/reset before headers. reset reason: protocol error', details: 'upstream_reset_before_response_started{protocol_error}' }
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof Errors
