import { spawn } from 'node:child_process'
import { createServer as createHttpsServer } from 'node:https'
import { connect, type AddressInfo, type Socket } from 'node:net'
import t from 'tap'
import { makePki } from '../../helpers/certs.js'
import { startInlineGateway } from '../../helpers/gateway.js'
import { appRequest, rawExchange } from '../../helpers/raw-http.js'
import { closedPort, countingUpstream, startUpstream } from '../../helpers/upstream.js'
import { sleep, waitForLogs } from '../../helpers/wait.js'
import { HTTP_9080, destinationRule, meshRoute, portService, serviceEntry, virtualService } from '../../helpers/yaml.js'
import type { GatewayOptions } from '../../../plugins/gateway.js'

// docs/testing.md#d-upstream-faults, table D: scripted fake upstreams that refuse, fail DNS, hang, reset before or
// after headers, drip, answer 503, lose their client, fail TLS, or never accept. Each row: the
// status and flag the client sees, what the upstream saw, and that nothing leaks or retries wrongly.

function appYaml (ports: Record<string, number>, route = '', dr = ''): string {
  return `${virtualService(`  - ${route}route:
    - destination: { host: app }
`)}---
${serviceEntry('app', ports)}${dr === '' ? '' : `---
${destinationRule('app', `  trafficPolicy:\n${dr}`)}`}`
}

async function gateway (yaml: string, opts: Partial<GatewayOptions> = {}): Promise<Awaited<ReturnType<typeof startInlineGateway>>> {
  return startInlineGateway(yaml, { gatewayPorts: [], overload: false, ...opts })
}

t.test('D1: connection refused → 503 UF at once; retried on a different endpoint', async t => {
  const dead = await closedPort()
  const gw = await gateway(appYaml({ v1: dead }))
  t.teardown(() => gw.close())
  const started = Date.now()
  const r = await appRequest(gw)
  t.equal(r.status, 503)
  t.match(r.body, /connection failure/)
  await waitForLogs(gw.logs, 1)
  t.match(gw.logs[0].response_flags, /^UF/, `flag ${gw.logs[0].response_flags}`)
  t.ok(Date.now() - started < 2000, 'within milliseconds, not a timeout')

  const live = await countingUpstream('live')
  const two = await gateway(appYaml({ a: dead, b: live.port }))
  t.teardown(async () => { await two.close(); await live.close() })
  const codes = await Promise.all(Array.from({ length: 6 }, () => appRequest(two).then(x => x.status)))
  t.same(codes, [200, 200, 200, 200, 200, 200], 'every GET ends on the live endpoint (retry avoids the refused host)')
})

t.test('D2: a name that never resolves → 503, no crash, lookups paced by the refresh period', async t => {
  let lookups = 0
  const lookup = async (name: string): Promise<unknown> => {
    lookups++
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' })
  }
  const gw = await gateway(`${portService('app', HTTP_9080, [9], { resolution: 'DNS', address: 'localhost' })}---
${meshRoute()}
`, { dnsLookup: lookup, dnsRefreshMs: 500 })
  t.teardown(() => gw.close())
  await sleep(300)
  const before = lookups
  const results = await Promise.all(Array.from({ length: 50 }, () => appRequest(gw)))
  t.ok(results.every(r => r.status === 503), '50 requests: all 503')
  await waitForLogs(gw.logs, 50)
  t.ok(gw.logs.every(l => /^(UH|UF)/.test(l.response_flags)), `flags ${[...new Set(gw.logs.map(l => l.response_flags))].join(',')}`)
  t.ok(lookups - before <= 2, `no lookup storm: ${lookups - before} lookups for 50 requests`)
  t.equal((await appRequest(gw)).status, 503, 'still serving 503s, the process is fine')
})

t.test('D3: hang before headers → 504 UT at the route timeout, the upstream request aborted', async t => {
  const closed: number[] = []
  const hang = await startUpstream('hang', req => { const at = Date.now(); req.socket.once('close', () => closed.push(at)) })
  const gw = await gateway(appYaml({ v1: hang.port }, 'timeout: 0.5s\n    '))
  t.teardown(async () => { await gw.close(); await hang.close() })
  const started = Date.now()
  const r = await appRequest(gw)
  const ms = Date.now() - started
  t.equal(r.status, 504)
  t.equal(r.body, 'upstream request timeout')
  t.ok(ms >= 450 && ms < 3000, `at the route timeout (${ms} ms)`)
  await waitForLogs(gw.logs, 1)
  t.equal(gw.logs[0].response_flags, 'UT')
  await sleep(200)
  t.equal(closed.length, 1, 'the upstream saw its connection closed (request aborted, not left running)')

  // No route timeout: the upstream idle timeout (Envoy stream_idle_timeout) still ends it.
  const idle = await gateway(appYaml({ v1: hang.port }), { upstreamIdleTimeoutMs: 700 })
  t.teardown(() => idle.close())
  const s2 = Date.now()
  const r2 = await appRequest(idle)
  t.equal(r2.status, 504, `upstream idle timeout → 504 after ${Date.now() - s2} ms`)
  await waitForLogs(idle.logs, 1)
  t.equal(idle.logs[0].response_flags, 'UT')
})

