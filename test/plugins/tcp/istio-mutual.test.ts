import t from 'tap'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer as createHttps } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makePki } from '../../helpers/certs.js'
import { gatewayFor } from '../../helpers/gateway.js'
import { rawRequest } from '../../helpers/raw-http.js'
import { ConfigError, startGateway } from '../../../plugins/gateway.js'
import { exchange, tcpServiceEntry } from './helpers.js'

// DestinationRule tls.mode ISTIO_MUTUAL (docs/configuration.md#istio_mutual): with the
// `istio-mutual` credential meshgate speaks mTLS to an upstream that demands a client
// certificate, on HTTP and TCP routes alike; without it the traffic is plaintext, the warning
// says so, and --strict refuses the configuration.

t.test('ISTIO_MUTUAL with the istio-mutual credential: mTLS upstream, HTTP and TCP', async t => {
  const pki = makePki(['secure.internal'])
  const creds = mkdtempSync(join(tmpdir(), 'meshgate-credentials-'))
  t.teardown(() => { rmSync(creds, { recursive: true, force: true }); rmSync(pki.dir, { recursive: true, force: true }) })
  mkdirSync(join(creds, 'istio-mutual'))
  copyFileSync(pki.client.cert, join(creds, 'istio-mutual', 'tls.crt'))
  copyFileSync(pki.client.key, join(creds, 'istio-mutual', 'tls.key'))
  copyFileSync(pki.ca, join(creds, 'istio-mutual', 'ca.crt'))
  const clients: string[] = []
  const up = createHttps({
    cert: pki.read(pki.server('secure.internal').cert),
    key: pki.read(pki.server('secure.internal').key),
    ca: pki.read(pki.ca),
    requestCert: true,
    rejectUnauthorized: true
  }, (req, res) => {
    clients.push(String((req.socket as TLSSocket).getPeerCertificate().subject.CN))
    res.writeHead(200, { 'x-upstream': 'secure' })
    res.end('mtls ok')
  })
  await new Promise<void>(resolve => up.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { up.closeAllConnections(); up.close(() => resolve()) }))
  const port = (up.address() as AddressInfo).port
  const yaml = [
    tcpServiceEntry('secure', { v1: port }, { annotations: { 'meshgate.io/mesh-tcp-ports': '{"9000": 19001}' } }).replace('protocol: TCP', 'protocol: TCP }\n  - { number: 9080, name: http, protocol: HTTP').replace('ports: { tcp:', `ports: { http: ${port}, tcp:`),
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: secure }
spec:
  host: secure
  trafficPolicy:
    tls: { mode: ISTIO_MUTUAL, sni: secure.internal }
`].join('---\n')
  const gw = await gatewayFor(t, yaml, { gatewayPorts: [19001], credentialsDir: creds, strict: true })
  t.same(gw.problems.filter(p => p.path?.endsWith('tls.mode') === true), [], 'no plaintext warning: the traffic is encrypted')
  const r = await rawRequest(gw.mesh, '/', { headers: { host: 'secure:9080' } })
  t.equal(r.status, 200)
  t.equal(r.body, 'mtls ok')
  t.same(clients, ['client'], 'the upstream saw the istio-mutual client certificate')
  // Through the mesh TCP port, meshgate originates the same mTLS and the client speaks plain HTTP.
  const tcpPort = gw.listeners.find(l => l.configPort === 19001)!.port
  const raw = await exchange(tcpPort, 'GET / HTTP/1.1\r\nhost: secure\r\nconnection: close\r\n\r\n')
  t.match(raw.data, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\nmtls ok\r\n/)
  t.same(clients, ['client', 'client'])
})

t.test('ISTIO_MUTUAL without the credential: plaintext, said in the warning; refused under --strict', async t => {
  const creds = mkdtempSync(join(tmpdir(), 'meshgate-credentials-'))
  t.teardown(() => rmSync(creds, { recursive: true, force: true }))
  const yaml = [tcpServiceEntry('db', { v1: 1 }), `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: db }
spec:
  host: db
  trafficPolicy:
    tls: { mode: ISTIO_MUTUAL }
`].join('---\n')
  const gw = await gatewayFor(t, yaml, { gatewayPorts: [], credentialsDir: creds })
  t.match(gw.problems, [{ severity: 'Warning', path: 'spec.trafficPolicy.tls.mode', message: /meshgate connects to this destination in plaintext/ }])
  const refused = await startGateway({ config: { inputs: [{ file: 'dr.yaml', text: yaml }] }, host: '127.0.0.1', meshPort: 0, accessLog: () => {}, credentialsDir: creds, strict: true })
    .then(async g => { await g.close(); return undefined }, (e: unknown) => e)
  t.type(refused, ConfigError)
  t.match((refused as ConfigError).problems, [{ severity: 'Error', file: 'dr.yaml', line: 24, path: 'spec.trafficPolicy.tls.mode', message: /plaintext/ }])
})
