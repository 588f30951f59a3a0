import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { Agent, request as httpRequest } from 'node:http'
import { type AddressInfo, connect as connectTcp, createServer as createTcpServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startInlineGateway } from '../../helpers/gateway.js'
import { appRequest, rawExchange, rawRequest } from '../../helpers/raw-http.js'
import { closedPort, startUpstream } from '../../helpers/upstream.js'
import { sleep, waitForLogs } from '../../helpers/wait.js'
import { GATEWAY, destinationRule, routeTo, serviceEntry, virtualService } from '../../helpers/yaml.js'

// Hardening, round 2: upgrade smuggling, Expect: 100-continue, one bad exchange never takes an
// endpoint out, breakers only with outlierDetection, Connection nominations, clean drains,
// client-sent x-envoy-* headers. Raw sockets and real upstreams throughout.

const CLUSTER = 'outbound|9080||app.default.svc.cluster.local'

/**
 * `app` (one endpoint on `port`) for the gateway and the mesh: `/denied` answered 403 locally, the
 * rest routed to `app` with `route` appended to that route (indented YAML), and a DestinationRule
 * with `trafficPolicy` (indented YAML) when given.
 */
function yaml (port: number, opts: { route?: string; trafficPolicy?: string } = {}): string {
  const dr = opts.trafficPolicy !== undefined ? `${destinationRule('app', `  trafficPolicy:\n${opts.trafficPolicy}`)}---\n` : ''
  return `${GATEWAY}---
${virtualService(`  - match: [{ uri: { prefix: /denied } }]
    directResponse: { status: 403, body: { string: denied } }
${routeTo()}${opts.route ?? ''}`, { name: 'app', hosts: ['app', 'app.example.com'], gateways: ['gw', 'mesh'] })}---
${dr}${serviceEntry('app', { v1: port })}`
}

t.test('1. upgrades cannot smuggle requests', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(yaml(up.port))
  t.teardown(async () => { await gw.close(); await up.close() })
  const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n'

  // A local reply to an upgrade request: no upstream connection, the bytes after it go nowhere.
  let r = await rawExchange(gw.mesh, `GET /denied HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n${smuggled}`)
  t.same(r.statuses, [403], 'the upgrade gets its route\'s local reply, once')
  t.ok(r.closed, 'and the connection closes')
  t.equal(up.seen.length, 0, 'nothing reached the upstream')

  // The upstream does not switch protocols (answers 200): an ordinary response, and the bytes the
  // client sent after the upgrade request never become a second request.
  r = await rawExchange(gw.mesh, `GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n${smuggled}`)
  t.same(r.statuses, [200], 'the 200 is passed on')
  t.ok(r.closed, 'then the connection closes')
  await sleep(100)
  t.same(up.seen.map(s => s.url), ['/ws'], 'the upstream saw the upgrade request only')

  // Pipelined after a 200, with the two requests in one packet.
  up.seen.length = 0
  r = await rawExchange(gw.ingress, `GET /ws HTTP/1.1\r\nHost: app.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n${smuggled}${smuggled}`)
  t.same(r.statuses, [200])
  await sleep(100)
  t.same(up.seen.map(s => s.url), ['/ws'], 'on the ingress listener too')

  // h2c: the upgrade is dropped and the request served as plain HTTP/1.1 (Envoy does the same).
  up.seen.length = 0
  r = await rawExchange(gw.mesh, `GET /h2c HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n${smuggled}`)
  t.same(r.statuses, [200], 'h2c upgrade served as an ordinary request')
  await sleep(100)
  t.same(up.seen.map(s => s.url), ['/h2c'], 'and nothing after it reached the upstream')
  t.equal(up.seen[0].headers.upgrade, undefined, 'without the upgrade header')
  t.equal(up.seen[0].headers['http2-settings'], undefined, 'or HTTP2-Settings')
  r = await rawExchange(gw.mesh, 'POST /h2c-body HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\nhello')
  t.same(r.statuses, [200], 'an h2c upgrade with a body')
  await sleep(100)
  t.equal(up.seen.at(-1)?.body, 'hello', 'body forwarded')
})

