import { fork } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { request as httpsRequest } from 'node:https'
import { connect as h2connect } from 'node:http2'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { makePki } from '../helpers/certs.js'
import { startInlineGateway } from '../helpers/gateway.js'
import { rawExchange, rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { sleep, waitForLogs } from '../helpers/wait.js'
import { gateway, gatewayVs, meshRoute, serviceEntry } from '../helpers/yaml.js'

// docs/testing.md#j-graceful-shutdown, table J: graceful shutdown in order (J1), and a forced exit by the hard
// deadline or a second signal (J2). Kept to a few seconds with short configured windows.

function yaml (port: number): string {
  return `${meshRoute()}
---
${serviceEntry('app', { v1: port })}`
}

t.test('J1: readiness false at once, served through the preStop window, then in-flight requests finish', async t => {
  const up = await startUpstream('app', (req, res) => {
    if (req.url === '/slow') { setTimeout(() => res.end('slow done'), 2500); return }
    res.end('ok')
  })
  const gw = await startInlineGateway(yaml(up.port), { gatewayPorts: [], overload: false, shutdownDelayMs: 800 })
  t.teardown(() => up.close())
  const inflight = rawRequest(gw.mesh, '/slow', { headers: { host: 'app' } })
  await sleep(200)
  const started = Date.now()
  const closing = gw.close(10_000)
  t.equal(gw.ready, false, '1. readiness false immediately')
  const during = await rawRequest(gw.mesh, '/during', { headers: { host: 'app' } })
  t.equal(during.status, 200, '2. a new request inside the preStop window is still served')
  await sleep(1000)
  await t.rejects(rawRequest(gw.mesh, '/after', { headers: { host: 'app' } }), '3. after the window, new connections are refused')
  const slow = await inflight
  t.equal(slow.status, 200, '3. the request in flight completed')
  t.equal(slow.body, 'slow done')
  await closing
  const ms = Date.now() - started
  t.ok(ms >= 2000 && ms < 8000, `5. closed once the in-flight request ended, before the deadline (${ms} ms)`)
  await waitForLogs(gw.logs, 2)
  t.ok(gw.logs.some(l => l.path === '/slow' && l.response_code === '200'), 'the in-flight request was logged 200')
})

t.test('J1: a request on a kept-alive connection after close() begins gets 503 with Connection: close', async t => {
  const up = await startUpstream('app', (req, res) => {
    if (req.url === '/slow') { setTimeout(() => res.end('slow done'), 1500); return }
    res.end('ok')
  })
  const gw = await startInlineGateway(yaml(up.port), { gatewayPorts: [], overload: false })
  t.teardown(() => up.close())
  // Two requests on one connection: the first is in flight when close() begins, the second is
  // sent on that same connection afterwards.
  const exchange = rawExchange(gw.mesh, ['GET /slow HTTP/1.1\r\nHost: app\r\n\r\n', 'GET /second HTTP/1.1\r\nHost: app\r\n\r\n'], { gapMs: 400, waitMs: 8000 })
  await sleep(200)
  const closing = gw.close(10_000)
  const r = await exchange
  await closing
  t.equal(r.statuses[0], 200, 'the in-flight request completed')
  t.ok(r.statuses.length === 1 || r.statuses[1] === 503, `the second request was not served normally (${r.statuses.join(',')})`)
  if (r.statuses[1] === 503) t.match(r.data, /connection: close/i, '503 carries Connection: close')
  t.ok(r.closed, 'the connection was closed')
})

t.test('J2: the hard deadline aborts what is still running and close() returns', async t => {
  const up = await startUpstream('app', () => { /* never answers */ })
  const gw = await startInlineGateway(yaml(up.port), { gatewayPorts: [], overload: false })
  t.teardown(() => up.close())
  const stuck = rawRequest(gw.mesh, '/stuck', { headers: { host: 'app' } }).then(() => 'answered', () => 'aborted')
  await sleep(200)
  const started = Date.now()
  await gw.close(1000)
  const ms = Date.now() - started
  t.ok(ms >= 900 && ms < 5000, `close() returned at the deadline (${ms} ms)`)
  t.equal(await stuck, 'aborted', 'the stuck request was aborted')
  await waitForLogs(gw.logs, 1)
  t.equal(gw.logs[0].path, '/stuck', 'and logged')
})

t.test('J2: meshgate exits at the drain deadline on SIGTERM, and at once on a second SIGTERM', async t => {
  const up = await startUpstream('app', () => { /* never answers */ })
  t.teardown(() => up.close())
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-shutdown-'))
  const file = join(dir, 'app.yaml')
  await writeFile(file, yaml(up.port))
  const bin = fileURLToPath(new URL('../../bin/meshgate.ts', import.meta.url))
  const run = async (drain: string, signals: number): Promise<{ code: number | null; ms: number }> => {
    const child = fork(bin, ['--config', file, '--host', '127.0.0.1', '--mesh-port', '0', '--admin-port', 'off', '--access-log', 'off', '--drain-timeout', drain], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
    let err = ''
    const ready = new Promise<string>((resolve, reject) => {
      child.stderr!.on('data', d => {
        err += String(d)
        const m = /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*mesh listener ready/.exec(err)
        if (m !== null) resolve(m[1])
      })
      child.once('exit', code => reject(new Error(`exited ${code}: ${err}`)))
    })
    const mesh = await ready
    void rawRequest(mesh, '/stuck', { headers: { host: 'app' } }).catch(() => {})
    await sleep(300)
    const started = Date.now()
    const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
    child.kill('SIGTERM')
    if (signals > 1) { await sleep(200); child.kill('SIGTERM') }
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    const code = await exited
    clearTimeout(timer)
    return { code, ms: Date.now() - started }
  }
  const one = await run('1', 1)
  t.equal(one.code, 0, 'one SIGTERM: clean exit 0')
  t.ok(one.ms >= 800 && one.ms < 8000, `after the 1 s drain deadline despite a stuck request (${one.ms} ms)`)
  const two = await run('30', 2)
  t.equal(two.code, 1, 'second SIGTERM: forced exit 1')
  t.ok(two.ms < 5000, `without waiting for the 30 s drain (${two.ms} ms)`)
})

t.test('J2 on HTTPS (h2 and HTTP/1.1): the deadline ends stuck requests; close() returns, nothing throws', async t => {
  const pki = makePki(['secure.example.com'])
  const cert = pki.server('secure.example.com')
  const up = await startUpstream('app', () => { /* never answers */ })
  t.teardown(() => up.close())
  const gw = await startInlineGateway(`${gateway({ tls: cert })}---
${gatewayVs('  - route:\n    - destination: { host: app }\n')}
---
${serviceEntry('app', { v1: up.port })}`, { gatewayPorts: [8443], overload: false })
  const session = h2connect(gw.ingress, { ca: pki.read(pki.ca), servername: 'secure.example.com' })
  session.on('error', () => {})
  t.teardown(() => session.destroy())
  const h2 = new Promise<string>(resolve => {
    const req = session.request({ ':path': '/stuck', ':authority': 'secure.example.com' })
    req.on('response', () => resolve('answered'))
    req.on('close', () => resolve('aborted'))
    req.on('error', () => resolve('aborted'))
    req.resume()
  })
  const h1 = new Promise<string>(resolve => {
    const req = httpsRequest({ host: '127.0.0.1', port: Number(new URL(gw.ingress).port), path: '/stuck', servername: 'secure.example.com', headers: { host: 'secure.example.com' }, ca: pki.read(pki.ca), agent: false }, () => resolve('answered'))
    req.on('error', () => resolve('aborted'))
    req.end()
  })
  await sleep(300)
  const started = Date.now()
  await gw.close(800)
  const ms = Date.now() - started
  t.ok(ms < 5000, `close() returned at the deadline (${ms} ms)`)
  t.equal(await h2, 'aborted', 'the stuck h2 stream was ended')
  t.equal(await h1, 'aborted', 'the stuck HTTP/1.1 request was ended')
})
