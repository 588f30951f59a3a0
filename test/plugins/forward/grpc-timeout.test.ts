import t from 'tap'
import { effectiveTimeoutMs, grpcTimeoutMs } from '../../../plugins/forward/grpc-timeout.js'
import { grpcMessage, httpToGrpcStatus } from '../../../plugins/reply/local.js'

// The grpc-timeout header's units, the route timeout it shortens, and the gRPC local-reply
// mapping (Envoy's HTTP → gRPC status table) and message encoding.

t.test('grpc-timeout units', async t => {
  t.equal(grpcTimeoutMs('1H'), 3_600_000)
  t.equal(grpcTimeoutMs('2M'), 120_000)
  t.equal(grpcTimeoutMs('3S'), 3000)
  t.equal(grpcTimeoutMs('250m'), 250)
  t.equal(grpcTimeoutMs('1500u'), 2, 'rounded up')
  t.equal(grpcTimeoutMs('1n'), 1, 'never 0 (0 means no timeout)')
  t.equal(grpcTimeoutMs('99999999S'), 99_999_999_000, 'eight digits')
  for (const bad of ['', 'S', '123456789S', '10x', '1.5S', '-1S', ' 1S']) t.equal(grpcTimeoutMs(bad), undefined, `malformed: ${JSON.stringify(bad)}`)
  t.equal(grpcTimeoutMs(['1S', '2S']), undefined, 'repeated header ignored')
})

t.test('the smaller of the route timeout and the deadline', async t => {
  t.equal(effectiveTimeoutMs(0, '300m'), 300, 'no route timeout: the deadline')
  t.equal(effectiveTimeoutMs(1000, '300m'), 300)
  t.equal(effectiveTimeoutMs(200, '300m'), 200, 'the route timeout caps the deadline')
  t.equal(effectiveTimeoutMs(200, 'junk'), 200, 'a malformed header changes nothing')
  t.equal(effectiveTimeoutMs(0, undefined), 0)
})

t.test('HTTP to gRPC status, as Envoy maps local replies', async t => {
  const want: Record<number, number> = { 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14, 413: 2, 431: 2, 500: 2 }
  for (const [http, grpc] of Object.entries(want)) t.equal(httpToGrpcStatus(Number(http)), grpc, `${http} → ${grpc}`)
  t.equal(grpcMessage('no healthy upstream'), 'no healthy upstream')
  t.equal(grpcMessage('100% ünïcode\n'), '100%25 %C3%BCn%C3%AFcode%0A', 'percent-encoded outside printable ASCII, and %')
})
