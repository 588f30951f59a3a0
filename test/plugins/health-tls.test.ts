import { createServer as createHttpsServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { makePki } from '../helpers/certs.js'
import { clusterOf, gatewayFor, type InlineGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { until, waitForLogs } from '../helpers/wait.js'
import { HTTP_9080, probedApp } from '../helpers/yaml.js'

// `httpGet` probes of HTTP/1.1 endpoints that speak only TLS. A probe of the port a cluster
// originates TLS to (DestinationRule `tls.mode: SIMPLE`/`MUTUAL`) goes over TLS with the
// cluster's CA and SNI, as its requests do; a cleartext probe would fail there and take every
// endpoint out. `httpGet.scheme: HTTPS` probes a separate health port over TLS without
// verifying its certificate, as a kubelet's HTTPS probe does.

interface TlsEndpoint { port: number; status: { code: number }; probes: Array<{ host?: string; servername: string | false }>; close: () => Promise<void> }

async function tlsEndpoint (server: Server): Promise<TlsEndpoint> {
  const status = { code: 200 }
  const probes: TlsEndpoint['probes'] = []
  server.on('request', (req, res) => {
    if (req.url === '/healthz') {
      probes.push({ host: req.headers.host, servername: (req.socket as unknown as { servername: string | false }).servername })
      res.writeHead(status.code).end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('served over TLS')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    status,
    probes,
    close: () => new Promise(resolve => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

const cluster = (gw: InlineGateway): ReturnType<typeof clusterOf> => clusterOf(gw, 'outbound|9080||app')
const get = (gw: InlineGateway): ReturnType<typeof rawRequest> => rawRequest(gw.ingress, '/page', { headers: { host: 'app.example.com' } })
const PROBE = '{"httpGet": {"path": "/healthz"}, "periodSeconds": 0.1, "timeoutSeconds": 0.5, "failureThreshold": 1}'

t.test('a TLS cluster\'s serving port is probed over TLS with the cluster\'s CA and SNI', async t => {
  const pki = makePki(['app.internal'])
  const srv = pki.server('app.internal')
  const ep = await tlsEndpoint(createHttpsServer({ cert: pki.read(srv.cert), key: pki.read(srv.key) }))
  t.teardown(() => ep.close())
  const gw = await gatewayFor(t, probedApp(HTTP_9080, ep.port, PROBE, `{ mode: SIMPLE, sni: app.internal, caCertificates: ${pki.ca} }`), { overload: false })
  const c = cluster(gw)
  await until('two probes over TLS', () => ep.probes.length >= 2, 15000)
  t.equal(c.endpoints[0].host.lastProbeError, '', 'the probe passed')
  t.equal(ep.probes[0].servername, 'app.internal', 'the cluster\'s SNI')
  t.equal(c.hasHealthy(), true)
  const ok = await get(gw)
  t.equal(ok.status, 200)
  t.equal(ok.body, 'served over TLS')

  ep.status.code = 503
  await until('the 503 takes the endpoint out', () => !c.hasHealthy(), 15000)
  t.equal(c.endpoints[0].host.lastProbeError, 'status 503')
  const down = await get(gw)
  t.equal(down.status, 503)
  await waitForLogs(gw.logs, 2)
  t.equal(gw.logs[1].response_flags, 'UH')
  ep.status.code = 200
  await until('a 200 brings it back', () => c.hasHealthy(), 15000)
  t.equal((await get(gw)).status, 200)

  // A CA that did not sign the endpoint's certificate: the probe fails as a request would.
  const other = makePki(['app.internal'])
  const gw2 = await gatewayFor(t, probedApp(HTTP_9080, ep.port, PROBE, `{ mode: SIMPLE, sni: app.internal, caCertificates: ${other.ca} }`), { overload: false })
  await until('the unverified endpoint is out', () => !cluster(gw2).hasHealthy(), 15000)
  t.match(cluster(gw2).endpoints[0].host.lastProbeError, /CERT|SIGNATURE|certificate/i)
})

t.test('httpGet.scheme HTTPS: a health port probed over TLS without verifying its certificate', async t => {
  // The health server's certificate is signed by the test CA, which the probe is not given.
  const pki = makePki(['health.internal'])
  const srv = pki.server('health.internal')
  const health = await tlsEndpoint(createHttpsServer({ cert: pki.read(srv.cert), key: pki.read(srv.key) }))
  t.teardown(() => health.close())
  const upstream = await tlsEndpoint(createHttpsServer({ cert: pki.read(srv.cert), key: pki.read(srv.key) }))
  t.teardown(() => upstream.close())
  const probe = (scheme: string): string => `{"httpGet": {"path": "/healthz", "port": ${health.port}${scheme}}, "periodSeconds": 0.1, "timeoutSeconds": 0.5, "failureThreshold": 1}`
  const gw = await gatewayFor(t, probedApp(HTTP_9080, upstream.port, probe(', "scheme": "HTTPS"'), `{ mode: SIMPLE, sni: health.internal, caCertificates: ${pki.ca} }`), { overload: false })
  const c = cluster(gw)
  await until('probes over TLS on the health port', () => health.probes.length >= 2, 15000)
  t.equal(c.endpoints[0].host.lastProbeError, '', 'TLS without verification: the probe passed')
  t.equal(upstream.probes.length, 0, 'the serving port is not probed')
  t.equal((await get(gw)).status, 200)
  health.status.code = 503
  await until('the health port\'s 503 takes the endpoint out', () => !c.hasHealthy(), 15000)

  // Without the scheme the same health port is probed in cleartext, which a TLS server refuses.
  health.status.code = 200
  const gw2 = await gatewayFor(t, probedApp(HTTP_9080, upstream.port, probe(''), `{ mode: SIMPLE, sni: health.internal, caCertificates: ${pki.ca} }`), { overload: false })
  await until('a cleartext probe of a TLS port fails', () => cluster(gw2).endpoints[0].host.lastProbeError !== '', 15000)
  t.equal(cluster(gw2).hasHealthy(), false, 'scheme HTTP (the default) on a TLS health port: out')
})