t.test('D4: reset before headers → 503 UC; a GET is retried on another endpoint, a streamed POST is not', async t => {
  let resets = 0
  const flaky = await startUpstream('flaky', req => { resets++; req.socket.destroy() })
  const good = await startUpstream('good', (_req, res) => { res.end('second try') })
  const gw = await gateway(appYaml({ a: flaky.port }, 'retries: { attempts: 0 }\n    '))
  t.teardown(async () => { await gw.close(); await flaky.close(); await good.close() })
  const r = await appRequest(gw, '/once')
  t.equal(r.status, 503, 'reset before headers → 503')
  t.match(r.body, /reset reason: connection termination/)
  await waitForLogs(gw.logs, 1)
  t.equal(gw.logs[0].response_flags, 'UC')
  const two = await gateway(appYaml({ a: flaky.port, b: good.port }))
  t.teardown(() => two.close())
  resets = 0
  const results = await Promise.all(Array.from({ length: 4 }, () => appRequest(two, '/retry')))
  t.ok(results.every(x => x.status === 200 && x.body === 'second try'), 'GETs retried onto the other endpoint')
  t.ok(resets <= 4, `each reset at most once per request (${resets})`)

  // A chunked body streams once: it cannot be replayed, so no retry.
  const seen: string[] = []
  const once = await startUpstream('once', (req, _res) => { seen.push(req.url ?? ''); req.socket.destroy() })
  const post = await gateway(appYaml({ v1: once.port }))
  t.teardown(async () => { await post.close(); await once.close() })
  const p = await rawExchange(post.mesh, ['POST /up HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n', '5\r\nhello\r\n', '0\r\n\r\n'], { gapMs: 20 })
  t.equal(p.statuses[0], 503, 'streamed POST → 503')
  t.same(seen, ['/up'], 'exactly one attempt: a body already sent is never replayed')
})

t.test('D5: reset mid-response → the client response is aborted, never completed; no retry', async t => {
  let attempts = 0
  const up = await startUpstream('mid', (req, res) => {
    attempts++
    if (req.url === '/chunked') { res.writeHead(200, { 'content-type': 'text/plain' }); res.write('part-one;'); setTimeout(() => req.socket.destroy(), 50); return }
    if (req.url === '/ok') { res.end('ok'); return }
    res.writeHead(200, { 'content-length': '1000' })
    res.write('x'.repeat(100))
    setTimeout(() => req.socket.destroy(), 50)
  })
  const gw = await gateway(appYaml({ v1: up.port }))
  t.teardown(async () => { await gw.close(); await up.close() })
  const chunked = await rawExchange(gw.mesh, 'GET /chunked HTTP/1.1\r\nHost: app\r\n\r\n')
  t.match(chunked.data, /^HTTP\/1\.1 200/, 'the status had gone out')
  t.match(chunked.data, /part-one;/, 'the bytes received so far were passed on')
  t.notMatch(chunked.data, /\r\n0\r\n\r\n$/, 'no terminating chunk: the client can tell the body is incomplete')
  t.ok(chunked.closed, 'the client connection was destroyed')
  const sized = await rawExchange(gw.mesh, 'GET /sized HTTP/1.1\r\nHost: app\r\n\r\n')
  const body = sized.data.slice(sized.data.indexOf('\r\n\r\n') + 4)
  t.match(sized.data, /content-length: 1000/i)
  t.ok(body.length < 1000 && sized.closed, `Content-Length 1000 with ${body.length} bytes, then closed: never looks complete`)
  await waitForLogs(gw.logs, 2)
  t.ok(gw.logs.every(l => /UC|UPE/.test(l.response_flags)), `logged ${gw.logs.map(l => l.response_flags).join(', ')}`)
  t.equal(attempts, 2, 'no retry once the response had started')
  t.equal((await appRequest(gw, '/ok')).body, 'ok', 'the endpoint is not marked down; the next request is fine')
})

t.test('D6: an upstream dripping its body is aborted at the idle timeout', async t => {
  const up = await startUpstream('drip', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('a')
    const timer = setInterval(() => res.write('b'), 3000)
    req.socket.once('close', () => clearInterval(timer))
  })
  const gw = await gateway(appYaml({ v1: up.port }), { upstreamIdleTimeoutMs: 600 })
  t.teardown(async () => { await gw.close(); await up.close() })
  const started = Date.now()
  const r = await rawExchange(gw.mesh, 'GET /drip HTTP/1.1\r\nHost: app\r\n\r\n', { waitMs: 8000 })
  const ms = Date.now() - started
  t.match(r.data, /^HTTP\/1\.1 200/)
  t.ok(r.closed, `aborted after ${ms} ms`)
  t.ok(ms < 2900, 'before the next drip byte would have arrived')
  t.notMatch(r.data, /\r\n0\r\n\r\n$/, 'never completed')
  await waitForLogs(gw.logs, 1)
  t.equal(gw.logs[0].response_flags, 'UT', 'logged as an upstream timeout')
})

