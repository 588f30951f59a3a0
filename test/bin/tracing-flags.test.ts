import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { tracingOptions } from '../../bin/tuning.js'
import { otlpReceiverFor } from '../helpers/otlp.js'
import { rawRequest } from '../helpers/raw-http.js'
import { upstreamFor } from '../helpers/upstream.js'
import { until } from '../helpers/wait.js'
import { GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'

// --otlp-endpoint and --trace-sampling (and their environment variables) on the real CLI: spans
// reach the collector, the batch still pending is exported on SIGTERM, bad values are usage
// mistakes that name the flag.

const root = fileURLToPath(new URL('../../', import.meta.url))
const bin = fileURLToPath(new URL('../../bin/meshgate.ts', import.meta.url))

t.test('the flags as options: a flag wins over its variable; no endpoint, no tracing', async t => {
  t.equal(tracingOptions({}, {}), undefined, 'off by default')
  t.equal(tracingOptions({ 'trace-sampling': '5' }, {}), undefined, 'a sampling percentage alone does not turn tracing on')
  t.same(tracingOptions({ 'otlp-endpoint': 'http://127.0.0.1:4318' }, {}), { otlpEndpoint: 'http://127.0.0.1:4318' })
  t.same(tracingOptions({ 'trace-sampling': '12.5' }, { MESHGATE_OTLP_ENDPOINT: 'http://c:4318', MESHGATE_TRACE_SAMPLING: '50' }), { otlpEndpoint: 'http://c:4318', samplingPercent: 12.5 })
  t.throws(() => tracingOptions({ 'otlp-endpoint': 'collector:4318' }, {}), /--otlp-endpoint \(MESHGATE_OTLP_ENDPOINT\) "collector:4318": expected an http:\/\/ or https:\/\/ URL/)
  t.throws(() => tracingOptions({ 'otlp-endpoint': 'http://c' }, { MESHGATE_TRACE_SAMPLING: '101' }), /--trace-sampling \(MESHGATE_TRACE_SAMPLING\) "101": expected a percentage from 0 to 100/)
  t.throws(() => tracingOptions({ 'trace-sampling': 'all' }, {}), /--trace-sampling/)
})

t.test('meshgate --otlp-endpoint: spans exported, the pending batch flushed on SIGTERM', async t => {
  const rx = await otlpReceiverFor(t)
  const up = await upstreamFor(t, 'app')
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-tracing-'))
  writeFileSync(join(dir, 'config.yaml'), [GATEWAY, gatewayVs('  - route:\n    - destination: { host: app }\n'), serviceEntry('app', { v1: up.port })].join('---\n'))
  const child = spawn(process.execPath, [...process.execArgv, bin, '--config', dir, '--host', '127.0.0.1', '--port-map', '8080=0', '--mesh-port', 'off', '--admin-port', 'off',
    '--access-log', 'off', '--trace-sampling', '100'], { cwd: root, env: { ...process.env, MESHGATE_OTLP_ENDPOINT: rx.url }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', c => { stderr += c })
  const exited = new Promise<number | null>(resolve => child.once('close', code => resolve(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  await until('the gateway listener', () => /gateway listener ready/.test(stderr), 60_000)
  const url = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(stderr)![1]
  const r = await rawRequest(url, '/traced')
  t.equal(r.status, 200)
  const tp = /^00-([0-9a-f]{32})-/.exec(String(JSON.parse(r.body).headers.traceparent))
  t.ok(tp !== null, 'the upstream received a sampled context')
  // The batch processor exports about every second: SIGTERM now, and the span must still arrive.
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'a clean exit')
  const spans = rx.spans.filter(s => s.traceId === tp![1])
  t.same(spans.map(s => s.kind).sort(), ['client', 'server'], 'the server and client spans were exported before the exit')
})

t.test('bad tracing flags are usage mistakes (exit 2) that name the flag', async t => {
  const run = (args: string[]): Promise<{ code: number | null; stderr: string }> => new Promise(resolve => {
    const child = spawn(process.execPath, [...process.execArgv, bin, '--config', 'gateway-config', ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', c => { stderr += c })
    child.once('close', code => resolve({ code, stderr }))
  })
  const [endpoint, sampling] = await Promise.all([run(['--otlp-endpoint', 'udp://x']), run(['--otlp-endpoint', 'http://127.0.0.1:1', '--trace-sampling', '150'])])
  t.equal(endpoint.code, 2)
  t.match(endpoint.stderr, '--otlp-endpoint (MESHGATE_OTLP_ENDPOINT) "udp://x"')
  t.equal(sampling.code, 2)
  t.match(sampling.stderr, '--trace-sampling (MESHGATE_TRACE_SAMPLING) "150"')
})
