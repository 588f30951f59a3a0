import type { AddressInfo } from 'node:net'
import t from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { gatewayFor } from '../helpers/gateway.js'
import { otlpReceiverFor } from '../helpers/otlp.js'
import { until } from '../helpers/wait.js'
import { GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'

// A WebSocket upgrade with tracing on: the upgrade request upstream carries the context of
// meshgate's client span, in the client's B3 form plus W3C, and both spans are exported.

t.test('an upgrade continues the trace and propagates it upstream', async t => {
  const rx = await otlpReceiverFor(t)
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise(resolve => wss.once('listening', resolve))
  t.teardown(() => new Promise(resolve => wss.close(resolve)))
  const seen: Array<Record<string, string | string[] | undefined>> = []
  wss.on('connection', (ws, req) => {
    seen.push(req.headers)
    ws.on('message', m => ws.send(`echo:${m.toString()}`))
  })
  const port = (wss.address() as AddressInfo).port
  const gw = await gatewayFor(t, [GATEWAY, gatewayVs('  - route:\n    - destination: { host: echo }\n', 'ws'), serviceEntry('echo', { v1: port })].join('---\n'),
    { tracing: { otlpEndpoint: rx.url, samplingPercent: 0, exportDelayMs: 20 } })
  const tid = '3577b34da6a3ce929d0e0e474bf92f36'
  const ws = new WebSocket(`${gw.ingress.replace('http://', 'ws://')}/chat`, { headers: { 'x-b3-traceid': tid, 'x-b3-spanid': '00f067aa0ba902b7', 'x-b3-sampled': '1' } })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const reply = new Promise<string>(resolve => ws.once('message', m => resolve(m.toString())))
  ws.send('hi')
  t.equal(await reply, 'echo:hi', 'the upgraded connection works')
  ws.close()
  await until('both spans', () => rx.spans.filter(s => s.traceId === tid).length >= 2)
  const spans = rx.spans.filter(s => s.traceId === tid)
  const server = spans.find(s => s.kind === 'server')!
  const client = spans.find(s => s.kind === 'client')!
  t.equal(server.parentSpanId, '00f067aa0ba902b7', 'the server span continues the B3 context')
  t.equal(client.parentSpanId, server.spanId)
  t.equal(seen[0]['x-b3-traceid'], tid)
  t.equal(seen[0]['x-b3-spanid'], client.spanId, 'the upstream sees the client span')
  t.equal(seen[0].traceparent, `00-${tid}-${client.spanId}-01`, 'plus W3C')
  t.equal(server.attributes['http.status_code'], 101)
  t.equal(client.attributes['http.status_code'], 101)
})