/** nginx as a strict, request-by-request upstream; its access log lists every request it parsed. */
async function startNginx (): Promise<{ port: number; requests: () => Promise<string[]>; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-nginx-'))
  const port = await closedPort()
  const conf = join(dir, 'nginx.conf')
  await writeFile(conf, `worker_processes 1;
daemon off;
master_process off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 64; }
http {
  log_format uri '$request_uri';
  access_log ${join(dir, 'access.log')} uri;
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  server {
    listen 127.0.0.1:${port};
    location / { return 200 "nginx"; }
  }
}
`)
  const nginx = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(p => existsSync(p)) ?? 'nginx'
  const child = spawn(nginx, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { stdio: 'ignore' })
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>(resolve => { const s = connectTcp(port, '127.0.0.1', () => { s.destroy(); resolve(true) }); s.on('error', () => resolve(false)) })
    if (ok) break
    await sleep(50)
  }
  return {
    port,
    requests: async () => { await sleep(100); return (await readFile(join(dir, 'access.log'), 'utf8').catch(() => '')).split('\n').filter(l => l !== '') },
    stop: () => new Promise(resolve => { child.once('exit', () => resolve()); child.kill('SIGTERM') })
  }
}

t.test('1. no smuggling past a strict upstream parser (nginx)', async t => {
  const ngx = await startNginx()
  const gw = await startInlineGateway(yaml(ngx.port))
  t.teardown(async () => { await gw.close(); await ngx.stop() })
  const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n'
  let r = await rawExchange(gw.mesh, `GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n${smuggled}`)
  t.same(r.statuses, [200], 'nginx answers the upgrade request with 200, passed on')
  r = await rawExchange(gw.mesh, `GET /denied HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n${smuggled}`)
  t.same(r.statuses, [403], 'local reply')
  r = await rawExchange(gw.mesh, `GET /h2c HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n${smuggled}`)
  t.same(r.statuses, [200], 'h2c served plainly')
  t.same(await ngx.requests(), ['/ws', '/h2c'], 'nginx parsed exactly the requests the gateway meant to send')
})

