import { createServer as createHttp1Server } from 'node:http'
import { createSecureServer, createServer, type Http2SecureServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { makePki } from '../helpers/certs.js'
import { clusterOf, gatewayFor, type InlineGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { until, waitForLogs } from '../helpers/wait.js'
import { probedApp } from '../helpers/yaml.js'

// `httpGet` probes of HTTP/2 clusters speak the cluster's protocol: h2c with prior knowledge,
// or h2 over TLS with the cluster's CA and SNI. The endpoints are HTTP/2-only node:http2 servers
// (no HTTP/1.1 fallback), healthy while /healthz answers 200 and taken out when it answers 503.
// A probe of another port (`httpGet.port`, a separate health server) speaks HTTP/1.1.

interface H2Endpoint { port: number; health: { status: number }; probes: IncomingHttpHeaders[]; close: () => Promise<void> }

async function h2Endpoint (server: Http2Server | Http2SecureServer): Promise<H2Endpoint> {
  const health = { status: 200 }
  const probes: IncomingHttpHeaders[] = []
  const sessions = new Set<{ destroy: () => void }>()
  server.on('session', s => sessions.add(s))
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    if (headers[':path'] === '/healthz') {
      probes.push(headers)
      stream.respond({ ':status': health.status })
      stream.end(health.status === 200 ? 'ok' : 'draining')
      return
    }
    stream.respond({ ':status': 200, 'content-type': 'text/plain' })
    stream.end('served over HTTP/2')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    health,
    probes,
    close: () => new Promise(resolve => { for (const s of sessions) s.destroy(); server.close(() => resolve()) })
  }
}

const HTTP2_PORT = { number: 9080, name: 'http2-web', protocol: 'HTTP2' }

const PROBE = '{"httpGet": {"path": "/healthz", "host": "app.health", "httpHeaders": [{"name": "X-Probe", "value": "h2"}, {"name": "Connection", "value": "close"}, {"name": "Host", "value": "not.this"}]}, "periodSeconds": 0.1, "timeoutSeconds": 0.5, "failureThreshold": 1}'
const PLAIN_PROBE = '{"httpGet": {"path": "/healthz"}, "periodSeconds": 0.1, "timeoutSeconds": 0.5, "failureThreshold": 1}'

const cluster = (gw: InlineGateway): ReturnType<typeof clusterOf> => clusterOf(gw, 'outbound|9080||app')

const get = (gw: InlineGateway): ReturnType<typeof rawRequest> => rawRequest(gw.ingress, '/page', { headers: { host: 'app.example.com' } })

/** Healthy by probe, out at a 503 (then 503 UH to clients), back at 200. */
async function inAndOut (t: Test, gw: InlineGateway, ep: H2Endpoint): Promise<void> {
  const c = cluster(gw)
  const host = c.endpoints[0].host
  await until('two probes over HTTP/2', () => ep.probes.length >= 2, 15000)
  t.equal(host.lastProbeError, '', 'the probe passed')
  t.ok(host.lastProbeAt > 0)
  t.equal(await gw.health.probeOnce(`127.0.0.1:${ep.port}`), true, 'a probe run now passes too')
  t.equal(c.hasHealthy(), true)
  const ok = await get(gw)
  t.equal(ok.status, 200)
  t.equal(ok.body, 'served over HTTP/2')

  ep.health.status = 503
  await until('the 503 takes the endpoint out', () => !c.hasHealthy(), 15000)
  t.equal(host.lastProbeError, 'status 503')
  const down = await get(gw)
  t.equal(down.status, 503)
  t.equal(down.body, 'no healthy upstream')
  await waitForLogs(gw.logs, 2)
  t.equal(gw.logs[1].response_flags, 'UH')

  ep.health.status = 200
  await until('a 200 brings it back', () => c.hasHealthy(), 15000)
  t.equal((await get(gw)).status, 200)
}

t.test('h2c: an HTTP/2-only endpoint is probed over h2c', async t => {
  const ep = await h2Endpoint(createServer())
  t.teardown(() => ep.close())
  await t.rejects(rawRequest(`http://127.0.0.1:${ep.port}`, '/healthz'), 'the endpoint refuses HTTP/1.1')
  const gw = await gatewayFor(t, probedApp(HTTP2_PORT, ep.port, PROBE), { overload: false })
  await inAndOut(t, gw, ep)
  const p = ep.probes[0]
  t.same([p[':method'], p[':scheme'], p[':authority'], p['user-agent'], p['x-probe']], ['GET', 'http', 'app.health', 'meshgate-probe', 'h2'],
    'GET, httpGet.host as :authority (over a Host header), the configured header')
  t.equal(p.connection, undefined, 'no connection-specific header over HTTP/2')
})

t.test('h2 over TLS: the probe uses the cluster\'s CA and SNI, ALPN h2', async t => {
  const pki = makePki(['app.internal'])
  const srv = pki.server('app.internal')
  const ep = await h2Endpoint(createSecureServer({ cert: pki.read(srv.cert), key: pki.read(srv.key) }))
  t.teardown(() => ep.close())
  const gw = await gatewayFor(t, probedApp(HTTP2_PORT, ep.port, PLAIN_PROBE, `{ mode: SIMPLE, sni: app.internal, caCertificates: ${pki.ca} }`), { overload: false })
  await inAndOut(t, gw, ep)
  t.equal(ep.probes[0][':scheme'], 'https')
  t.equal(ep.probes[0][':authority'], `127.0.0.1:${ep.port}`, 'without httpGet.host: the endpoint address')

  // A CA that did not sign the server's certificate: the probe fails like a request would.
  const other = makePki(['app.internal'])
  const gw2 = await gatewayFor(t, probedApp(HTTP2_PORT, ep.port, PLAIN_PROBE, `{ mode: SIMPLE, sni: app.internal, caCertificates: ${other.ca} }`), { overload: false })
  await until('the unverified endpoint is out', () => !cluster(gw2).hasHealthy(), 15000)
  t.match(cluster(gw2).endpoints[0].host.lastProbeError, /CERT|SIGNATURE|certificate/i)
})

t.test('a probe of another port speaks HTTP/1.1 (a separate health server)', async t => {
  const ep = await h2Endpoint(createServer())
  t.teardown(() => ep.close())
  const seen: Array<{ version: string; host: string | undefined }> = []
  const healthStatus = { code: 200 }
  const health = createHttp1Server((req, res) => {
    seen.push({ version: req.httpVersion, host: req.headers.host })
    res.writeHead(healthStatus.code).end()
  })
  await new Promise<void>(resolve => health.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => health.close(resolve)))
  const port = (health.address() as AddressInfo).port
  const gw = await gatewayFor(t, probedApp(HTTP2_PORT, ep.port, `{"httpGet": {"path": "/healthz", "port": ${port}}, "periodSeconds": 0.1, "timeoutSeconds": 0.5, "failureThreshold": 1}`), { overload: false })
  await until('probes on the health port', () => seen.length >= 2, 15000)
  t.equal(seen[0].version, '1.1')
  t.equal(ep.probes.length, 0, 'the HTTP/2 port is not probed')
  t.equal((await get(gw)).status, 200)
  healthStatus.code = 503
  await until('the health port\'s 503 takes the endpoint out', () => !cluster(gw).hasHealthy(), 15000)
})
