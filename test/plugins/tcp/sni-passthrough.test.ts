import t from 'tap'
import { readFileSync, rmSync } from 'node:fs'
import { request as httpsRequest, createServer as createHttps } from 'node:https'
import type { AddressInfo } from 'node:net'
import { connect as tlsConnect, type PeerCertificate } from 'node:tls'
import { join } from 'node:path'
import { makePki } from '../../helpers/certs.js'
import { type Teardown, gatewayFor } from '../../helpers/gateway.js'
import { waitForLogs } from '../../helpers/wait.js'
import { loadConfig } from '../../../src/config/load.js'
import { tcpServiceEntry } from './helpers.js'

// The istio.io task "Ingress Gateway without TLS Termination"
// (content/en/docs/tasks/traffic-management/ingress/ingress-sni-passthrough), replayed with its
// Gateway and VirtualService unchanged (test/fixtures/istio-tasks/ingress-sni-passthrough): an
// HTTPS "nginx" on loopback presents nginx.example.com's certificate, signed by a CA made here
// as the page's openssl steps make one, and a real TLS client that trusts only that CA reaches it
// through meshgate's port 443, which never terminates TLS.

const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'istio-tasks', 'ingress-sni-passthrough')
const fixture = (f: string): { file: string; text: string } => ({ file: `istio-tasks/ingress-sni-passthrough/${f}`, text: readFileSync(join(FIXTURES, f), 'utf8') })

/** The Kubernetes Service `my-nginx` (port 443, TCP) and its one pod: the stand-in's address. */
const myNginx = (port: number): string => tcpServiceEntry('my-nginx', { v1: port }, { servicePort: 443 })

async function nginx (t: Teardown, hosts: string[]): Promise<{ port: number; pki: ReturnType<typeof makePki> }> {
  const pki = makePki(hosts)
  t.teardown(() => rmSync(pki.dir, { recursive: true, force: true }))
  const server = createHttps({
    cert: pki.read(pki.server(hosts[0]).cert),
    key: pki.read(pki.server(hosts[0]).key)
  }, (req, res) => {
    res.writeHead(200, { server: 'nginx/1.17.10', 'content-type': 'text/html' })
    res.end(`<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>host ${req.headers.host ?? ''}</body>\n</html>\n`)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { port: (server.address() as AddressInfo).port, pki }
}

/** curl --resolve nginx.example.com:PORT:127.0.0.1 --cacert example.com.crt https://nginx.example.com:PORT */
function curl (port: number, servername: string, ca: Buffer): Promise<{ status: number; body: string; cert: PeerCertificate; authorized: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, servername, ca, path: '/', headers: { host: `${servername}:${port}` }, agent: false }, res => {
      let body = ''
      const sock = res.socket as import('node:tls').TLSSocket
      const cert = sock.getPeerCertificate()
      const authorized = sock.authorized
      res.on('data', c => { body += c.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cert, authorized }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('Ingress Gateway without TLS Termination: the page\'s YAML unchanged, the upstream\'s certificate seen end to end', async t => {
  const up = await nginx(t, ['nginx.example.com'])
  const gw = await gatewayFor(t, '', {
    gatewayPorts: [443],
    config: { inputs: [{ file: 'my-nginx.yaml', text: myNginx(up.port) }, fixture('gateway.yaml'), fixture('virtual-service.yaml')] }
  })
  t.same(gw.problems.filter(p => p.severity === 'Error' || p.code === 'MG0003'), [], 'the task loads with no error and nothing "not supported"')
  const l = gw.listeners.find(x => x.configPort === 443)!
  t.match(l.url, /^tcp:/, 'port 443 is a TCP listener: TLS is not terminated')
  const r = await curl(l.port, 'nginx.example.com', readFileSync(up.pki.ca))
  t.equal(r.status, 200)
  t.match(r.body, '<title>Welcome to nginx!</title>')
  t.equal(r.cert.subject.CN, 'nginx.example.com', 'subject: CN=nginx.example.com')
  t.equal(r.cert.issuer.CN, 'meshgate test CA', 'issued by the CA made in the test')
  t.equal(r.authorized, true, 'SSL certificate verify ok')
  await waitForLogs(gw.logs, 1)
  t.match(gw.logs[0], {
    authority: 'nginx.example.com',
    response_code: '0',
    response_flags: '-',
    route_name: 'tls[0]',
    upstream_cluster: 'outbound|443||my-nginx.default.svc.cluster.local',
    upstream_host: `127.0.0.1:${up.port}`
  })
  t.ok(Number(gw.logs[0].bytes_received) > 200 && Number(gw.logs[0].bytes_sent) > 500, 'the handshake and the exchange counted both ways')

  // Another name than the server's hosts, no SNI at all, or not TLS: no filter chain, closed (NR).
  const closed = (servername: string | undefined): Promise<string> => new Promise(resolve => {
    const s = tlsConnect({ host: '127.0.0.1', port: l.port, ca: readFileSync(up.pki.ca), ...(servername !== undefined ? { servername } : {}) })
    s.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message))
    s.on('secureConnect', () => { s.destroy(); resolve('connected') })
  })
  t.equal(await closed('other.example.com'), 'ECONNRESET', 'an SNI outside the server hosts is dropped')
  t.not(await closed(undefined), 'connected', 'no SNI is dropped')
  await waitForLogs(gw.logs, 3)
  t.same(gw.logs.slice(1, 3).map(l => [l.response_flags, l.authority]), [['NR', 'other.example.com'], ['NR', '-']])
})

t.test('sniHosts wildcards and weighted TLS routes', async t => {
  const a = await nginx(t, ['a.example.com'])
  const gw = await gatewayFor(t, '', {
    gatewayPorts: [8443],
    config: {
      inputs: [{
        file: 'wild.yaml',
        text: [tcpServiceEntry('web', { a: a.port }, { servicePort: 443 }), `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: tls-gw }
spec:
  servers:
  - port: { number: 8443, name: tls, protocol: TLS }
    tls: { mode: PASSTHROUGH }
    hosts: ["*.example.com"]
`, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web }
spec:
  hosts: ["*.example.com"]
  gateways: [tls-gw]
  tls:
  - match: [{ sniHosts: ["*.example.com"] }]
    route: [{ destination: { host: web } }]
`].join('---\n')
      }]
    }
  })
  const l = gw.listeners.find(x => x.configPort === 8443)!
  const r = await curl(l.port, 'a.example.com', readFileSync(a.pki.ca))
  t.equal(r.cert.subject.CN, 'a.example.com')
  t.equal(r.authorized, true)
  t.match(r.body, 'host a.example.com')
})

t.test('AUTO_PASSTHROUGH is refused with file, line and field', async t => {
  const r = loadConfig([{ file: 'east-west.yaml', text: `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: cross-network-gateway }
spec:
  servers:
  - port: { number: 15443, name: tls, protocol: TLS }
    tls:
      mode: AUTO_PASSTHROUGH
    hosts: ["*.local"]
` }])
  t.equal(r.ok, false)
  t.match(r.problems, [{ severity: 'Error', code: 'MG0003', file: 'east-west.yaml', line: 8, path: 'spec.servers[0].tls.mode', message: /AUTO_PASSTHROUGH is not supported/ }])
})
