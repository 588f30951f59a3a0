// Soak (docs/testing.md#i-memory-under-sustained-load, rows I1, I2): meshgate in a child process (with --expose-gc) in front of two
// upstreams in this process, driven at a bounded rate with table I's fault mix — client
// aborts, upstream resets, upstream 503s, and config reloads through the admin API — while the
// child's post-GC heap and active handles are sampled. Then, with no traffic, a run of
// in-process reloads (I2). Pass: heap growth within a bound, handles and sockets back to
// their start values after load stops, no MaxListenersExceededWarning, no unexplained errors.
//
//   npm run soak -- --minutes 10 [--rate 300] [--reloads 1000] [--reload-every 30]
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import type { GatewaySample } from './soak-gateway.js'

/** Soak settings; every field has a default suited to a short run. */
export interface SoakOptions {
  /** Load phase length (ms). */
  durationMs: number
  /** Samples before this point (ms into the load) are warm-up; the first after it is the reference. */
  warmupMs: number
  /** Requests per second offered (a fixed, bounded rate). */
  rate: number
  /** Requests in flight at most (the rate is lowered rather than exceeded). */
  concurrency: number
  /** Apply a config change through the admin API this often (ms). */
  reloadEveryMs: number
  /** Heap sample interval (ms). */
  sampleEveryMs: number
  /** In-process reloads with no traffic after the load (I2); 0 skips. */
  reloads: number
  /** Allowed heap growth: fraction of the reference plus an absolute slack (bytes). */
  heapGrowth: number
  heapSlackBytes: number
  /** How long handles may take to return to baseline after load stops (ms). */
  settleMs: number
  /** Fault mix (fractions of requests). */
  abortRate: number
  resetRate: number
  errorRate: number
  log: (line: string) => void
}

export const DEFAULT_SOAK: SoakOptions = {
  durationMs: 60_000,
  warmupMs: 15_000,
  rate: 200,
  concurrency: 64,
  reloadEveryMs: 5_000,
  sampleEveryMs: 5_000,
  reloads: 1000,
  heapGrowth: 0.10,
  heapSlackBytes: 4 * 1024 * 1024,
  settleMs: 20_000,
  abortRate: 0.02,
  resetRate: 0.01,
  errorRate: 0.01,
  log: line => { process.stdout.write(line + '\n') }
}

/** One heap/handle sample with its time (ms since load start; negative = before). */
export interface TimedSample extends GatewaySample { atMs: number }

export interface SoakResult {
  ok: boolean
  failures: string[]
  samples: TimedSample[]
  baseline: TimedSample
  afterLoad: TimedSample
  afterReloads?: TimedSample
  beforeReloads?: TimedSample
  counts: Record<string, number>
  reloadsApplied: number
  reloadFailures: number
  achievedRate: number
  summary: string
}

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`

function serviceYaml (ports: number[], flakyPort: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: flaky }
spec:
  hosts: [flaky]
  location: MESH_INTERNAL
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints:
  - { address: 127.0.0.1, ports: { http: ${flakyPort} } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: app }
spec:
  hosts: [app]
  location: MESH_INTERNAL
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints:
${ports.map((p, i) => `  - { address: 127.0.0.1, ports: { http: ${p} }, labels: { app: app, version: v${i + 1} } }`).join('\n')}
`
}

/** Two configs that change weights and add or remove a subset (and its cluster, pool, breakers). */
function configs (ports: number[], flakyPort: number): [string, string] {
  const dr = (extra: boolean): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: app }
spec:
  host: app
  trafficPolicy:
    outlierDetection: { consecutive5xxErrors: 1000, interval: 1s, baseEjectionTime: 1s }
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 } }
${extra ? '  - { name: v3, labels: { version: v2 }, trafficPolicy: { connectionPool: { http: { http1MaxPendingRequests: 1000 } } } }\n' : ''}`
  const vs = (w1: number, w2: number, v3: boolean): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: app }
spec:
  hosts: [app]
  http:
  - match: [{ uri: { prefix: /slow } }]
    route: [{ destination: { host: app, subset: v1 } }]
  - route:
    - destination: { host: app, subset: v1 }
      weight: ${w1}
    - destination: { host: app, subset: ${v3 ? 'v3' : 'v2'} }
      weight: ${w2}
`
  const flaky = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: flaky }
