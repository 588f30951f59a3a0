import { readdirSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { Readable } from 'node:stream'
import t from 'tap'
import { makePki } from '../../helpers/certs.js'
import { gatewayChildFor, startInlineGateway } from '../../helpers/gateway.js'
import { HOST, startPathFixture } from '../../helpers/path-fixture.js'
import { rawExchange, rawRequest } from '../../helpers/raw-http.js'
import { startUpstream } from '../../helpers/upstream.js'
import { sleep } from '../../helpers/wait.js'
import { gateway, gatewayVs, meshRoute, serviceEntry } from '../../helpers/yaml.js'

// docs/testing.md#c-size-limits-and-slow-clients, table C: header caps (431), body cap on the streaming path (413), slowloris
// and slow bodies (408 at headersTimeout / requestTimeout), idle keep-alive, connection caps,
// and backpressure toward a client that never reads.

const H = `Host: ${HOST}\r\n`

t.test('C1: header bytes and header count over the caps → 431, nothing forwarded', async t => {
  const small = await startPathFixture({ maxHeaderBytes: 16 * 1024 })
  t.teardown(() => small.close())
  const cookie = await rawExchange(small.ingress, `GET /public/x HTTP/1.1\r\n${H}Cookie: a=${'x'.repeat(20 * 1024)}\r\n\r\n`)
  t.equal(cookie.statuses[0], 431, 'a 20 KiB cookie over a 16 KiB cap → 431')
  t.ok(cookie.closed, 'connection closed')

  const gw = await startPathFixture()
  t.teardown(() => gw.close())
  await rawRequest(gw.ingress, '/public/x', { headers: { host: HOST, cookie: `a=${'x'.repeat(20 * 1024)}` } })
  // (The Node test upstream itself stops at 16 KiB, so only the gateway's side is checked here.)
  t.ok(gw.pub.bytes() > 20 * 1024, 'the default cap (60 KiB, Envoy) forwards a 20 KiB cookie')
  const ok = await rawRequest(gw.ingress, '/public/x', { headers: { host: HOST, cookie: `a=${'x'.repeat(10 * 1024)}` } })
  t.equal(ok.status, 200, 'a 10 KiB cookie passes end to end')
  const big = Array.from({ length: 7 }, (_, i) => `X-Big-${i}: ${'y'.repeat(10 * 1024)}\r\n`).join('')
  const r70 = await rawExchange(gw.ingress, `GET /public/x HTTP/1.1\r\n${H}${big}\r\n`)
  t.equal(r70.statuses[0], 431, '70 KiB of headers → 431')
  const many = Array.from({ length: 150 }, (_, i) => `X-H-${i}: v\r\n`).join('')
  const r150 = await rawExchange(gw.ingress, `GET /public/x HTTP/1.1\r\n${H}${many}\r\n`)
  t.equal(r150.statuses[0], 431, '150 headers → 431 (cap 100)')
  t.ok(r150.closed, 'connection closed')
  const ninety = Array.from({ length: 90 }, (_, i) => `X-H-${i}: v\r\n`).join('')
  t.equal((await rawExchange(gw.ingress, `GET /public/x HTTP/1.1\r\n${H}${ninety}Connection: close\r\n\r\n`)).statuses[0], 200, '91 headers pass')
  const pubSeen = gw.pub.seen.length

  // Many at once: every one refused, the process stays well.
  const results = await Promise.all(Array.from({ length: 200 }, () => rawExchange(gw.ingress, `GET /public/x HTTP/1.1\r\n${H}${big}\r\n`, { waitMs: 10_000 })))
  t.ok(results.every(r => r.statuses[0] === 431), '200 parallel 70 KiB heads: all 431')
  t.equal(gw.pub.seen.length, pubSeen, 'none forwarded')
  t.equal(small.upstreamBytes(), 0)
})

t.test('C2: body over the cap → 413, by Content-Length before forwarding and while streaming chunked', async t => {
  const gw = await startPathFixture({ maxRequestBodyBytes: 64 * 1024 })
  t.teardown(() => gw.close())
  const byLength = await rawExchange(gw.ingress, [`POST /public/up HTTP/1.1\r\n${H}Content-Length: ${1024 * 1024}\r\n\r\n`, Buffer.alloc(32 * 1024, 'a')])
  t.equal(byLength.statuses[0], 413, 'Content-Length over the cap → 413')
  t.ok(byLength.closed, 'connection closed (the rest of the body is never read)')
  t.equal(gw.upstreamBytes(), 0, 'answered before anything was forwarded')

  const chunk = `${(16 * 1024).toString(16)}\r\n${'b'.repeat(16 * 1024)}\r\n`
  const chunked = await rawExchange(gw.ingress, [`POST /public/up HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`, ...Array.from({ length: 8 }, () => chunk), '0\r\n\r\n'], { gapMs: 20 })
  t.equal(chunked.statuses[0], 413, 'chunked body counted while streaming: 413 once over the cap')
  t.ok(chunked.closed)
  await sleep(200)
  t.equal(gw.pub.seen.length, 0, 'the upstream never received a complete over-limit body')
  t.ok(gw.pub.bytes() < 100 * 1024, `the upstream read at most about the cap (${gw.pub.bytes()} bytes)`)

  const under = await rawRequest(gw.ingress, '/public/up', { method: 'POST', headers: { host: HOST }, body: Buffer.alloc(60 * 1024, 'c') })
  t.equal(under.status, 200, 'a body under the cap passes')
  t.equal(gw.pub.seen.at(-1)?.body.length, 60 * 1024)
})

t.test('C3: slowloris on 50 sockets → 408 and closed at headersTimeout; other clients unaffected', async t => {
  const gw = await startPathFixture({ headersTimeoutMs: 1000 })
  t.teardown(() => gw.close())
  const head = `GET /public/slow HTTP/1.1\r\n${H}X-Slow: ${'z'.repeat(40)}\r\n\r\n`
  const fds = (): number => readdirSync('/proc/self/fd').length
  const fdsBefore = fds()
  const started = Date.now()
  const slow = Array.from({ length: 50 }, () => new Promise<{ data: string; ms: number }>(resolve => {
    const sock: Socket = connect({ host: '127.0.0.1', port: Number(new URL(gw.ingress).port) })
    let data = ''
    let i = 0
    const timer = setInterval(() => { if (i < head.length) sock.write(head[i++]) }, 200)
    sock.on('data', d => { data += d.toString() })
    sock.on('error', () => {})
    sock.on('close', () => { clearInterval(timer); resolve({ data, ms: Date.now() - started }) })
  }))
  await sleep(300)
  const during = await rawRequest(gw.ingress, '/public/fast', { headers: { host: HOST } })
  t.equal(during.status, 200, 'a normal request is served meanwhile')
  const results = await Promise.all(slow)
  t.ok(results.every(r => r.data.startsWith('HTTP/1.1 408')), 'every slow socket got 408')
  const worst = Math.max(...results.map(r => r.ms))
  t.ok(worst < 6000, `all closed soon after the 1 s headersTimeout (last at ${worst} ms)`)
  t.equal(gw.pub.seen.filter(s => s.url === '/public/slow').length, 0, 'none reached the upstream')
  t.equal((await rawRequest(gw.ingress, '/public/after', { headers: { host: HOST } })).status, 200, 'served normally afterwards')
  await sleep(200)
  t.ok(fds() <= fdsBefore + 5, `file descriptors back to baseline (${fdsBefore} → ${fds()}; 100 were open at the peak)`)
})

t.test('C4: slow body → 408 at requestTimeout, the upstream request is abandoned', async t => {
  const gw = await startPathFixture({ headersTimeoutMs: 1000, requestTimeoutMs: 1500 })
  t.teardown(() => gw.close())
  const started = Date.now()
  const r = await rawExchange(gw.ingress, [`POST /public/rudy HTTP/1.1\r\n${H}Content-Length: 100\r\n\r\n`, ...Array.from({ length: 40 }, () => 'x')], { gapMs: 200, waitMs: 10_000 })
  const ms = Date.now() - started
  t.equal(r.statuses[0], 408, '408')
  t.ok(r.closed, 'connection closed')
  t.ok(ms < 6000, `closed at the request timeout, not after the whole drip (${ms} ms)`)
  await sleep(200)
  t.equal(gw.pub.seen.length, 0, 'the upstream never got a complete request')
})

t.test('C5: idle keep-alive connections close at keepAliveTimeout', async t => {
  const gw = await startPathFixture({ keepAliveTimeoutMs: 500 })
  t.teardown(() => gw.close())
  const started = Date.now()
  const r = await rawExchange(gw.ingress, `GET /public/k HTTP/1.1\r\n${H}\r\n`, { waitMs: 8000 })
  const ms = Date.now() - started
  t.same(r.statuses, [200])
  t.ok(r.closed, 'the server closed the idle connection')
  t.ok(ms >= 400 && ms < 6000, `after about the keep-alive timeout (${ms} ms)`)
})

t.test('connection cap: connections over maxConnections are closed at accept', async t => {
  const gw = await startPathFixture({ maxConnections: 5 })
  t.teardown(() => gw.close())
  const port = Number(new URL(gw.ingress).port)
  const socks: Array<{ sock: Socket; closed: boolean }> = []
  for (let i = 0; i < 10; i++) {
    const sock = connect({ host: '127.0.0.1', port })
    const entry = { sock, closed: false }
    sock.on('close', () => { entry.closed = true })
    sock.on('error', () => {})
    socks.push(entry)
    await new Promise(resolve => sock.once('connect', resolve))
  }
  await sleep(500)
  t.equal(socks.filter(s => s.closed).length, 5, 'the five over the cap were closed')
  t.ok(socks.slice(0, 5).every(s => !s.closed), 'the first five stay open')
  for (const s of socks) s.sock.destroy()
  await sleep(200)
  t.equal((await rawRequest(gw.ingress, '/public/after', { headers: { host: HOST } })).status, 200, 'served again once below the cap')
})

t.test('C6: a client that never reads a 100 MB response holds bounded gateway memory', async t => {
  const SIZE = 100 * 1024 * 1024
  const CHUNK = Buffer.alloc(64 * 1024, 'q')
  let written = 0
  const up = await startUpstream('big', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) })
    let sent = 0
    new Readable({
      read () {
        if (sent >= SIZE) { this.push(null); return }
        sent += CHUNK.length
        written = sent
        this.push(CHUNK)
      }
    }).pipe(res)
  })
  const yaml = `${meshRoute('big')}
---
${serviceEntry('big', { v1: up.port })}`
  t.teardown(() => up.close())
  const child = await gatewayChildFor(t, yaml)
  const mesh = child.mesh
  // The client writes its request and never reads: its receive window fills, then the gateway's.
  const sock = connect({ host: mesh.hostname, port: Number(mesh.port) })
  await new Promise(resolve => sock.once('connect', resolve))
  sock.pause()
  sock.write('GET /download HTTP/1.1\r\nHost: big\r\nX-Test-Stream: 1\r\n\r\n')
  await sleep(3000)
  const { peak } = await child.peak()
  const grew = (peak - child.rss) / 1024 / 1024
  t.ok(grew < 60, `gateway RSS grew ${grew.toFixed(1)} MB while the client read nothing`)
  t.ok(written < 40 * 1024 * 1024, `backpressure reached the upstream: it wrote ${(written / 1024 / 1024).toFixed(1)} MB of 100`)
  sock.destroy()
})

