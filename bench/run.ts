// `npm run bench`: meshgate side by side with its peers, in one run, interleaved.
//
//   npm run bench                                  full run (about 5 minutes on 2 cores)
//   npm run bench -- --duration 5 --rounds 3      seconds per throughput run, rounds
//   npm run bench -- --quick                       a short smoke run (about 1 minute)
//   npm run bench -- --routes                      only the route-table scale figures
//   npm run bench -- --only meshgate,reply-from    a subset of scenarios (direct is always kept)
//   npm run bench -- --no-routes                   skip the route-table scale figures
//   npm run bench -- --only meshgate,reply-from --baseline ../base/dist/bin/meshgate.js
//                                                  A/B: another meshgate build, same configuration
//
// Every proxy runs in its own process on one core (taskset) while wrk and the upstream share
// the other; throughput is wrk -t1 -c50, latency wrk -t1 -c1 --latency; the proxy's CPU time per
// request comes from /proc/<pid>/stat. Results go to .bench/results-<timestamp>.json.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { join, resolve as resolvePath } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { BENCH_PATH, benchAuthzYaml, benchConfigYaml } from './meshgate-config.js'
import { importPeer } from './peers.js'
import { formatRouteScale, runRouteScale, type RouteScaleResult } from './routes.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url)) // dist/bench → repo root
const SERVERS = fileURLToPath(new URL('./servers.js', import.meta.url))
const MESHGATE = fileURLToPath(new URL('../bin/meshgate.js', import.meta.url))
// MESHGATE_BENCH_LOADGEN=autocannon forces the fallback (to check it without uninstalling wrk).
const WRK = process.env.MESHGATE_BENCH_LOADGEN === 'autocannon' ? undefined : ['/usr/bin/wrk', '/usr/local/bin/wrk'].find(p => existsSync(p)) ?? which('wrk')
const TASKSET = which('taskset')
const NGINX = which('nginx') ?? ['/usr/sbin/nginx'].find(p => existsSync(p))
const CLK_TCK = (() => { try { return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100 } catch { return 100 } })()

/** One measured run of one scenario. */
interface Sample { rps: number; requests: number; cpuUsPerReq: number | null; p50Us: number | null; p99Us: number | null; errors: number }

interface Scenario {
  name: string
  label: string
  url: string
  /** Processes whose CPU time counts as the proxy's (empty for the direct hit). */
  pids: () => number[]
  stop: () => Promise<void>
  /** Pinned to the proxy core (false for the direct hit and for several workers). */
  pinned: boolean
}

interface Summary { median: number; min: number; max: number }

function which (cmd: string): string | undefined {
  try { return execFileSync('sh', ['-c', `command -v ${cmd}`]).toString().trim() || undefined } catch { return undefined }
}

function median (xs: number[]): Summary {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
  return { median: m, min: s[0], max: s[s.length - 1] }
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as AddressInfo).port; s.close(() => resolve(p)) })
  })
}

/** Spawn on a core (when taskset exists). */
function spawnOn (core: string | undefined, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const [c, a] = core !== undefined && TASKSET !== undefined ? [TASKSET, ['-c', core, cmd, ...args]] : [cmd, args]
  // taskset execs the command: the child's pid is the proxy's pid.
  return spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT, env: { ...process.env, ...opts.env } })
}

function waitForPortLine (child: ChildProcess, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    child.stdout!.on('data', d => {
      out += String(d)
      const m = /port=(\d+)/.exec(out)
      if (m !== null) resolve(Number(m[1]))
    })
    child.stderr!.on('data', d => { err += String(d) })
    child.once('exit', code => reject(new Error(`${what} exited with ${code}: ${err.slice(-2000)}`)))
  })
}