t.test('D7: 503 on GET: retried only as configured, at most the configured attempts', async t => {
  let n = 0
  const up = await startUpstream('busy', (_req, res) => { n++; res.writeHead(503); res.end('busy') })
  const dflt = await gateway(appYaml({ v1: up.port }))
  t.teardown(async () => { await dflt.close(); await up.close() })
  t.equal((await appRequest(dflt)).status, 503)
  t.equal(n, 3, 'Istio default (retriable-status-codes 503, 2 attempts): three tries in all, never ten')
  n = 0
  const conf = await gateway(appYaml({ v1: up.port }, 'retries: { attempts: 1, retryOn: 5xx }\n    '))
  t.teardown(() => conf.close())
  t.equal((await appRequest(conf)).status, 503)
  t.equal(n, 2, 'attempts 1: two tries')
  n = 0
  const off = await gateway(appYaml({ v1: up.port }, 'retries: { attempts: 0 }\n    '))
  t.teardown(() => off.close())
  t.equal((await appRequest(off)).status, 503)
  t.equal(n, 1, 'attempts 0: no retry')
})

t.test('D8: 200 client aborts before the upstream answers: each upstream request cancelled, nothing leaks', async t => {
  const up = await countingUpstream('never', () => { /* never answers */ })
  const gw = await gateway(appYaml({ v1: up.port }))
  t.teardown(async () => { await gw.close(); await up.close() })
  const port = Number(new URL(gw.mesh).port)
  for (let i = 0; i < 200; i++) {
    const seen = up.seen.length
    const sock: Socket = connect({ host: '127.0.0.1', port })
    sock.on('error', () => {})
    await new Promise(resolve => sock.once('connect', resolve))
    sock.write(`GET /abort/${i} HTTP/1.1\r\nHost: app\r\n\r\n`)
    const until = Date.now() + 3000
    while (up.seen.length === seen && Date.now() < until) await sleep(2)
    sock.destroy()
  }
  t.equal(up.seen.length, 200, 'every request reached the upstream before its client left')
  const deadline = Date.now() + 5000
  while ((up.open() > 0 || gw.inFlight > 0) && Date.now() < deadline) await sleep(20)
  t.equal(up.open(), 0, 'every upstream connection was closed (requests cancelled, no socket leaked)')
  t.equal(gw.inFlight, 0, 'no request left in flight')
  await waitForLogs(gw.logs, 200, 5000)
  t.ok(gw.logs.every(l => l.response_flags === 'DC'), 'each logged DC')
})

t.test('D9: an upstream certificate that fails verification → 503 UF, no request ever sent', async t => {
  const pki = makePki(['localhost'])
  const cert = pki.server('localhost')
  let requests = 0
  const server = createHttpsServer({ cert: pki.read(cert.cert), key: pki.read(cert.key) }, (_req, res) => { requests++; res.end('secret') })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const gw = await gateway(appYaml({ v1: port }, '', '    tls: { mode: SIMPLE, sni: localhost }\n'))
  t.teardown(async () => { await gw.close(); server.close() })
  const r = await appRequest(gw)
  t.equal(r.status, 503)
  await waitForLogs(gw.logs, 1)
  t.match(gw.logs[0].response_flags, /^UF/, `flag ${gw.logs[0].response_flags} (${gw.logs[0].upstream_transport_failure_reason})`)
  t.equal(requests, 0, 'the HTTPS server never received a request')
})

t.test('D10: an upstream that never accepts (full backlog) → 503 UF at the connect timeout', async t => {
  // A listener in a stopped process: the kernel completes handshakes until the accept queue is
  // full, then drops SYNs, so further connects hang like a black-holed address.
  const child = spawn(process.execPath, ['-e', "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>process.stdout.write(s.address().port+'\\n'))"], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>(resolve => child.stdout.once('data', d => resolve(Number(String(d).trim()))))
  child.kill('SIGSTOP')
  const fillers: Socket[] = []
  t.teardown(() => { for (const s of fillers) s.destroy(); child.kill('SIGKILL') })
  for (let i = 0; i < 8; i++) { const s = connect({ host: '127.0.0.1', port }); s.on('error', () => {}); fillers.push(s) }
  await sleep(300)
  const gw = await gateway(appYaml({ v1: port }, 'retries: { attempts: 0 }\n    ', '    connectionPool: { tcp: { connectTimeout: 400ms } }\n'))
  t.teardown(() => gw.close())
  const started = Date.now()
  const r = await appRequest(gw)
  const ms = Date.now() - started
  t.equal(r.status, 503)
  t.ok(ms >= 300 && ms < 5000, `answered at the connect timeout (${ms} ms)`)
  await waitForLogs(gw.logs, 1)
  t.match(gw.logs[0].response_flags, /^U[FH]/, `flag ${gw.logs[0].response_flags} (${gw.logs[0].upstream_transport_failure_reason})`)
})