t.test('HTTPS listeners apply the same header cap and parser options to their HTTP/1.1 fallback', async t => {
  const pki = makePki(['secure.example.com'])
  const cert = pki.server('secure.example.com')
  const up = await startUpstream('app')
  const gw = await startInlineGateway(`${gateway({ tls: cert })}---
${gatewayVs('  - route:\n    - destination: { host: app }\n')}
---
${serviceEntry('app', { v1: up.port })}`, { gatewayPorts: [8443], overload: false, maxHeaderBytes: 8 * 1024 })
  t.teardown(async () => { await gw.close(); await up.close() })
  const port = Number(new URL(gw.ingress).port)
  const once = (bytes: string): Promise<string> => new Promise((resolve, reject) => {
    const sock = tlsConnect({ host: '127.0.0.1', port, servername: 'secure.example.com', ca: pki.read(pki.ca), ALPNProtocols: ['http/1.1'] }, () => sock.write(bytes))
    let data = ''
    sock.on('data', d => { data += d.toString('latin1') })
    sock.on('close', () => resolve(data))
    sock.on('error', err => { if (data !== '') resolve(data); else reject(err) })
    setTimeout(() => sock.destroy(), 3000)
  })
  // A connection reset before the TLS handshake completed says nothing about the parser options
  // (it was seen only on a machine under heavy load): such a try is made once more.
  const send = (bytes: string): Promise<string> => once(bytes).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ECONNRESET' || err.syscall !== 'connect') throw err
    return await once(bytes)
  })
  t.match(await send('GET /x HTTP/1.1\r\nHost: secure.example.com\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200/, 'HTTP/1.1 over TLS served')
  t.match(await send(`GET /x HTTP/1.1\r\nHost: secure.example.com\r\nCookie: ${'c'.repeat(10 * 1024)}\r\n\r\n`), /^HTTP\/1\.1 431/, 'a 10 KiB cookie over an 8 KiB cap (below Node\'s 16 KiB default) → 431')
  t.match(await send('GET /x HTTP/1.1\r\nX-A: a\r\n\r\n'), /^HTTP\/1\.1 400/, 'Host required → 400')
  t.match(await send('GET /x HTTP/1.1\r\nHost: secure.example.com\r\nHost: other\r\n\r\n'), /^HTTP\/1\.1 400/, 'duplicate Host → 400')
  t.equal(up.seen.length, 1, 'only the valid request reached the upstream')
})
