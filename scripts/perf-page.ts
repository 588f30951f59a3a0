// npm run perf-page: writes docs/performance.md from the newest .bench/results-*.json that
// `npm run bench` left, so the page's figures are exactly those of one run.
//
//   npm run perf-page                        the newest results file
//   npm run perf-page -- --input FILE        a given results file
//   npm run perf-page -- --out FILE          write elsewhere (default docs/performance.md)
//
// The page's "Earlier runs" section is kept as it is between the HISTORY markers: it holds
// dated figures of earlier runs, written by hand. Without any results file the page is left
// unchanged.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

/** The part of bench/run.ts's results JSON the page reads. */
export interface BenchResults {
  startedAt: string
  seconds: number
  machine: Record<string, unknown>
  options: { duration?: number, latencyDuration?: number, rounds?: number, connections?: number, only?: string[], routes?: boolean, http?: boolean }
  table: string[]
  routeScale?: Array<{ routes: number, hosts: number, routesInHost: number, layout?: string, matchNs: number, linearNs: number, compileMs: number, loadMs: number,
    compileSwapMs: number, rssMb: number, heapMb: number }>
  goals?: Array<{ goal: string, value: string, met: boolean }>
}

export const HISTORY_BEGIN = '<!-- HISTORY: kept by npm run perf-page -->'
export const HISTORY_END = '<!-- /HISTORY -->'

/** The repository root: the nearest directory above this file that holds a package.json. */
function repoRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir)
    if (up === dir) return process.cwd()
    dir = up
  }
  return dir
}

/** The newest `results-*.json` in `dir` (names carry an ISO timestamp, so they sort by time). */
export function newestResults (dir: string): string | undefined {
  if (!existsSync(dir)) return undefined
  const files = readdirSync(dir).filter(f => /^results-.*\.json$/.test(f)).sort()
  return files.length > 0 ? join(dir, files[files.length - 1]) : undefined
}

const n = (x: number, digits = 0): string => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })

/** `2026-12-02T16:46:34.047Z` → `2026-12-02 16:46 UTC`. */
export function runDate (iso: string): string {
  return iso.replace(/^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}).*$/, '$1 $2 UTC')
}

function routeScaleTable (rs: NonNullable<BenchResults['routeScale']>): string {
  const base = rs.find(r => r.routes === 10)
  const lines = [
    '| routes | hosts | routes in the target host | match the last route (ns) | × the 10-route cost | linear scan (ns) | first load (ms) | reload: parse + validate (ms) | reload: compile + swap (ms) | RSS (MB) | JS heap (MB) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
  ]
  for (const r of rs) {
    lines.push(`| ${n(r.routes)} | ${r.hosts} | ${n(r.routesInHost)} | ${n(r.matchNs)} | ${base !== undefined ? (r.matchNs / base.matchNs).toFixed(2) : '—'} | ${n(r.linearNs)} | ${n(r.compileMs)} | ${n(r.loadMs)} | ${n(r.compileSwapMs)} | ${n(r.rssMb)} | ${n(r.heapMb)} |`)
  }
  return lines.join('\n')
}

const HOW = `## How to run it

\`\`\`sh
npm ci
npm run bench                                   # about 5 minutes on 2 cores; the first run installs bench/package.json's peers (Node 24)
npm run bench -- --duration 5 --rounds 3        # seconds per throughput run, rounds (the defaults)
npm run bench -- --quick                        # 2 s runs, 1 round: a smoke test
npm run bench -- --routes                       # only the route-table scale figures
npm run bench -- --no-routes                    # skip them
npm run bench -- --only meshgate,reply-from     # a subset (the direct hit is always measured)
npm run perf-page                               # this page, from the newest results
\`\`\`

## What the bench measures

- An **upstream** on loopback in its own process: a \`node:http\` server answering a fixed
  344-byte JSON document, keep-alive.
- Each **peer in its own process**, all proxying \`GET /api/v1/products/0\` to it: the **Node
  floor** (\`node:http\` with an undici \`Pool\`, no routing, response streamed), **Fastify with
  @fastify/reply-from** to one fixed upstream, **@fastify/http-proxy**, **fast-gateway**
  (restana; its \`fast-proxy-lite\` is pinned to 1.1.2 by an npm \`overrides\` entry of bench/package.json because the
  registry lacks 1.1.3), and **nginx** with one worker when \`nginx\` is installed (upstream keep-alive, no
  access log, no master process).
- **meshgate** started as a user would (\`dist/bin/meshgate.js\`, admin off, access log to a
  file) with a Bookinfo-like configuration: an ingress VirtualService with several match blocks
  and a 90/10 split over two subsets with timeout and retries, a mesh VirtualService with a
  header match and a weighted split, DestinationRules with connection pools and outlier
  detection, breakers on: the full feature path. It is measured with one worker and with
  \`--workers 2\`.
- **Load** from wrk (Debian package \`wrk\`; without it the bench falls back to autocannon,
  whose latency has whole-millisecond resolution): throughput with 1 thread and 50
  connections, latency (p50, p99) with 1 connection.
- With \`taskset\`, each proxy runs on core 1 and wrk with the upstream on core 0
  (\`--workers 2\` gets both cores). nginx is therefore limited by the rig; its CPU per request
  is the fair comparison.
- **CPU per request**: the proxy's \`utime + stime\` (workers included) over each throughput run,
  divided by the requests completed.
- Several rounds in rotating order, so drift hits every scenario alike; medians with min–max.
- **Route-table scale** (\`--routes\`): tables of exact, prefix, prefix + header and regex
  routes over many hosts (100 routes per host) and, as a worst case, all in one host; the
  request hits the last route. Each size runs in its own process; match times are the best of
  five timed runs.

The route index behind the flat match times is built with the snapshot for every virtual host
with 8 routes or more. Each route's URI condition yields a literal key the path must start
with (the exact path, the prefix unless it contains \`?\`, or the literal start of a regex
without alternation); keys are split into path segments in a trie, and each node stores the
full candidate list in the original order, including routes without a usable key. A lookup
walks the path's segments and reads one list; each candidate's full match still decides, so
first-match-wins is kept exactly (checked against a linear scan on 1,500 random tables).
`

