import t from 'tap'
import { applyProbeResult, DEFAULT_PROBE, probeConfig, probeTransport, type ProbeConfig } from '../../src/upstream/probe.js'
import { Flag, HostHealth } from '../../src/upstream/endpoint.js'

// Active probe configuration (WorkloadGroup probe shape) and the threshold logic.

function config (raw: unknown): ProbeConfig {
  const r = probeConfig(raw)
  if ('error' in r) throw new Error(`unexpected error: ${r.error}`)
  return r.config
}

function error (raw: unknown): string {
  const r = probeConfig(raw)
  if ('config' in r) throw new Error('expected an error')
  return r.error
}

t.test('defaults: TCP every 1 s, 1 s timeout, down after 2 failures, up after 1 success', async t => {
  t.strictSame(DEFAULT_PROBE, {
    enabled: true,
    kind: 'tcp',
    path: '/',
    scheme: 'HTTP',
    headers: [],
    initialDelayMs: 0,
    periodMs: 1000,
    timeoutMs: 1000,
    successThreshold: 1,
    failureThreshold: 2
  })
  t.ok(Object.isFrozen(DEFAULT_PROBE), 'the shared default cannot be mutated')
  t.equal(config(undefined), DEFAULT_PROBE, 'no annotation → defaults')
  t.equal(config(null), DEFAULT_PROBE)
})

t.test('"off" (or false) disables probing', async t => {
  t.equal(config('off').enabled, false)
  t.equal(config(false).enabled, false)
  t.equal(config('off').kind, 'tcp', 'the rest stays default')
})

t.test('WorkloadGroup httpGet probe', async t => {
  const c = config({
    initialDelaySeconds: 2,
    timeoutSeconds: 0.5,
    periodSeconds: 0.25,
    successThreshold: 2,
    failureThreshold: 3,
    httpGet: { path: '/health', port: 8081, host: 'app.local', httpHeaders: [{ name: 'X-Probe', value: 'yes' }] }
  })
  t.strictSame(c, {
    enabled: true,
    kind: 'http',
    path: '/health',
    port: 8081,
    host: 'app.local',
    scheme: 'HTTP',
    headers: [['x-probe', 'yes']],
    initialDelayMs: 2000,
    periodMs: 250,
    timeoutMs: 500,
    successThreshold: 2,
    failureThreshold: 3
  })
  const minimal = config({ httpGet: {} })
  t.equal(minimal.kind, 'http')
  t.equal(minimal.path, '/', 'path defaults to /')
  t.equal(minimal.port, undefined, 'port defaults to the endpoint port')
  t.equal(config({ httpGet: { path: 'health' } }).path, '/', 'a path without the leading slash falls back to /')
})

t.test('WorkloadGroup tcpSocket probe', async t => {
  const c = config({ tcpSocket: { port: 9000 }, periodSeconds: 5 })
  t.equal(c.kind, 'tcp')
  t.equal(c.port, 9000)
  t.equal(c.periodMs, 5000)
  t.equal(config({ tcpSocket: {} }).port, undefined, 'no port → the endpoint port')
  t.equal(config({ failureThreshold: 5 }).kind, 'tcp', 'timings only → TCP')
})

t.test('probeTransport: an httpGet probe of the serving port speaks the cluster\'s protocol and TLS', async t => {
  const http = config({ httpGet: { path: '/health' } })
  const h1 = { http2: false, tls: false }
  const h1tls = { http2: false, tls: true }
  const h2c = { http2: true, tls: false }
  const h2 = { http2: true, tls: true }
  t.same(probeTransport(http, h1, 9080), { transport: 'http1', clusterTls: false }, 'HTTP/1.1 cluster')
  t.same(probeTransport(http, h1tls, 9080), { transport: 'https1', clusterTls: true }, 'HTTP/1.1 over TLS: the cluster\'s certificates')
  t.same(probeTransport(http, h2c, 9080), { transport: 'h2c', clusterTls: false }, 'h2c cluster')
  t.same(probeTransport(http, h2, 9080), { transport: 'h2', clusterTls: true }, 'h2 (TLS) cluster')
  t.same(probeTransport(config({ httpGet: { port: 9080 } }), h2c, 9080), { transport: 'h2c', clusterTls: false }, 'the serving port named explicitly')
  t.same(probeTransport(config({ httpGet: { port: 8081 } }), h2c, 9080), { transport: 'http1', clusterTls: false }, 'another port (a health port): HTTP/1.1')
  t.same(probeTransport(config({ httpGet: { port: 8081 } }), h2, 9080), { transport: 'http1', clusterTls: false })
  t.same(probeTransport(config({ httpGet: { port: 8081 } }), h1tls, 9080), { transport: 'http1', clusterTls: false }, 'a TLS cluster\'s health port: cleartext unless scheme says HTTPS')
  t.same(probeTransport(config({ httpGet: { port: 8081, scheme: 'HTTPS' } }), h1tls, 9080), { transport: 'https1', clusterTls: false }, 'scheme HTTPS on a health port: TLS, not the cluster\'s certificates')
  t.same(probeTransport(config({ httpGet: { scheme: 'HTTPS' } }), h1, 9080), { transport: 'https1', clusterTls: false }, 'scheme HTTPS on a cleartext cluster\'s port')
  t.same(probeTransport(DEFAULT_PROBE, h2, 9080), { transport: 'tcp', clusterTls: false }, 'the default TCP probe stays TCP')
  t.same(probeTransport(config({ tcpSocket: { port: 9000 } }), h2c, 9080), { transport: 'tcp', clusterTls: false })
})

