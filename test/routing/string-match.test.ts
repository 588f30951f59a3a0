// Hardening F7 (docs/testing.md#f-configuration-and-reload, F7; docs/decisions/0005-re2.md): a regex that is catastrophic for a backtracking
// engine, `(a+)+`, is valid RE2 and is matched against a 100 KB path in linear time through a
// real gateway; the event loop keeps turning. The time bound is a generous sanity bound for a
// shared machine, not a benchmark: a backtracking engine would take longer than the universe.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import t from 'tap'
import { fullMatchRegex } from '../../src/routing/string-match.js'
import { startInlineGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { serviceEntry, virtualService } from '../helpers/yaml.js'

t.test('F7: ^(a+)+$ against a 100 KB aaaa…b path answers in linear time', async t => {
  // An upstream that accepts the long request line (Node's default header cap is 16 KB).
  const server = createServer({ maxHeaderSize: 512 * 1024 }, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ url: req.url }))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const up = { port: (server.address() as AddressInfo).port, close: () => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }) }
  const gw = await startInlineGateway(`${virtualService(`  - name: evil
    match: [{ uri: { regex: "/(a+)+" } }, { headers: { x-probe: { regex: "^(a+)+$" } } }]
    headers: { response: { set: { x-route: evil } } }
    route: [{ destination: { host: app } }]
  - name: rest
    headers: { response: { set: { x-route: rest } } }
    route: [{ destination: { host: app } }]
`)}---
${serviceEntry('app', { v1: up.port })}`, {
    // The default header cap (60 KiB, the request line counts) is below 100 KB; raised here.
    maxHeaderBytes: 512 * 1024
  })
  t.teardown(async () => { await gw.close(); await up.close() })
  const n = 100 * 1024
  const h = monitorEventLoopDelay({ resolution: 10 })
  h.enable()
  // Warm the connection path first so the measured requests time the match, not the setup.
  t.equal((await rawRequest(gw.mesh, '/warm', { headers: { host: 'app' } })).headers['x-route'], 'rest')

  let start = process.hrtime.bigint()
  let r = await rawRequest(gw.mesh, `/${'a'.repeat(n)}b`, { headers: { host: 'app' } })
  let ms = Number(process.hrtime.bigint() - start) / 1e6
  t.equal(r.status, 200, 'answered')
  t.equal(r.headers['x-route'], 'rest', 'no match: the next route serves')
  t.ok(ms < 500, `100 KB non-matching path in ${ms.toFixed(1)} ms (bound 500 ms)`)

  start = process.hrtime.bigint()
  r = await rawRequest(gw.mesh, `/${'a'.repeat(n)}`, { headers: { host: 'app' } })
  ms = Number(process.hrtime.bigint() - start) / 1e6
  t.equal(r.headers['x-route'], 'evil', 'the matching path takes the regex route')
  t.ok(ms < 500, `100 KB matching path in ${ms.toFixed(1)} ms`)
  t.equal(JSON.parse(r.body).url.length, n + 1, 'and the whole path was forwarded')

  // A header regex sees the same engine: 40 KB of a's and a b.
  start = process.hrtime.bigint()
  r = await rawRequest(gw.mesh, '/h', { headers: { host: 'app', 'x-probe': `${'a'.repeat(40 * 1024)}b` } })
  ms = Number(process.hrtime.bigint() - start) / 1e6
  t.equal(r.headers['x-route'], 'rest')
  t.ok(ms < 500, `40 KB header in ${ms.toFixed(1)} ms`)
  h.disable()
  t.ok(h.max / 1e6 < 1000, `event loop never blocked for long (max delay ${(h.max / 1e6).toFixed(1)} ms)`)
})

t.test('F7: the compiled matcher is linear: 10× the input is nowhere near 2^10× the time', async t => {
  const re = fullMatchRegex('/(a+)+')
  const time = (len: number): number => {
    const s = `/${'a'.repeat(len)}b`
    const start = process.hrtime.bigint()
    for (let i = 0; i < 5; i++) t.equal(re.test(s), false)
    return Number(process.hrtime.bigint() - start) / 1e6 / 5
  }
  time(1000)
  const small = Math.max(time(10_000), 0.05)
  const big = time(100_000)
  t.ok(big < 500, `100 KB in ${big.toFixed(2)} ms`)
  t.ok(big / small < 200, `growth ×${(big / small).toFixed(1)} for ×10 input (linear, with generous noise allowance)`)
})
