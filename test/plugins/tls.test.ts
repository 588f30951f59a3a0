import { createServer as createHttpsServer, request as httpsRequest } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import t from 'tap'
import { makePki } from '../helpers/certs.js'
import { startInlineGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitForLogs } from '../helpers/wait.js'
import { meshRoute, serviceEntry } from '../helpers/yaml.js'

// Gateway TLS (SIMPLE with SNI certificates, MUTUAL), httpsRedirect, and upstream TLS from a
// DestinationRule, with certificates generated for the test.

const pki = makePki(['a.example.com', 'b.example.com', 'localhost'])

function get (url: string, servername: string, opts: { cert?: Buffer; key?: Buffer } = {}): Promise<{ status: number; body: string; peerCN: string }> {
  const u = new URL(url)
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: Number(u.port), path: '/x', servername, headers: { host: servername }, ca: pki.read(pki.ca), agent: false, ...opts }, res => {
      let body = ''
      res.on('data', c => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peerCN: String((res.socket as TLSSocket).getPeerCertificate().subject?.CN) }))
    })
    req.on('error', reject)
    req.end()
  })
}

function gatewayYaml (mode: string, upPort: number): string {
  const a = pki.server('a.example.com')
  const b = pki.server('b.example.com')
  const ca = mode === 'MUTUAL' ? `\n      caCertificates: ${pki.ca}` : ''
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  servers:
  - port: { number: 8443, name: https-a, protocol: HTTPS }
    hosts: [a.example.com]
    tls:
      mode: ${mode}
      serverCertificate: ${a.cert}
      privateKey: ${a.key}${ca}
  - port: { number: 8443, name: https-b, protocol: HTTPS }
    hosts: [b.example.com]
    tls:
      mode: ${mode}
      serverCertificate: ${b.cert}
      privateKey: ${b.key}${ca}
  - port: { number: 8080, name: http, protocol: HTTP }
    hosts: [a.example.com]
    tls: { httpsRedirect: true }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: app }
spec:
  hosts: [a.example.com, b.example.com]
  gateways: [gw]
  http:
  - route:
    - destination: { host: app }
---
${serviceEntry('app', { v1: upPort })}`
}

t.test('HTTPS SIMPLE: the certificate is chosen by SNI; httpsRedirect on the plain port', async t => {
  const up = await startUpstream('up')
  const gw = await startInlineGateway(gatewayYaml('SIMPLE', up.port), { gatewayPorts: [8080, 8443], meshPort: null })
  t.teardown(async () => { await gw.close(); await up.close() })
  const https = gw.listeners.find(l => l.configPort === 8443)!.url
  t.match(https, /^https:/)
  let r = await get(https, 'a.example.com')
  t.equal(r.status, 200)
  t.equal(r.peerCN, 'a.example.com', 'a.example.com certificate for SNI a')
  t.equal(JSON.parse(r.body).headers['x-forwarded-proto'], 'https')
  r = await get(https, 'b.example.com')
  t.equal(r.peerCN, 'b.example.com', 'b.example.com certificate for SNI b')
  const plain = gw.listeners.find(l => l.configPort === 8080)!.url
  const red = await rawRequest(plain, '/path?q=1', { headers: { host: 'a.example.com:8080' } })
  t.equal(red.status, 301)
  t.equal(red.headers.location, 'https://a.example.com/path?q=1')
})

t.test('HTTPS MUTUAL: a client without a certificate is refused', async t => {
  const up = await startUpstream('up')
  const gw = await startInlineGateway(gatewayYaml('MUTUAL', up.port), { gatewayPorts: [8080, 8443], meshPort: null })
  t.teardown(async () => { await gw.close(); await up.close() })
  const https = gw.listeners.find(l => l.configPort === 8443)!.url
  await t.rejects(get(https, 'a.example.com'), 'no client certificate: handshake refused')
  const r = await get(https, 'a.example.com', { cert: pki.read(pki.client.cert), key: pki.read(pki.client.key) })
  t.equal(r.status, 200, 'with a client certificate signed by the CA')
})

t.test('upstream TLS from DestinationRule trafficPolicy.tls', async t => {
  const cert = pki.server('localhost')
  const server = createHttpsServer({ cert: pki.read(cert.cert), key: pki.read(cert.key) }, (req, res) => { res.end(`secure ${req.headers.host}`) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const dr = (tls: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: s }
spec:
  host: s
  trafficPolicy:
    tls: ${tls}
---
${meshRoute('s')}
---
${serviceEntry('s', { v1: port })}`
  const ok = await startInlineGateway(dr(`{ mode: SIMPLE, caCertificates: ${pki.ca}, sni: localhost }`), { gatewayPorts: [] })
  const bad = await startInlineGateway(dr('{ mode: SIMPLE }'), { gatewayPorts: [] })
  t.teardown(async () => { await ok.close(); await bad.close(); server.close() })
  const r = await rawRequest(ok.mesh, '/', { headers: { host: 's' } })
  t.equal(r.status, 200)
  t.equal(r.body, 'secure s', 'forwarded over TLS, verified against the CA')
  const r2 = await rawRequest(bad.mesh, '/', { headers: { host: 's' } })
  t.equal(r2.status, 503, 'an unverifiable certificate never connects (insecureSkipVerify is off)')
})

t.test('HTTPS listeners speak HTTP/2 (ALPN h2) and forward to HTTP/1.1 upstreams', async t => {
  const { connect } = await import('node:http2')
  const up = await startUpstream('up')
  const gw = await startInlineGateway(gatewayYaml('SIMPLE', up.port), { gatewayPorts: [8080, 8443], meshPort: null })
  t.teardown(async () => { await gw.close(); await up.close() })
  const https = gw.listeners.find(l => l.configPort === 8443)!.url
  const session = connect(https, { ca: pki.read(pki.ca), servername: 'a.example.com' })
  t.teardown(() => { session.close() })
  const got = await new Promise<{ status: number; body: string; alpn: string | false | undefined }>((resolve, reject) => {
    const req = session.request({ ':path': '/h2?x=1', ':authority': 'a.example.com', ':method': 'POST', 'content-type': 'text/plain' })
    let status = 0
    let body = ''
    req.on('response', h => { status = Number(h[':status']) })
    req.on('data', c => { body += c })
    req.on('end', () => resolve({ status, body, alpn: session.alpnProtocol }))
    req.on('error', reject)
    req.end('hello h2')
  })
  t.equal(got.alpn, 'h2', 'negotiated h2 by ALPN')
  t.equal(got.status, 200)
  const seen = JSON.parse(got.body)
  t.equal(seen.headers.host, 'a.example.com', ':authority becomes Host upstream')
  t.equal(seen.url, '/h2?x=1')
  t.notOk(Object.keys(seen.headers).some((k: string) => k.startsWith(':')), 'no pseudo-headers sent upstream')
  t.equal(up.seen.at(-1)?.body, 'hello h2', 'request body streamed through over HTTP/1.1')
  await waitForLogs(gw.logs, 1)
  t.equal(gw.logs.at(-1)?.protocol, 'HTTP/2')
})