/** Poll until GET url answers 200. */
async function waitReady (url: string, child: ChildProcess, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let stderr = ''
  child.stderr?.on('data', d => { stderr += String(d) })
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${stderr.slice(-2000)}`)
    const status = await new Promise<number>(resolve => {
      const req = request(url, { agent: false }, res => { res.resume(); resolve(res.statusCode ?? 0) })
      req.on('error', () => resolve(0))
      req.setTimeout(2000, () => { req.destroy(); resolve(0) })
      req.end()
    })
    if (status === 200) return
    await new Promise(r => setTimeout(r, 100))
  }
  throw new Error(`${what} did not answer 200 on ${url} within ${timeoutMs} ms: ${stderr.slice(-2000)}`)
}

function kill (child: ChildProcess): Promise<void> {
  return new Promise(resolve => {
    if (child.exitCode !== null || child.signalCode !== null) { resolve(); return }
    const t = setTimeout(() => { child.kill('SIGKILL') }, 15_000)
    child.once('exit', () => { clearTimeout(t); resolve() })
    child.kill('SIGTERM')
  })
}

/** utime + stime of a process and its children threads, in µs (from /proc). */
function cpuUs (pids: number[]): number | null {
  let ticks = 0
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(fields[11]) + Number(fields[12]) // utime, stime (fields 14 and 15)
    } catch { return null }
  }
  return ticks / CLK_TCK * 1e6
}

/** Child pids of a process (the cluster workers of a meshgate primary). */
function childPids (pid: number): number[] {
  try { return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) } catch { return [] }
}

function toUs (v: string, unit: string): number {
  const n = Number(v)
  return unit === 'us' ? n : unit === 'ms' ? n * 1000 : unit === 's' ? n * 1e6 : n
}

interface LoadResult { rps: number; requests: number; p50Us: number | null; p99Us: number | null; errors: number }

/** One wrk run (or autocannon when wrk is missing). */
async function load (url: string, connections: number, seconds: number): Promise<LoadResult> {
  if (WRK === undefined) return await autocannonLoad(url, connections, seconds)
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', url]
  const [cmd, a] = TASKSET !== undefined ? [TASKSET, ['-c', '0', WRK, ...args]] : [WRK, args]
  const out = await new Promise<string>((resolve, reject) => {
    const c = spawn(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    c.stdout.on('data', d => { text += String(d) })
    c.stderr.on('data', d => { text += String(d) })
    c.on('error', reject)
    c.on('exit', () => resolve(text))
  })
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN)
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN)
  const lat = (pct: string): number | null => {
    const m = new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out)
    return m === null ? null : toUs(m[1], m[2])
  }
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const errors = non2xx + (sock === null ? 0 : sock.slice(1).reduce((s, x) => s + Number(x), 0))
  if (!Number.isFinite(rps) || !Number.isFinite(requests)) throw new Error(`cannot parse wrk output:\n${out}`)
  return { rps, requests, p50Us: lat('50'), p99Us: lat('99'), errors }
}

async function autocannonLoad (url: string, connections: number, seconds: number): Promise<LoadResult> {
  const { default: autocannon } = await importPeer('autocannon')
  const r = await autocannon({ url, connections, duration: seconds })
  // autocannon reports latency in whole milliseconds: too coarse for added latency, so none is
  // reported. It runs in this process (not pinned like wrk).
  return { rps: r.requests.average, requests: r.requests.total, p50Us: null, p99Us: null, errors: r.errors + r.non2xx }
}

async function startNodePeer (kind: string, upstream: string, label: string): Promise<Scenario> {
  const child = spawnOn('1', process.execPath, [SERVERS, kind, upstream])
  const port = await waitForPortLine(child, kind)
  const url = `http://127.0.0.1:${port}${BENCH_PATH}`
  await waitReady(url, child, kind)
  return { name: kind, label, url, pids: () => [child.pid!], stop: () => kill(child), pinned: TASKSET !== undefined }
}