/** The page for one results file; `history` is the hand-kept section to carry over. */
export function renderPage (r: BenchResults, source: string, history: string): string {
  const o = r.options
  const m = r.machine
  const machine = [
    m.cores !== undefined ? `${String(m.cores)} cores` : undefined,
    typeof m.cpu === 'string' ? m.cpu : undefined,
    typeof m.platform === 'string' ? m.platform : undefined,
    typeof m.node === 'string' ? `Node ${m.node}` : undefined,
    m.wrk !== undefined && m.wrk !== null && m.wrk !== false ? 'wrk' : 'autocannon',
    m.taskset === true ? 'taskset pinning' : 'no pinning',
    m.nginx !== undefined && m.nginx !== null && m.nginx !== false ? 'nginx present' : undefined
  ].filter(x => x !== undefined).join(', ')
  const partial = o.only !== undefined && o.only.length > 0
  const out: string[] = []
  out.push('# Performance', '')
  out.push(`<!-- Generated by npm run perf-page from ${source}. Edit scripts/perf-page.ts or the Earlier runs section, not the rest. -->`, '')
  out.push(`Run of **${runDate(r.startedAt)}**, ${n(r.seconds)} s in all: ${o.rounds ?? '?'} round(s) of ${o.duration ?? '?'} s at ${o.connections ?? '?'} connections and ${o.latencyDuration ?? '?'} s at 1 connection.`)
  out.push('', `Machine: ${machine}.`, '')
  if (partial) out.push(`This run measured only ${o.only?.map(x => `\`${x}\``).join(', ')} (and the direct hit), so peers missing below were not part of it; see [earlier runs](#earlier-runs) for full comparisons.`, '')
  if (r.table.length > 0) {
    out.push('## Proxies', '', ...r.table, '')
    out.push('The ratios divide meshgate by each row: below 1× in req/s, or above 1× in CPU, means meshgate does worse. meshgate does routing over several match blocks, a weighted split, retries with timeouts, breakers, outlier detection, Istio metrics and an access-log line per request; the peers do none of that.', '')
  } else {
    out.push('This run had no proxy measurements.', '')
  }
  if (r.routeScale !== undefined && r.routeScale.length > 0) out.push('## Route-table scale', '', routeScaleTable(r.routeScale), '')
  if (r.goals !== undefined && r.goals.length > 0) {
    out.push('## Goals in this run', '', '| goal | this run | |', '|---|---|---|')
    for (const g of r.goals) out.push(`| ${g.goal} | ${g.value} | ${g.met ? 'met' : 'missed'} |`)
    out.push('')
  }
  out.push(HOW)
  out.push('## Earlier runs', '', HISTORY_BEGIN, history.trim(), HISTORY_END, '')
  return out.join('\n')
}

/** The hand-kept section of an existing page, or '' when there is none. */
export function keptHistory (page: string): string {
  const a = page.indexOf(HISTORY_BEGIN)
  const b = page.indexOf(HISTORY_END)
  return a >= 0 && b > a ? page.slice(a + HISTORY_BEGIN.length, b) : ''
}

export function main (argv: string[]): number {
  const { values } = parseArgs({ args: argv, options: { input: { type: 'string' }, out: { type: 'string' } } })
  const root = repoRoot()
  const input = values.input !== undefined ? resolve(values.input) : newestResults(join(root, '.bench'))
  const out = values.out !== undefined ? resolve(values.out) : join(root, 'docs', 'performance.md')
  if (input === undefined) {
    process.stdout.write(`no .bench/results-*.json (run npm run bench first); ${relative(root, out)} left as it is\n`)
    return 0
  }
  const results = JSON.parse(readFileSync(input, 'utf8')) as BenchResults
  if (typeof results.startedAt !== 'string' || !Array.isArray(results.table)) {
    process.stderr.write(`${input}: not a bench results file (no startedAt or table)\n`)
    return 1
  }
  const history = existsSync(out) ? keptHistory(readFileSync(out, 'utf8')) : ''
  const source = input.startsWith(root + sep) ? relative(root, input).split(sep).join('/') : basename(input)
  writeFileSync(out, renderPage(results, source, history))
  process.stdout.write(`${relative(root, out)} written from ${source} (${runDate(results.startedAt)})\n`)
  return 0
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) process.exitCode = main(process.argv.slice(2))