t.test('httpGet.scheme', async t => {
  t.equal(config({ httpGet: {} }).scheme, 'HTTP', 'default HTTP')
  t.equal(config({ httpGet: { scheme: 'HTTPS' } }).scheme, 'HTTPS')
  t.equal(config({ httpGet: { scheme: 'https' } }).scheme, 'HTTPS', 'case does not matter')
  t.equal(error({ httpGet: { scheme: 'FTP' } }), '"httpGet.scheme" must be HTTP or HTTPS')
  t.equal(error({ httpGet: { pth: '/health' } }), 'unknown field "httpGet.pth"', 'a typo inside httpGet is caught')
})

t.test('errors', async t => {
  t.equal(error({ grpc: { port: 1 } }), 'unknown field "grpc"')
  t.equal(error({ periodSecond: 1 }), 'unknown field "periodSecond"', 'a typo is caught')
  t.match(error({ exec: { command: ['true'] } }), /"exec" probes cannot run outside Kubernetes/)
  t.match(error({ httpGet: {}, tcpSocket: {} }), /one of httpGet and tcpSocket/)
  t.match(error('on'), /must be an object/)
  t.match(error(5), /must be an object/)
  t.match(error([]), /must be an object/)
  t.match(error({ failureThreshold: 0 }), /"failureThreshold" must be an integer >= 1/)
  t.match(error({ successThreshold: 1.5 }), /"successThreshold" must be an integer >= 1/)
  t.match(error({ successThreshold: '2' }), /"successThreshold"/)
  t.match(error({ periodSeconds: -1 }), /"periodSeconds" must be a non-negative number/)
  t.match(error({ initialDelaySeconds: '1s' }), /"initialDelaySeconds"/)
  t.match(error({ periodSeconds: 0.01 }), /"periodSeconds" must be at least 0.05/)
  t.match(error({ timeoutSeconds: 0 }), /"timeoutSeconds" must be greater than 0/, 'a zero timeout would fail every probe')
})

t.test('applyProbeResult: failureThreshold 2 → unhealthy on the 2nd consecutive failure', async t => {
  const h = new HostHealth('10.0.0.1:80')
  let refreshes = 0
  h.watchers.add({ refresh: () => { refreshes++ } })
  t.equal(applyProbeResult(h, false, DEFAULT_PROBE, 100, 'ECONNREFUSED'), false, 'first failure: no change')
  t.equal(h.flags, 0)
  t.equal(h.probeFailures, 1)
  t.equal(h.lastProbeAt, 100)
  t.equal(h.lastProbeError, 'ECONNREFUSED')
  t.equal(applyProbeResult(h, false, DEFAULT_PROBE, 200, 'ECONNREFUSED'), true, 'second failure: down')
  t.equal(h.flags, Flag.FailedProbe)
  t.equal(refreshes, 1, 'watchers told once')
  t.equal(applyProbeResult(h, false, DEFAULT_PROBE, 300), false, 'third failure: already down')
  t.equal(applyProbeResult(h, true, DEFAULT_PROBE, 400), true, 'one success (successThreshold 1): up')
  t.equal(h.flags, 0)
  t.equal(h.lastProbeError, '')
  t.equal(h.probeFailures, 0)

  t.equal(applyProbeResult(h, false, DEFAULT_PROBE, 500), false)
  t.equal(applyProbeResult(h, true, DEFAULT_PROBE, 600), false, 'a success between failures...')
  t.equal(applyProbeResult(h, false, DEFAULT_PROBE, 700), false, '...restarts the failure count')
  t.equal(h.flags, 0)
})

t.test('applyProbeResult: successThreshold 3 → healthy again only after 3 consecutive successes', async t => {
  const cfg = config({ successThreshold: 3, failureThreshold: 1 })
  const h = new HostHealth('10.0.0.1:80')
  t.equal(applyProbeResult(h, false, cfg, 1), true, 'failureThreshold 1: down at once')
  t.equal(applyProbeResult(h, true, cfg, 2), false)
  t.equal(applyProbeResult(h, true, cfg, 3), false)
  t.equal(applyProbeResult(h, false, cfg, 4), false, 'a failure resets the success count')
  t.equal(applyProbeResult(h, true, cfg, 5), false)
  t.equal(applyProbeResult(h, true, cfg, 6), false)
  t.equal(h.flags, Flag.FailedProbe)
  t.equal(applyProbeResult(h, true, cfg, 7), true, 'third in a row: up')
  t.equal(h.flags, 0)
})

t.test('applyProbeResult: a passing probe also clears FailedConnect (set by a refused request)', async t => {
  const h = new HostHealth('10.0.0.1:80')
  h.set(Flag.FailedConnect, true)
  t.equal(applyProbeResult(h, true, DEFAULT_PROBE, 1), true)
  t.equal(h.flags, 0)
  h.set(Flag.FailedConnect, true)
  h.set(Flag.Drained, true)
  applyProbeResult(h, true, DEFAULT_PROBE, 2)
  t.equal(h.flags, Flag.Drained, 'other writers\' flags are left alone')

  const slow = config({ successThreshold: 2 })
  const h2 = new HostHealth('10.0.0.2:80')
  h2.set(Flag.FailedConnect, true)
  t.equal(applyProbeResult(h2, true, slow, 1), false, 'below successThreshold: still down')
  t.equal(applyProbeResult(h2, true, slow, 2), true)
  t.equal(h2.flags, 0)
})