async function startNginx (upstreamPort: number, dir: string): Promise<Scenario> {
  const port = await freePort()
  const prefix = join(dir, 'nginx')
  mkdirSync(join(prefix, 'logs'), { recursive: true })
  const conf = join(prefix, 'nginx.conf')
  // master_process off: one process does the work, so its pid is the one to measure.
  writeFileSync(conf, `worker_processes 1;
daemon off;
master_process off;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(prefix, 'body')};
  proxy_temp_path ${join(prefix, 'proxy')};
  fastcgi_temp_path ${join(prefix, 'fastcgi')};
  uwsgi_temp_path ${join(prefix, 'uwsgi')};
  scgi_temp_path ${join(prefix, 'scgi')};
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`)
  const child = spawnOn('1', NGINX!, ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')])
  const url = `http://127.0.0.1:${port}${BENCH_PATH}`
  await waitReady(url, child, 'nginx')
  return { name: 'nginx', label: 'nginx, 1 worker', url, pids: () => [child.pid!], stop: () => kill(child), pinned: TASKSET !== undefined }
}

interface MeshgateVariant { workers?: number; log?: boolean; authz?: boolean; tracing?: boolean }

/**
 * The meshgate scenarios: one worker with the access log (the headline, tracing off), without the
 * log, with ten AuthorizationPolicy rules, with tracing on at Istio's default 1 % sampling, two workers.
 */
const MESHGATE_VARIANTS: Record<string, { label: string; v: MeshgateVariant }> = {
  meshgate: { label: 'meshgate, full feature path', v: {} },
  'meshgate-nolog': { label: 'meshgate, full feature path, access log off', v: { log: false } },
  'meshgate-authz': { label: 'meshgate, full feature path + 10 AuthorizationPolicy rules', v: { authz: true } },
  'meshgate-traced': { label: 'meshgate, full feature path + tracing at 1 % (OTLP to a local sink)', v: { tracing: true } },
  'meshgate-w2': { label: 'meshgate --workers 2 (both cores)', v: { workers: 2 } }
}

/**
 * The headline scenario run by another build of meshgate (`--baseline path/to/dist/bin/meshgate.js`):
 * an A/B comparison of two builds within one run, where the machine's drift hits both alike.
 */
const BASELINE = 'meshgate-baseline'

async function startMeshgate (upstreamPort: number, dir: string, name: string, otlpSink: string, bin = MESHGATE): Promise<Scenario> {
  const { label, v } = name === BASELINE ? { label: `meshgate, full feature path, baseline build (${bin})`, v: {} } : MESHGATE_VARIANTS[name]
  const workers = v.workers ?? 1
  const log = v.log ?? true
  const port = await freePort()
  const meshPort = await freePort()
  const cfgDir = join(dir, name)
  mkdirSync(cfgDir, { recursive: true })
  writeFileSync(join(cfgDir, 'bookinfo.yaml'), benchConfigYaml(upstreamPort))
  if (v.authz === true) writeFileSync(join(cfgDir, 'authz.yaml'), benchAuthzYaml())
  const accessLog = join(cfgDir, 'access.log')
  const args = [bin, '--config', cfgDir, '--port-map', `8080=${port}`, '--mesh-port', String(meshPort),
    '--admin-port', 'off', '--access-log', log ? accessLog : 'off', '--log-level', 'warn', '--host', '127.0.0.1']
  if (workers > 1) args.push('--workers', String(workers))
  if (v.tracing === true) args.push('--otlp-endpoint', otlpSink, '--trace-sampling', '1')
  // Several workers get both cores (pinning them to one would measure nothing new).
  const child = spawnOn(workers > 1 ? undefined : '1', process.execPath, args)
  const url = `http://127.0.0.1:${port}${BENCH_PATH}`
  await waitReady(url, child, name)
  return { name, label, url, pids: () => [child.pid!, ...childPids(child.pid!)], stop: () => kill(child), pinned: workers === 1 && TASKSET !== undefined }
}

interface Options { duration: number; latencyDuration: number; rounds: number; connections: number; only?: string[]; baseline?: string; routes: boolean; http: boolean }

function options (argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      'latency-duration': { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      quick: { type: 'boolean' },
      routes: { type: 'boolean' },
      'no-routes': { type: 'boolean' },
      only: { type: 'string' },
      baseline: { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (v.help === true) {
    process.stdout.write('npm run bench -- [--duration S] [--latency-duration S] [--rounds N] [--connections N] [--quick] [--routes | --no-routes] [--only a,b] [--baseline other/dist/bin/meshgate.js]\n')
    process.exit(0)
  }
  const quick = v.quick === true
  const duration = Number(v.duration ?? (quick ? 2 : 5))
  return {
    duration,
    latencyDuration: Number(v['latency-duration'] ?? (quick ? 1 : Math.min(3, duration))),
    rounds: Number(v.rounds ?? (quick ? 1 : 3)),
    connections: Number(v.connections ?? 50),
    only: v.only?.split(',').map(s => s.trim()),
    ...(v.baseline !== undefined ? { baseline: resolvePath(v.baseline) } : {}),
    routes: v['no-routes'] !== true,
    http: v.routes !== true
  }
}

/** Machine description for docs/performance.md and the JSON. */
function machine (): Record<string, unknown> {
  let model = cpus()[0]?.model ?? 'unknown'
  try { model = /Model name:\s+(.+)/.exec(execFileSync('lscpu').toString())?.[1]?.trim() ?? model } catch { /* no lscpu */ }
  return { cores: availableParallelism(), cpu: model, node: process.version, platform: `${process.platform} ${process.arch}`, wrk: WRK ?? null, taskset: TASKSET !== undefined, nginx: NGINX ?? null }
}

const fmt = (n: number, d = 0): string => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })
const range = (s: Summary, d = 0): string => `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})`

export async function main (argv: string[]): Promise<number> {
  const opts = options(argv)
  const started = Date.now()
  const info = machine()
  process.stdout.write(`meshgate bench: ${info.cores} cores, ${info.cpu}, node ${info.node}\n`)
  if (WRK === undefined) {
    process.stdout.write('wrk not found: install it with `sudo apt-get install -y wrk` (Debian/Ubuntu) for latency figures;\n' +
      'falling back to autocannon (throughput only: its latency has whole-millisecond resolution).\n')
  }
  if (TASKSET === undefined) process.stdout.write('taskset not found: proxies and the load generator share cores (figures are noisier).\n')
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-bench-'))
  const scenarios: Scenario[] = []
  const results: Record<string, Sample[]> = {}
  let upstream: ChildProcess | undefined
  let sink: ReturnType<typeof createServer> | undefined
  let routeScale: RouteScaleResult[] | undefined
  try {
    if (opts.http) {
      upstream = spawnOn('0', process.execPath, [SERVERS, 'upstream'])
      const upPort = await waitForPortLine(upstream, 'upstream')
      const upUrl = `http://127.0.0.1:${upPort}`
      await waitReady(upUrl + BENCH_PATH, upstream, 'upstream')
      // Where the traced scenario exports its spans: accepted and dropped, as a collector would take them.
      sink = createServer((req, res) => { req.resume(); req.on('end', () => res.end('{}')) })
      await new Promise<void>(resolve => sink!.listen(0, '127.0.0.1', resolve))
      const otlpSink = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`
      const want = (n: string): boolean => opts.only === undefined || opts.only.includes(n) || n === 'direct'
      scenarios.push({ name: 'direct', label: 'upstream hit directly', url: upUrl + BENCH_PATH, pids: () => [], stop: async () => {}, pinned: false })
      const starters: Array<[string, () => Promise<Scenario>]> = [
        ['nginx', () => startNginx(upPort, dir)],
        ['floor', () => startNodePeer('floor', upUrl, 'Node floor: node:http + undici Pool, no routing')],
        ['reply-from', () => startNodePeer('reply-from', upUrl, 'Fastify + @fastify/reply-from, one upstream')],
        ['http-proxy', () => startNodePeer('http-proxy', upUrl, '@fastify/http-proxy')],
        ['fast-gateway', () => startNodePeer('fast-gateway', upUrl, 'fast-gateway')],
        ...Object.keys(MESHGATE_VARIANTS).map(name => [name, () => startMeshgate(upPort, dir, name, otlpSink)] as [string, () => Promise<Scenario>]),
        ...(opts.baseline !== undefined ? [[BASELINE, () => startMeshgate(upPort, dir, BASELINE, otlpSink, opts.baseline)] as [string, () => Promise<Scenario>]] : [])
      ]
      for (const [name, start] of starters) {
        if (!want(name) && name !== BASELINE) continue
        if (name === 'nginx' && NGINX === undefined) { process.stdout.write('nginx not on PATH: skipped\n'); continue }
        try {
          scenarios.push(await start())
        } catch (err) {
          process.stdout.write(`${name}: could not start, skipped: ${(err as Error).message.split('\n')[0]}\n`)
        }
      }
      for (const s of scenarios) results[s.name] = []
      const perRun = opts.duration + opts.latencyDuration + 0.5
      const eta = scenarios.length * (1 + opts.rounds * perRun)
      process.stdout.write(`${scenarios.length} scenarios × ${opts.rounds} round(s), ${opts.duration} s at ${opts.connections} connections + ${opts.latencyDuration} s at 1 connection each; about ${Math.ceil(eta / 60)} min for the HTTP part\n`)
      for (const s of scenarios) await load(s.url, opts.connections, 1) // warm-up: JIT, pools, keep-alive
      for (let round = 0; round < opts.rounds; round++) {
        // Round-robin order: each round starts one scenario later, so drift hits everyone alike.
        const order = scenarios.map((_, i) => scenarios[(i + round) % scenarios.length])
        for (const s of order) {
          const before = cpuUs(s.pids())
          const tp = await load(s.url, opts.connections, opts.duration)
          const after = cpuUs(s.pids())
          const lat = WRK !== undefined ? await load(s.url, 1, opts.latencyDuration) : { p50Us: null, p99Us: null, errors: 0 }
          const cpu = s.pids().length > 0 && before !== null && after !== null ? (after - before) / tp.requests : null
          const sample: Sample = { rps: tp.rps, requests: tp.requests, cpuUsPerReq: cpu, p50Us: lat.p50Us, p99Us: lat.p99Us, errors: tp.errors + lat.errors }
          results[s.name].push(sample)
          process.stdout.write(`[round ${round + 1}/${opts.rounds}] ${s.name.padEnd(15)} ${fmt(tp.rps).padStart(7)} req/s` +
            `${cpu !== null ? `  ${cpu.toFixed(1).padStart(5)} µs CPU/req` : '                 '}` +
            `  1-conn p50 ${lat.p50Us?.toFixed(0) ?? '-'} µs p99 ${lat.p99Us?.toFixed(0) ?? '-'} µs${sample.errors > 0 ? `  ERRORS ${sample.errors}` : ''}\n`)
        }
      }
    }
  } finally {
    await Promise.allSettled(scenarios.map(s => s.stop()))
    if (upstream !== undefined) await kill(upstream)
    sink?.close()
  }
  if (opts.routes) {
    process.stdout.write('route-table scale (each size in its own process):\n')
    routeScale = await runRouteScale(l => process.stdout.write('  ' + l + '\n'))
  }

  // ---- summary
  const summary: Record<string, { label: string; rps: Summary; cpuUsPerReq?: Summary; p50Us?: Summary; p99Us?: Summary; errors: number }> = {}
  for (const s of scenarios) {
    const xs = results[s.name]
    if (xs.length === 0) continue
    const cpu = xs.map(x => x.cpuUsPerReq).filter((x): x is number => x !== null)
    const p50 = xs.map(x => x.p50Us).filter((x): x is number => x !== null)
    const p99 = xs.map(x => x.p99Us).filter((x): x is number => x !== null)
    summary[s.name] = {
      label: s.label,
      rps: median(xs.map(x => x.rps)),
      ...(cpu.length > 0 ? { cpuUsPerReq: median(cpu) } : {}),
      ...(p50.length > 0 ? { p50Us: median(p50) } : {}),
      ...(p99.length > 0 ? { p99Us: median(p99) } : {}),
      errors: xs.reduce((n, x) => n + x.errors, 0)
    }
  }
  const mg = summary.meshgate
  const direct = summary.direct
  const lines: string[] = []
  if (Object.keys(summary).length > 0) {
    lines.push(`| proxy | req/s at ${opts.connections} conns, median (min–max) | meshgate ÷ this (req/s) | proxy CPU µs/request | meshgate ÷ this (CPU) | p50 at 1 conn (µs) | added p50 over direct (µs) | p99 at 1 conn (µs) |`)
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|')
    for (const [name, r] of Object.entries(summary)) {
      const ratio = mg !== undefined && name !== 'meshgate' ? (mg.rps.median / r.rps.median).toFixed(2) + '×' : '—'
      const cpuRatio = mg?.cpuUsPerReq !== undefined && r.cpuUsPerReq !== undefined && name !== 'meshgate' ? (mg.cpuUsPerReq.median / r.cpuUsPerReq.median).toFixed(2) + '×' : '—'
      const added = direct?.p50Us !== undefined && r.p50Us !== undefined && name !== 'direct' ? fmt(r.p50Us.median - direct.p50Us.median) : '—'
      lines.push(`| ${r.label} | ${range(r.rps)} | ${ratio} | ${r.cpuUsPerReq !== undefined ? range(r.cpuUsPerReq, 1) : '—'} | ${cpuRatio} | ${r.p50Us !== undefined ? range(r.p50Us) : '—'} | ${added} | ${r.p99Us !== undefined ? fmt(r.p99Us.median) : '—'} |${r.errors > 0 ? ` ${r.errors} errors` : ''}`)
    }
  }
  const goals: Array<{ goal: string; value: string; met: boolean }> = []
  const g = (goal: string, value: number | undefined, ok: (v: number) => boolean, unit = '×'): void => {
    if (value === undefined || !Number.isFinite(value)) return
    goals.push({ goal, value: `${value.toFixed(2)}${unit}`, met: ok(value) })
  }
  if (mg !== undefined) {
    g('throughput ≥ 1.0× Fastify + reply-from', summary['reply-from'] !== undefined ? mg.rps.median / summary['reply-from'].rps.median : undefined, v => v >= 1.0)
    g('throughput ≥ 1.15× @fastify/http-proxy', summary['http-proxy'] !== undefined ? mg.rps.median / summary['http-proxy'].rps.median : undefined, v => v >= 1.15)
    g('throughput ≥ 1.4× fast-gateway', summary['fast-gateway'] !== undefined ? mg.rps.median / summary['fast-gateway'].rps.median : undefined, v => v >= 1.4)
    const rf = summary['reply-from']
    const nolog = summary['meshgate-nolog']
    g('CPU/request ≤ Fastify + reply-from', mg.cpuUsPerReq !== undefined && rf?.cpuUsPerReq !== undefined ? mg.cpuUsPerReq.median / rf.cpuUsPerReq.median : undefined, v => v <= 1.0)
    g('access log off: CPU/request ≤ 1.2× the Node floor', nolog?.cpuUsPerReq !== undefined && summary.floor?.cpuUsPerReq !== undefined ? nolog.cpuUsPerReq.median / summary.floor.cpuUsPerReq.median : undefined, v => v <= 1.2)
    const authz = summary['meshgate-authz']
    const traced = summary['meshgate-traced']
    g('tracing on at 1 %: CPU/request over tracing off', traced?.cpuUsPerReq !== undefined && mg.cpuUsPerReq !== undefined ? traced.cpuUsPerReq.median / mg.cpuUsPerReq.median : undefined, () => true)
    g('10 AuthorizationPolicy rules: CPU/request ≤ 1.05× without', authz?.cpuUsPerReq !== undefined && mg.cpuUsPerReq !== undefined ? authz.cpuUsPerReq.median / mg.cpuUsPerReq.median : undefined, v => v <= 1.05)
    g('added p50 at 1 connection ≤ Fastify + reply-from\'s', mg.p50Us !== undefined && rf?.p50Us !== undefined && direct?.p50Us !== undefined ? (mg.p50Us.median - direct.p50Us.median) - (rf.p50Us.median - direct.p50Us.median) : undefined, v => v <= 0, ' µs over reply-from')
  }
  if (routeScale !== undefined) {
    const base = routeScale.find(r => r.routes === 10)
    for (const r of routeScale.filter(r => r.routes === 1000)) {
      if (base !== undefined) g(`1,000 routes (${r.layout}): at most +5 µs per request over 10 routes`, (r.matchNs - base.matchNs) / 1000, v => v <= 5, ' µs')
    }
    for (const r of routeScale.filter(r => r.routes === 10000)) {
      if (base !== undefined) g(`10,000 routes (${r.layout}): match last ≤ 2× the 10-route cost`, r.matchNs / base.matchNs, v => v <= 2)
      g(`10,000 routes (${r.layout}): compile + swap < 1 s`, r.compileSwapMs, v => v < 1000, ' ms')
      g(`10,000 routes (${r.layout}): parse + compile + swap < 1 s`, r.loadMs + r.compileSwapMs, v => v < 1000, ' ms')
      g(`10,000 routes (${r.layout}): RSS < 200 MB`, r.rssMb, v => v < 200, ' MB')
    }
  }
  if (lines.length > 0) process.stdout.write('\n' + lines.join('\n') + '\n')
  if (routeScale !== undefined) process.stdout.write('\n' + formatRouteScale(routeScale) + '\n')
  if (goals.length > 0) {
    process.stdout.write('\nGoals (this run):\n')
    for (const x of goals) process.stdout.write(`  ${x.met ? 'met   ' : 'MISSED'} ${x.goal}: ${x.value}\n`)
  }
  const outDir = join(ROOT, '.bench')
  mkdirSync(outDir, { recursive: true })
  const file = join(outDir, `results-${new Date(started).toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify({ startedAt: new Date(started).toISOString(), seconds: (Date.now() - started) / 1000, machine: info, options: opts, samples: results, summary, table: lines, routeScale, goals }, null, 2) + '\n')
  process.stdout.write(`\nresults: ${file} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`)
  rmSync(dir, { recursive: true, force: true })
  return 0
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(code => { process.exitCode = code }, err => { process.stderr.write(String(err?.stack ?? err) + '\n'); process.exitCode = 1 })
}
