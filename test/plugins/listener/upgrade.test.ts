import type { AddressInfo } from 'node:net'
import t from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { startInlineGateway } from '../../helpers/gateway.js'
import { GATEWAY, gatewayVs, serviceEntry } from '../../helpers/yaml.js'

// WebSocket upgrades through a route (Envoy allows upgrades by default), with a prefix rewrite.

t.test('a WebSocket echo through the gateway', async t => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise(resolve => wss.once('listening', resolve))
  const seen: Array<{ url?: string; host?: string }> = []
  wss.on('connection', (ws, req) => {
    seen.push({ url: req.url, host: req.headers.host })
    ws.on('message', (m, binary) => ws.send(binary ? m : `echo:${m.toString()}`))
  })
  const port = (wss.address() as AddressInfo).port
  const gw = await startInlineGateway(`${GATEWAY}---
${gatewayVs(`  - match: [{ uri: { prefix: /ws/ } }]
    rewrite: { uri: /socket/ }
    route:
    - destination: { host: echo }
`, 'ws')}
---
${serviceEntry('echo', { v1: port })}`)
  t.teardown(async () => { await gw.close(); await new Promise(resolve => wss.close(resolve)) })
  const url = gw.ingress.replace('http://', 'ws://')
  const ws = new WebSocket(`${url}/ws/chat?room=1`, { headers: { host: 'chat.example.com' } })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const replies: string[] = []
  const got = new Promise<void>(resolve => ws.on('message', m => { replies.push(m.toString()); if (replies.length === 3) resolve() }))
  ws.send('one'); ws.send('two'); ws.send('three')
  await got
  t.same(replies, ['echo:one', 'echo:two', 'echo:three'], 'messages echoed through the gateway')
  t.same(seen, [{ url: '/socket/chat?room=1', host: 'chat.example.com' }], 'upgrade routed with the rewrite, Host kept')
  ws.close()
  await new Promise(resolve => ws.once('close', resolve))
  const deadline = Date.now() + 2000
  while (!gw.logs.some(l => l.response_code === '101') && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  t.match(gw.logs.find(l => l.response_code === '101'), { path: '/ws/chat?room=1', upstream_cluster: 'outbound|9080||echo.default.svc.cluster.local' }, 'access-log line for the upgrade')
  const bad = new WebSocket(`${url}/nope`)
  const status = await new Promise<number>(resolve => bad.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)))
  t.equal(status, 404, 'an upgrade with no route is 404 NR')
})