t.test('2. Expect: 100-continue, as curl sends it on a large upload', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(yaml(up.port))
  t.teardown(async () => { await gw.close(); await up.close() })
  const dir = await mkdtemp(join(tmpdir(), 'meshgate-expect-'))
  const file = join(dir, 'upload.bin')
  await writeFile(file, Buffer.alloc(2 * 1024 * 1024, 'x'))
  const curl = (): Promise<{ code: string; stderr: string }> => new Promise(resolve => {
    execFile('curl', ['-sS', '-v', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: app', '--data-binary', `@${file}`, `${gw.mesh}/upload`], (_err, stdout, stderr) => resolve({ code: stdout, stderr }))
  })
  for (let i = 0; i < 4; i++) {
    const r = await curl()
    t.equal(r.code, '200', `upload ${i + 1} succeeds`)
    t.match(r.stderr, /Expect: 100-continue/, 'curl sent Expect')
    t.match(r.stderr, /HTTP\/1\.1 100 Continue/, 'and was told to continue')
  }
  t.equal(up.seen.length, 4)
  t.equal(up.seen[0].body.length, 2 * 1024 * 1024, 'the whole body arrived')
  t.equal(up.seen[0].headers.expect, undefined, 'the expectation is not forwarded (answered by the gateway)')
  t.equal(gw.runtime.cluster(CLUSTER)!.healthy.length, 1, 'the endpoint stays healthy')
  t.equal((await appRequest(gw, '/after')).status, 200, 'other clients are served')
})

/** A TCP upstream that misbehaves on its first `bad` connections, then serves HTTP. */
async function flakyUpstream (behave: (sock: import('node:net').Socket, n: number) => boolean): Promise<{ port: number; close: () => Promise<void>; served: () => number }> {
  let n = 0
  let served = 0
  const http: Server = createServer((req, res) => { served++; req.resume(); res.end('fine') })
  const tcp = createTcpServer(sock => {
    n++
    if (behave(sock, n)) return
    http.emit('connection', sock)
  })
  await new Promise<void>(resolve => tcp.listen(0, '127.0.0.1', resolve))
  return { port: (tcp.address() as AddressInfo).port, served: () => served, close: () => new Promise(resolve => { http.closeAllConnections(); tcp.close(() => resolve()) }) }
}

t.test('3. one bad exchange never takes an endpoint out', async t => {
  const cases: Array<[string, (sock: import('node:net').Socket, n: number) => boolean]> = [
    ['a reset before the response headers', (sock, n) => { if (n !== 1) return false; sock.once('data', () => sock.resetAndDestroy()); return true }],
    ['a FIN before the response headers', (sock, n) => { if (n !== 1) return false; sock.once('data', () => sock.end()); return true }],
    ['an oversized response header', (sock, n) => { if (n !== 1) return false; sock.once('data', () => sock.end(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(400 * 1024)}\r\ncontent-length: 0\r\n\r\n`)); return true }],
    ['an unsolicited 100 Continue', (sock, n) => { if (n !== 1) return false; sock.once('data', () => sock.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok')); return true }]
  ]
  for (const [name, behave] of cases) {
    const up = await flakyUpstream(behave)
    const gw = await startInlineGateway(yaml(up.port))
    const first = await appRequest(gw, '/one')
    t.ok(first.status < 500 || first.status === 502 || first.status === 503, `${name}: first request answered (${first.status})`)
    t.equal(gw.runtime.cluster(CLUSTER)!.healthy.length, 1, `${name}: the endpoint is still healthy`)
    const next = await appRequest(gw, '/two')
    t.equal(next.status, 200, `${name}: the next request is served at once`)
    await gw.close()
    await up.close()
  }

  // The keep-alive race: the upstream closes a pooled connection just as the next request goes
  // out on it (here: it answers one request per connection with keep-alive, then closes on the
  // next request's bytes without answering). With retries off, the transparent resend on a
  // fresh connection is what serves it.
  const racy = await flakyUpstream((sock, _n) => {
    let served = false
    sock.on('data', () => {
      if (served) { sock.destroy(); return }
      served = true
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok')
    })
    return true
  })
  const noRetries = yaml(racy.port, { route: '    retries: { attempts: 0 }\n' })
  const rgw = await startInlineGateway(noRetries)
  for (let i = 0; i < 6; i++) t.equal((await appRequest(rgw, `/race-${i}`)).status, 200, `keep-alive race ${i + 1}: served`)
  t.equal(rgw.runtime.cluster(CLUSTER)!.healthy.length, 1, 'keep-alive race: the endpoint stays healthy')
  await rgw.close()
  await racy.close()

  const up = await flakyUpstream(() => false)
  const gw = await startInlineGateway(yaml(up.port))
  t.teardown(async () => { await gw.close(); await up.close() })
  t.equal((await appRequest(gw, '/warm')).status, 200)
  // A refused connection is different: that is evidence the host is gone.
  await up.close()
  const down = await appRequest(gw, '/gone')
  t.equal(down.status, 503, 'upstream gone: 503')
  t.equal(gw.runtime.cluster(CLUSTER)!.healthy.length, 0, 'a refused connection marks the host down at once')
})

t.test('3. no ejection without outlierDetection; the breaker follows the DestinationRule', async t => {
  const up = await startUpstream('app', (_req, res) => { res.writeHead(500); res.end('app error') })
  const gw = await startInlineGateway(yaml(up.port))
  t.teardown(async () => { await gw.close(); await up.close() })
  const codes = new Set<number>()
  for (let i = 0; i < 40; i++) codes.add((await appRequest(gw, '/x')).status)
  t.same([...codes], [500], 'without outlierDetection every request gets the application\'s 500')
  t.equal(gw.runtime.cluster(CLUSTER)!.healthy.length, 1, 'and the endpoint is never taken out')

  const up2 = await startUpstream('app', (_req, res) => { res.writeHead(500); res.end('app error') })
  const withOd = await startInlineGateway(yaml(up2.port, {
    trafficPolicy: '    outlierDetection: { consecutive5xxErrors: 1000, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 100 }\n'
  }))
  t.teardown(async () => { await withOd.close(); await up2.close() })
  const seen: number[] = []
  for (let i = 0; i < 40; i++) seen.push((await appRequest(withOd, '/x')).status)
  t.ok(seen.slice(0, 20).every(s => s === 500), 'with outlierDetection: 500s pass until the breaker has its volume')
  t.equal(seen.at(-1), 503, 'then the breaker opens and the endpoint is out: 503')
})

t.test('4. Connection nominations cannot strip the gateway\'s headers', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(yaml(up.port))
  t.teardown(async () => { await gw.close(); await up.close() })
  await rawRequest(gw.ingress, '/x', { headers: { host: 'app.example.com', connection: 'close, x-forwarded-for, x-request-id, x-envoy-attempt-count, x-custom', 'x-custom': 'gone', 'x-request-id': 'rid-1' } })
  const h = up.seen[0].headers
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'x-forwarded-for kept')
  t.equal(h['x-request-id'], 'rid-1', 'x-request-id kept')
  t.equal(h['x-envoy-attempt-count'], '1', 'x-envoy-attempt-count kept')
  t.equal(h['x-custom'], undefined, 'an ordinary nominated header is removed')
})

t.test('7. client-sent x-envoy-* headers are removed at the edge, kept on the mesh', async t => {
  const up = await startUpstream('app')
  const gw = await startInlineGateway(yaml(up.port))
  t.teardown(async () => { await gw.close(); await up.close() })
  const sent = { host: 'app', 'x-envoy-original-path': '/admin', 'x-envoy-expected-rq-timeout-ms': '1', 'x-envoy-retry-on': '5xx', 'x-envoy-debug': 'on' }
  await rawRequest(gw.ingress, '/x', { headers: { ...sent, host: 'app.example.com' } })
  const edge = up.seen[0].headers
  t.equal(edge['x-envoy-original-path'], undefined, 'x-envoy-original-path removed')
  t.equal(edge['x-envoy-expected-rq-timeout-ms'], undefined)
  t.equal(edge['x-envoy-retry-on'], undefined)
  t.equal(edge['x-envoy-debug'], undefined)
  t.equal(edge['x-envoy-attempt-count'], '1', 'the gateway\'s own are set')
  await rawRequest(gw.mesh, '/x', { headers: sent })
  t.equal(up.seen[1].headers['x-envoy-debug'], 'on', 'the mesh (a trusted caller\'s sidecar) keeps them')
})

t.test('5. clean drains: 50 keep-alive clients under load, zero failed requests', async t => {
  const up = await startUpstream('app', (_req, res) => { setTimeout(() => res.end('ok'), 5) })
  const gw = await startInlineGateway(yaml(up.port), { overload: false, shutdownDelayMs: 300 })
  t.teardown(() => up.close())
  const u = new URL(gw.mesh)
  const agent = new Agent({ keepAlive: true, maxSockets: 50 })
  let closing = false
  let ok = 0
  const failures: string[] = []
  let sawClose = 0
  const client = async (): Promise<void> => {
    for (let i = 0; i < 2000; i++) {
      const r = await new Promise<{ status: number; connection?: string } | Error>(resolve => {
        const req = httpRequest({ host: u.hostname, port: Number(u.port), path: '/load', agent, headers: { host: 'app' } }, res => {
          res.resume()
          res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }))
        })
        req.on('error', err => resolve(err))
        req.end()
      })
      if (r instanceof Error) { failures.push(r.message); return }
      if (r.status !== 200) failures.push(`status ${r.status}`)
      else ok++
      // A client that follows HTTP/1.1: a response with Connection: close ends this connection;
      // once the gateway is closing, it sends nothing more here.
      if (r.connection === 'close') { sawClose++; if (closing) return }
    }
  }
  const clients = Array.from({ length: 50 }, () => client())
  await sleep(400)
  closing = true
  const closed = gw.close(10_000)
  await Promise.all(clients)
  await closed
  agent.destroy()
  t.same(failures, [], 'no request failed')
  t.ok(ok > 100, `requests served (${ok})`)
  t.equal(sawClose, 50, 'every client was told Connection: close')
  await waitForLogs(gw.logs, ok)
})
