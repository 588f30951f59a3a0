import t from 'tap'
import { HOST, startPathFixture } from '../helpers/path-fixture.js'
import { rawRequest } from '../helpers/raw-http.js'
import { sleep, waitForLogs } from '../helpers/wait.js'

// Overload (issue #8 item 7): event-loop-delay and memory guards shed requests with 503 OM
// (Envoy's overload-manager flag) before the process falls over, and recover on their own.

const get = (base: string): ReturnType<typeof rawRequest> => rawRequest(base, '/public/x', { headers: { host: HOST } })

t.test('a blocked event loop leads to 503 OM, then recovery', async t => {
  const gw = await startPathFixture({ overload: { maxEventLoopDelayMs: 100, sampleIntervalMs: 50, maxHeapUsedBytes: 0 } })
  t.teardown(() => gw.close())
  t.equal((await get(gw.ingress)).status, 200, 'served while the loop is healthy')
  // Block the loop (a CPU-bound handler, a GC storm…) for well over the threshold.
  const until = Date.now() + 700
  while (Date.now() < until) { /* busy */ }
  const during = await Promise.all(Array.from({ length: 5 }, () => get(gw.ingress)))
  const shed = during.filter(r => r.status === 503)
  t.ok(shed.length > 0, `right after the stall requests are shed (${during.map(r => r.status).join(',')})`)
  t.ok(shed.every(r => r.body === 'envoy overloaded' && r.headers['retry-after'] === '1'), 'Envoy\'s body, with Retry-After')
  await waitForLogs(gw.logs, 6)
  const om = gw.logs.filter(l => l.response_flags === 'OM')
  t.ok(om.length > 0 && om.every(l => l.response_code === '503' && l.upstream_transport_failure_reason === 'eventLoopDelay'), 'logged 503 OM (eventLoopDelay)')
  let recovered = false
  for (let i = 0; i < 50 && !recovered; i++) { await sleep(100); recovered = (await get(gw.ingress)).status === 200 }
  t.ok(recovered, 'served again once the loop is responsive')
})

t.test('the heap guard sheds everything over its threshold; overload: false turns the guards off', async t => {
  const full = await startPathFixture({ overload: { maxHeapUsedBytes: 1, maxEventLoopDelayMs: 0, sampleIntervalMs: 20 } })
  t.teardown(() => full.close())
  await sleep(100)
  const r = await get(full.ingress)
  t.equal(r.status, 503, 'heap over the threshold → 503')
  await waitForLogs(full.logs, 1)
  t.equal(full.logs[0].response_flags, 'OM')
  t.equal(full.logs[0].upstream_transport_failure_reason, 'heapUsedBytes')
  t.equal(full.pub.bytes(), 0, 'shed before any upstream work')
  const off = await startPathFixture({ overload: false })
  t.teardown(() => off.close())
  t.equal((await get(off.ingress)).status, 200)
})