spec:
  hosts: [flaky]
  http:
  - route: [{ destination: { host: flaky } }]
`
  const se = serviceYaml(ports, flakyPort)
  return [`${dr(false)}---\n${vs(80, 20, false)}---\n${flaky}---\n${se}`, `${dr(true)}---\n${vs(20, 80, true)}---\n${flaky}---\n${se}`]
}

/**
 * An upstream: /ok answers, /slow answers after 300 ms, /reset destroys the socket, /503 fails.
 * Resets go to a service of their own ("flaky"): meshgate takes an endpoint that resets a
 * connection before responding out of its service until the next probe passes
 * (docs/fallback.md#endpoint-health), so resets on the main service would turn into UH for
 * everyone.
 */
async function upstream (): Promise<Server> {
  const server = createServer((req, res) => {
    const url = req.url ?? '/'
    req.resume()
    req.on('end', () => {
      if (url.startsWith('/reset')) { req.socket.destroy(); return }
      if (url.startsWith('/503')) { res.writeHead(503, { 'content-type': 'text/plain' }); res.end('unavailable'); return }
      const body = 'x'.repeat(url.startsWith('/big') ? 64 * 1024 : 512)
      if (url.startsWith('/slow')) { const timer = setTimeout(() => res.end(body), 300); res.on('close', () => clearTimeout(timer)); return }
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(body)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return server
}

function childEntry (): string {
  // Under tap the sources run as TypeScript; compiled, as JavaScript beside this file.
  const self = fileURLToPath(import.meta.url)
  return self.replace(/soak\.(ts|js)$/, (_m, ext: string) => `soak-gateway.${ext}`)
}

class Child {
  private nextId = 1
  private readonly waiting = new Map<number, (m: Record<string, unknown>) => void>()
  constructor (readonly proc: ChildProcess) {
    proc.on('message', (m: Record<string, unknown>) => {
      const id = m.id as number | undefined
      if (id !== undefined) { this.waiting.get(id)?.(m); this.waiting.delete(id) }
    })
  }

  ask (cmd: string, extra: object = {}, timeoutMs = 120_000): Promise<Record<string, unknown>> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting.delete(id); reject(new Error(`soak child did not answer ${cmd}`)) }, timeoutMs)
      this.waiting.set(id, m => { clearTimeout(timer); resolve(m) })
      this.proc.send({ cmd, id, ...extra })
    })
  }

  async sample (atMs: number): Promise<TimedSample> {
    const m = await this.ask('sample')
    return { ...(m.sample as GatewaySample), atMs }
  }
}

/** Run the soak; never throws for a failed check (it is in `failures`), only for a broken setup. */
export async function runSoak (partial: Partial<SoakOptions> = {}): Promise<SoakResult> {
  const o: SoakOptions = { ...DEFAULT_SOAK, ...partial }
  const log = o.log
  const servers = [await upstream(), await upstream(), await upstream()]
  const ports = servers.map(s => (s.address() as AddressInfo).port)
  const [yamlA, yamlB] = configs(ports.slice(0, 2), ports[2])
  const token = randomBytes(12).toString('hex')
  const proc = fork(childEntry(), [], {
    env: { ...process.env, MESHGATE_SOAK_YAML: yamlA, MESHGATE_SOAK_YAML_B: yamlB, MESHGATE_SOAK_TOKEN: token },
    execArgv: [...process.execArgv, '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const child = new Child(proc)
  const failures: string[] = []
  const counts: Record<string, number> = {}
  const count = (k: string): void => { counts[k] = (counts[k] ?? 0) + 1 }
  try {
    const hello = await new Promise<{ mesh: string; admin: string; gc: boolean }>((resolve, reject) => {
      proc.once('message', m => resolve(m as { mesh: string; admin: string; gc: boolean }))
      proc.once('exit', code => reject(new Error(`soak child exited with ${code} before it was ready`)))
    })
    if (!hello.gc) failures.push('the gateway child has no gc(): samples are not post-GC')
    const baseline = await child.sample(-1)
    log(`soak: gateway ${hello.mesh}, admin ${hello.admin}, upstreams ${ports.join(' ')}; baseline heap ${mib(baseline.heapUsed)}, ${baseline.handles} handles, ${baseline.sockets} sockets ${JSON.stringify(baseline.resources)}`)
    log(`soak: ${(o.durationMs / 1000).toFixed(0)} s at ${o.rate} req/s (≤ ${o.concurrency} in flight), aborts ${o.abortRate * 100} %, resets ${o.resetRate * 100} %, 503s ${o.errorRate * 100} %, a reload every ${o.reloadEveryMs / 1000} s`)

    // ---- load phase (I1)
    const agent = new Agent({ connections: o.concurrency, keepAliveTimeout: 10_000, pipelining: 1 })
    const adminAgent = new Agent({ connections: 2 })
    const samples: TimedSample[] = []
    const start = Date.now()
    let inFlight = 0
    let sent = 0
    let reloadsApplied = 0
    let reloadFailures = 0
    let useB = false
    const one = async (): Promise<void> => {
      const r = Math.random()
      const kind = r < o.abortRate ? 'abort' : r < o.abortRate + o.resetRate ? 'reset' : r < o.abortRate + o.resetRate + o.errorRate ? '503' : r < 0.1 ? 'post' : r < 0.12 ? 'big' : r < 0.13 ? 'fresh' : 'ok'
      const ac = new AbortController()
      let timer: NodeJS.Timeout | undefined
      if (kind === 'abort') timer = setTimeout(() => ac.abort(), 20 + Math.floor(Math.random() * 100))
      try {
        const res = await request(`${hello.mesh}/${kind === 'abort' ? 'slow' : kind}`, {
          method: kind === 'post' ? 'POST' : 'GET',
          headers: { host: kind === 'reset' ? 'flaky' : 'app', ...(kind === 'fresh' ? { connection: 'close' } : {}) },
          body: kind === 'post' ? 'p'.repeat(2048) : undefined,
          signal: ac.signal,
          dispatcher: agent
        })
        const text = await res.body.text()
        const expected = kind === 'reset' || kind === '503' ? res.statusCode >= 500 : res.statusCode === 200
        // A local reply's body names its cause (e.g. "no healthy upstream", "envoy overloaded").
        count(expected ? `${kind}:expected` : `${kind}:unexpected-${res.statusCode}${res.statusCode >= 400 && text.length < 200 ? ` (${text.slice(0, 60)})` : ''}`)
      } catch (err) {
        const name = (err as Error).name
        count(kind === 'abort' && (name === 'AbortError' || (err as { code?: string }).code === 'UND_ERR_ABORTED') ? 'abort:expected' : `${kind}:error-${(err as { code?: string }).code ?? name}`)
      } finally {
        if (timer !== undefined) clearTimeout(timer)
      }
    }
    const reloadOnce = async (): Promise<void> => {
      useB = !useB
      try {
        const res = await request(`${hello.admin}/config?mode=replace`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' }, body: useB ? yamlB : yamlA, dispatcher: adminAgent })
        await res.body.text()
        if (res.statusCode === 200) reloadsApplied++
        else reloadFailures++
      } catch {
        reloadFailures++
      }
    }
    await new Promise<void>(resolve => {
      const tick = 10
      let credit = 0
      const pump = setInterval(() => {
        const elapsed = Date.now() - start
        if (elapsed >= o.durationMs) { clearInterval(pump); resolve(); return }
        credit += (o.rate * tick) / 1000
        while (credit >= 1 && inFlight < o.concurrency) {
          credit--
          inFlight++
          sent++
          void one().finally(() => { inFlight-- })
        }
        if (credit > o.rate) credit = o.rate // never build an unbounded backlog
      }, tick)
      const reloader = setInterval(() => { if (Date.now() - start < o.durationMs) void reloadOnce() }, o.reloadEveryMs)
      const sampler = setInterval(() => {
        const at = Date.now() - start
        if (at >= o.durationMs) return
        void child.sample(at).then(s => {
          samples.push(s)
          log(`soak: t=${(at / 1000).toFixed(0)} s heap ${mib(s.heapUsed)} rss ${mib(s.rss)} handles ${s.handles} sockets ${s.sockets} gen ${s.generation} sent ${sent}`)
        })
      }, o.sampleEveryMs)
      setTimeout(() => { clearInterval(reloader); clearInterval(sampler) }, o.durationMs).unref()
    })
    while (inFlight > 0) await new Promise(resolve => setTimeout(resolve, 20))
    const achievedRate = sent / (o.durationMs / 1000)
    await agent.close()
    await adminAgent.close()

    // ---- after load: handles back to baseline within settleMs
    const stopAt = Date.now()
    let afterLoad = await child.sample(Date.now() - start)
    while ((afterLoad.handles > baseline.handles || afterLoad.sockets > baseline.sockets) && Date.now() - stopAt < o.settleMs) {
      await new Promise(resolve => setTimeout(resolve, 500))
      afterLoad = await child.sample(Date.now() - start)
    }
    const settledIn = Date.now() - stopAt
    if (afterLoad.sockets > baseline.sockets) failures.push(`sockets did not return to baseline: ${afterLoad.sockets} > ${baseline.sockets} after ${settledIn} ms (${JSON.stringify(afterLoad.resources)}; ${afterLoad.socketInfo.join('; ')})`)
    if (afterLoad.handles > baseline.handles) failures.push(`active handles did not return to baseline: ${afterLoad.handles} > ${baseline.handles} after ${settledIn} ms (${JSON.stringify(afterLoad.resources)})`)

    // ---- heap growth: the first sample after warm-up against the last (and post-load) sample
    const ref = samples.find(s => s.atMs >= o.warmupMs)
    const last = afterLoad
    if (ref === undefined) failures.push('no heap sample after warm-up: make the run longer than the warm-up')
    else {
      const bound = ref.heapUsed * (1 + o.heapGrowth) + o.heapSlackBytes
      if (last.heapUsed > bound) failures.push(`heap grew from ${mib(ref.heapUsed)} (t=${(ref.atMs / 1000).toFixed(0)} s) to ${mib(last.heapUsed)}: over the bound ${mib(bound)}`)
    }
    if ((afterLoad.warnings.MaxListenersExceededWarning ?? 0) > 0) failures.push(`MaxListenersExceededWarning × ${afterLoad.warnings.MaxListenersExceededWarning}`)
    const unexpected = Object.entries(counts).filter(([k]) => !k.endsWith(':expected')).reduce((s, [, v]) => s + v, 0)
    // Faults are injected on purpose; anything outside them counts. A stray keep-alive race
    // on a loaded machine is tolerated up to 0.1 % of requests.
    if (unexpected > Math.max(1, sent * 0.001)) failures.push(`${unexpected} unexpected outcomes of ${sent}: ${JSON.stringify(counts)}`)
    if (reloadsApplied === 0) failures.push('no reload was applied during the load')
    if (reloadFailures > 0) failures.push(`${reloadFailures} admin reloads failed`)

    // ---- I2: reloads with no traffic
    let beforeReloads: TimedSample | undefined
    let afterReloads: TimedSample | undefined
    if (o.reloads > 0) {
      // A short warm-up run first: lazily created caches and JIT code are not a leak.
      await child.ask('reloads', { n: Math.min(50, o.reloads) })
      beforeReloads = await child.sample(Date.now() - start)
      const r = await child.ask('reloads', { n: o.reloads }, 600_000)
      if (r.failed !== 0) failures.push(`${String(r.failed)} of ${o.reloads} in-process reloads failed`)
      afterReloads = await child.sample(Date.now() - start)
      // Probes restarted by the last reloads may still be connecting: in-flight work, not a
      // leak. Handles must return to the level before the reloads within the settle time.
      const reloadsDoneAt = Date.now()
      while (afterReloads.handles > beforeReloads.handles && Date.now() - reloadsDoneAt < o.settleMs) {
        await new Promise(resolve => setTimeout(resolve, 250))
        afterReloads = await child.sample(Date.now() - start)
      }
      const bound = beforeReloads.heapUsed * (1 + o.heapGrowth) + o.heapSlackBytes
      if (afterReloads.heapUsed > bound) failures.push(`after ${o.reloads} reloads heap ${mib(afterReloads.heapUsed)} > bound ${mib(bound)} (from ${mib(beforeReloads.heapUsed)})`)
      if (afterReloads.handles > beforeReloads.handles) failures.push(`after ${o.reloads} reloads ${afterReloads.handles} handles > ${beforeReloads.handles} (${JSON.stringify(afterReloads.resources)})`)
    }

    const refLine = ref === undefined ? 'no reference sample' : `heap ${mib(ref.heapUsed)} at t=${(ref.atMs / 1000).toFixed(0)} s → ${mib(last.heapUsed)} after load (${(((last.heapUsed - ref.heapUsed) / ref.heapUsed) * 100).toFixed(1)} %)`
    const rssFirst = ref?.rss ?? baseline.rss
    const summary = [
      `soak ${failures.length === 0 ? 'PASSED' : 'FAILED'}: ${sent} requests in ${(o.durationMs / 1000).toFixed(0)} s (${achievedRate.toFixed(0)} req/s offered ${o.rate}), ${reloadsApplied} admin reloads`,
      `  outcomes: ${Object.entries(counts).sort().map(([k, v]) => `${k} ${v}`).join(', ')}`,
      `  ${refLine}; rss ${mib(rssFirst)} → ${mib(last.rss)}`,
      `  handles ${baseline.handles} at start → ${afterLoad.handles} ${settledIn} ms after load stopped; sockets ${baseline.sockets} → ${afterLoad.sockets}; MaxListenersExceededWarning ${afterLoad.warnings.MaxListenersExceededWarning ?? 0} (warnings: ${JSON.stringify(afterLoad.warnings)})`,
      ...(beforeReloads !== undefined && afterReloads !== undefined ? [`  ${o.reloads} reloads without traffic: heap ${mib(beforeReloads.heapUsed)} → ${mib(afterReloads.heapUsed)}, handles ${beforeReloads.handles} → ${afterReloads.handles}, generation ${afterReloads.generation}`] : []),
      ...failures.map(f => `  FAIL ${f}`)
    ].join('\n')
    log(summary)
    return { ok: failures.length === 0, failures, samples, baseline, afterLoad, beforeReloads, afterReloads, counts, reloadsApplied, reloadFailures, achievedRate, summary }
  } finally {
    if (proc.exitCode === null) {
      const exited = new Promise<void>(resolve => proc.once('exit', () => resolve()))
      proc.send({ cmd: 'stop' })
      const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(kill)
    }
    for (const s of servers) { s.closeAllConnections(); await new Promise(resolve => s.close(resolve)) }
  }
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '1' },
      rate: { type: 'string' },
      concurrency: { type: 'string' },
      reloads: { type: 'string' },
      'reload-every': { type: 'string' },
      'sample-every': { type: 'string' }
    }
  })
  const minutes = Number(values.minutes)
  if (!(minutes > 0)) throw new Error('--minutes must be a positive number')
  const durationMs = minutes * 60_000
  const result = await runSoak({
    durationMs,
    // Table I: the 10-minute mark of a 60-minute run; a sixth of shorter runs, at least 15 s.
    warmupMs: Math.max(15_000, Math.min(600_000, durationMs / 6)),
    sampleEveryMs: Math.max(5_000, Math.min(60_000, durationMs / 20)),
    reloadEveryMs: values['reload-every'] !== undefined ? Number(values['reload-every']) * 1000 : Math.min(30_000, Math.max(5_000, durationMs / 40)),
    ...(values.rate !== undefined ? { rate: Number(values.rate) } : { rate: 300 }),
    ...(values.concurrency !== undefined ? { concurrency: Number(values.concurrency) } : {}),
    ...(values.reloads !== undefined ? { reloads: Number(values.reloads) } : {})
  })
  process.exitCode = result.ok ? 0 : 1
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch(err => { process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`); process.exitCode = 2 })
}
