import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import type { LoadInput } from '../src/config/load.js'
import { Codes, type Problem, hasErrors, sortProblems } from '../src/config/problem.js'
import { readConfigInputs } from './config-files.js'
import { readSettled, watchPaths } from './config-watch.js'
import { ConfigError, ConfigManager, type ConfigSource, type Generation } from './config-manager.js'
import type { RunningGateway } from './gateway.js'

/**
 * `--workers N`: several processes share the listening ports (node:cluster; the primary
 * accepts and hands connections out round-robin). Each worker is a whole gateway (its own
 * snapshot, pools, health probes, breakers); the primary serves no traffic.
 *
 * Configuration changes are coordinated by the primary so every worker runs the same
 * generation: a change (admin reload/PUT/rollback, or the primary's file watch) is validated
 * once in the primary, then sent to every worker; the change is answered after all workers
 * acknowledged, and when any worker fails the ones that applied it are rolled back.
 *
 * The admin API runs in worker 1 (not in the primary): it needs a live gateway to answer
 * explain, clusters, metrics and readiness, and the primary has none. Its config-changing calls
 * are relayed through the primary to every worker. Read-only answers (clusters, metrics) are
 * worker 1's view; the other workers run the same probes at the same interval, so their health
 * view agrees within one probe period.
 */

/** Messages between the primary and the workers (all carry `t` starting with `mg:`). */
type ChangeOp = { kind: 'apply'; inputs: LoadInput[]; source: ConfigSource } | { kind: 'rollback' }
type Msg =
  | { t: 'mg:ready'; pid: number }
  | { t: 'mg:change'; id: number; op: ChangeOp }
  | { t: 'mg:result'; id: number; ok: boolean; generation?: number; problems?: Problem[] }
  | { t: 'mg:do'; id: number; op: ChangeOp }
  | { t: 'mg:undo'; id: number }
  | { t: 'mg:ack'; id: number; ok: boolean; generation?: number; problems?: Problem[] }
  | { t: 'mg:stats' }
  | { t: 'mg:stopped'; pid: number; requests: number }

/** The environment variable a worker learns its 1-based index from. */
export const WORKER_INDEX_ENV = 'MESHGATE_WORKER_INDEX'

/** `--workers` value → count: a positive integer, or `auto` for the number of cores. */
export function parseWorkers (value: string | undefined): number {
  if (value === undefined || value === '') return 1
  if (value === 'auto') return availableParallelism()
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`--workers "${value}": expected a whole number from 1 to 256, or auto`)
  return n
}

/** This process's role: the primary of a worker set, worker `index` (1-based), or a single process. */
export function workerIndex (): number | undefined {
  if (!cluster.isWorker) return undefined
  const n = Number(process.env[WORKER_INDEX_ENV])
  return Number.isInteger(n) && n > 0 ? n : cluster.worker?.id
}

interface Logger {
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

export interface PrimaryOptions {
  count: number
  /** Config paths (re-read on watch). */
  paths: readonly string[]
  strict: boolean
  allowUnsupportedKinds?: boolean
  meshNamespace: string
  watch: boolean
  watchDebounceMs?: number
  log: Logger
  /** How long workers get to drain on SIGTERM before they are killed (ms). */
  drainMs: number
  /** Per-step timeout waiting for workers (start, acks). Default 60 s. */
  timeoutMs?: number
  /**
   * etcd mode: the primary holds the one etcd watch and relays every revision, and the workers'
   * reads and writes, to and from its workers (plugins/config-source/relay.ts). Configuration
   * changes then go to etcd, not through the coordinated file-mode path.
   */
  relay?: { start: () => void; attach: (w: Worker) => void; close: () => Promise<void> }
}

/**
 * Run the primary: fork the workers (they re-run this CLI with the same arguments), coordinate
 * configuration changes, forward SIGTERM/SIGINT so every worker drains, and resolve with the
 * exit code once all are gone. A worker that dies unexpectedly stops the whole set (exit 1),
 * so a supervisor restarts it with one coherent configuration.
 */
export async function runPrimary (opts: PrimaryOptions): Promise<number> {
  const log = opts.log
  const timeoutMs = opts.timeoutMs ?? 60_000
  const workers: Worker[] = []
  let stopping = false
  let finish: (code: number) => void = () => {}
  const done = new Promise<number>(resolve => { finish = resolve })
  let failed = false
  const stats: Array<{ pid: number; requests: number }> = []

  const stopAll = (signal: NodeJS.Signals, reason: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal, workers: workers.filter(w => !w.isDead()).map(w => w.process.pid) }, `stopping every worker: ${reason}`)
    for (const w of workers) if (!w.isDead()) w.process.kill(signal)
    // Workers drain within their own deadline; this is the backstop.
    const t = setTimeout(() => { for (const w of workers) if (!w.isDead()) w.process.kill('SIGKILL') }, opts.drainMs + 5000)
    t.unref()
  }

  // ---- forking and readiness
  const ready = new Set<number>()
  let readyResolve: () => void = () => {}
  let readyReject: (e: Error) => void = () => {}
  const allReady = new Promise<void>((resolve, reject) => { readyResolve = resolve; readyReject = reject })
  const pending = new Map<string, (m: Msg & { t: 'mg:ack' }) => void>()

  cluster.on('exit', (w, code, signal) => {
    const expected = stopping
    if (!expected) {
      failed = true
      log.error({ worker: workerNo(w), pid: w.process.pid, code, signal }, 'a worker exited unexpectedly: stopping the others')
      readyReject(new Error(`worker ${workerNo(w)} exited with ${code ?? signal} before it was ready`))
      stopAll('SIGTERM', 'a worker died')
    } else if (code !== 0) {
      failed = true
    }
    // Pending acks from a dead worker fail now rather than at the timeout.
    for (const [key, fn] of pending) if (key.startsWith(`${w.id}:`)) fn({ t: 'mg:ack', id: Number(key.split(':')[1]), ok: false, problems: [problem(`worker ${workerNo(w)} exited`)] })
    if (workers.every(x => x.isDead())) finish(failed ? 1 : 0)
  })
  const workerNo = (w: Worker): number => workers.indexOf(w) + 1

  opts.relay?.start()
  for (let i = 1; i <= opts.count; i++) {
    const w = cluster.fork({ [WORKER_INDEX_ENV]: String(i) })
    workers.push(w)
    opts.relay?.attach(w)
    w.on('message', (m: Msg) => {
      if (m === null || typeof m !== 'object' || typeof m.t !== 'string') return
      if (m.t === 'mg:ready') { ready.add(w.id); if (ready.size === opts.count) readyResolve() }
      if (m.t === 'mg:ack') pending.get(`${w.id}:${m.id}`)?.(m)
      if (m.t === 'mg:change') {
        void change(m.op).then(r => { if (!w.isDead()) w.send({ t: 'mg:result', id: m.id, ...r } satisfies Msg) })
      }
      if (m.t === 'mg:stopped') stats.push({ pid: m.pid, requests: m.requests })
    })
  }
  process.on('SIGTERM', () => { if (stopping) return; stopAll('SIGTERM', 'SIGTERM') })
  process.on('SIGINT', () => {
    if (stopping) { for (const w of workers) if (!w.isDead()) w.process.kill('SIGKILL'); return }
    stopAll('SIGTERM', 'SIGINT')
  })
  const startTimer = setTimeout(() => readyReject(new Error(`workers not ready within ${timeoutMs} ms`)), timeoutMs)
  try {
    await allReady
  } catch (err) {
    log.error({ err: (err as Error).message }, 'workers did not start')
    stopAll('SIGTERM', 'start failed')
    await done
    await opts.relay?.close()
    return 1
  } finally {
    clearTimeout(startTimer)
  }
  log.info({ workers: workers.map(w => w.process.pid) }, `${opts.count} workers ready`)

  // ---- coordinated changes: one at a time, validate once, apply everywhere, undo on failure
  let seq = 0
  let chain: Promise<unknown> = Promise.resolve()
  const ask = (w: Worker, msg: Msg & { id: number }): Promise<Msg & { t: 'mg:ack' }> => new Promise(resolve => {
    const key = `${w.id}:${msg.id}`
    const timer = setTimeout(() => { pending.delete(key); resolve({ t: 'mg:ack', id: msg.id, ok: false, problems: [problem(`worker ${workerNo(w)} did not answer within ${timeoutMs} ms`)] }) }, timeoutMs)
    pending.set(key, m => { clearTimeout(timer); pending.delete(key); resolve(m) })
    if (w.isDead()) { pending.get(key)?.({ t: 'mg:ack', id: msg.id, ok: false, problems: [problem(`worker ${workerNo(w)} is not running`)] }); return }
    w.send(msg)
  })
  const validate = async (op: ChangeOp): Promise<Problem[]> => {
    if (op.kind !== 'apply') return []
    // The same loader and compiler the workers run, without installing anything.
    const probe = new ConfigManager({ config: { inputs: op.inputs }, strict: opts.strict, allowUnsupportedKinds: opts.allowUnsupportedKinds, meshNamespace: opts.meshNamespace, install: () => {} })
    try { await probe.reload('inputs'); return [] } catch (err) { return err instanceof ConfigError ? err.problems : [problem((err as Error).message)] }
  }
  const change = (op: ChangeOp): Promise<{ ok: boolean; generation?: number; problems?: Problem[] }> => {
    const run = async (): Promise<{ ok: boolean; generation?: number; problems?: Problem[] }> => {
      if (stopping) return { ok: false, problems: [problem('shutting down')] }
      const invalid = await validate(op)
      if (hasErrors(invalid)) return { ok: false, problems: invalid }
      const id = ++seq
      const live = workers.filter(w => !w.isDead())
      const acks = await Promise.all(live.map(w => ask(w, { t: 'mg:do', id, op })))
      const bad = acks.find(a => !a.ok)
      if (bad === undefined) {
        const gens = acks.map(a => a.generation)
        if (new Set(gens).size > 1) log.warn({ generations: gens }, 'workers report different generation numbers for the same change')
        log.info({ generation: gens[0], workers: live.map(w => w.process.pid), source: op.kind === 'apply' ? op.source : 'rollback' }, 'configuration applied on every worker')
        return { ok: true, generation: gens[0] }
      }
      // Roll back the workers that applied it, so none runs a configuration the others lack.
      const undo = await Promise.all(live.map((w, i) => acks[i].ok ? ask(w, { t: 'mg:undo', id }) : Promise.resolve(undefined)))
      const undoFailed = undo.filter(u => u !== undefined && !u.ok).length
      log.error({ failedWorkers: acks.filter(a => !a.ok).length, undoFailed }, 'configuration change failed on a worker: rolled back on the others')
      return { ok: false, problems: bad.problems ?? [problem('a worker rejected the change')] }
    }
    const p = chain.then(run, run)
    chain = p.catch(() => {})
    return p
  }

  // ---- file watch in the primary only (workers would otherwise each reload on their own),
  // through the same watcher and settle step as single-process mode.
  const read = async (): Promise<Awaited<ReturnType<typeof readConfigInputs>>> => await readConfigInputs([...opts.paths])
  const stopWatching = opts.watch
    ? watchPaths(opts.paths, opts.watchDebounceMs ?? 300, () => {
      void (async () => {
        const { inputs, problems } = await readSettled(await read(), read, 250)
        if (hasErrors(problems)) { log.error({ problems: sortProblems(problems) }, 'configuration change rejected; the running configuration is unchanged'); return }
        const r = await change({ kind: 'apply', inputs, source: 'watch' })
        if (r.ok) log.info({ generation: r.generation, source: 'watch' }, 'configuration reloaded')
        else log.error({ problems: r.problems }, 'configuration change rejected; the running configuration is unchanged')
      })()
    })
    : () => {}
  const code = await done
  stopWatching()
  await opts.relay?.close()
  if (stats.length > 0) log.info({ workers: stats }, 'every worker stopped')
  return code
}

function problem (message: string): Problem {
  return { severity: 'Error', code: Codes.WorkerFailed, message, file: '-', line: 1, column: 1 }
}

/**
 * In a worker: apply the primary's coordinated changes to this gateway, and report readiness.
 * Every change remembers the inputs it replaced, so an undo restores them.
 */
export function serveAsWorker (gw: RunningGateway): void {
  const before = new Map<number, LoadInput[]>()
  process.on('message', (m: Msg) => {
    if (m === null || typeof m !== 'object') return
    if (m.t === 'mg:do') {
      before.set(m.id, gw.config.current.inputs)
      if (before.size > 8) before.delete(before.keys().next().value!)
      const run = m.op.kind === 'apply' ? gw.config.applyInputsAll(m.op.inputs, m.op.source) : gw.config.rollback()
      run.then(
        g => process.send?.({ t: 'mg:ack', id: m.id, ok: true, generation: g.generation } satisfies Msg),
        err => process.send?.({ t: 'mg:ack', id: m.id, ok: false, problems: err instanceof ConfigError ? err.problems : [problem((err as Error).message)] } satisfies Msg)
      )
    }
    if (m.t === 'mg:undo') {
      const prev = before.get(m.id)
      if (prev === undefined) { process.send?.({ t: 'mg:ack', id: m.id, ok: false, problems: [problem('nothing to undo')] } satisfies Msg); return }
      gw.config.applyInputsAll(prev, 'rollback').then(
        g => process.send?.({ t: 'mg:ack', id: m.id, ok: true, generation: g.generation } satisfies Msg),
        err => process.send?.({ t: 'mg:ack', id: m.id, ok: false, problems: err instanceof ConfigError ? err.problems : [problem((err as Error).message)] } satisfies Msg)
      )
    }
  })
  process.send?.({ t: 'mg:ready', pid: process.pid } satisfies Msg)
}

/** Tell the primary how many requests this worker served (logged when all have stopped). */
export async function reportStopped (gw: RunningGateway): Promise<number> {
  const requests = gw.metrics.requestsTotal
  if (process.send !== undefined && process.connected) {
    await new Promise<void>(resolve => { process.send!({ t: 'mg:stopped', pid: process.pid, requests } satisfies Msg, () => resolve()) })
  }
  return requests
}

/**
 * The ConfigManager the admin API of worker 1 uses: reads and dry runs are local, while
 * reload, PUT and rollback go through the primary to every worker and resolve (or reject with
 * the problems) once all have answered.
 */
export function coordinatedConfig (manager: ConfigManager): ConfigManager {
  let seq = 0
  const waiting = new Map<number, (m: Msg & { t: 'mg:result' }) => void>()
  process.on('message', (m: Msg) => {
    if (m !== null && typeof m === 'object' && m.t === 'mg:result') waiting.get(m.id)?.(m)
  })
  const request = (op: ChangeOp): Promise<Generation> => new Promise((resolve, reject) => {
    const id = ++seq
    waiting.set(id, m => {
      waiting.delete(id)
      if (m.ok) resolve(manager.current)
      else reject(new ConfigError(sortProblems(m.problems ?? [])))
    })
    process.send!({ t: 'mg:change', id, op } satisfies Msg)
  })
  const wrapped = Object.create(manager) as ConfigManager
  Object.defineProperties(wrapped, {
    reload: {
      value: async (): Promise<Generation> => {
        const paths = manager.paths
        if (paths === undefined) return await request({ kind: 'apply', inputs: manager.current.inputs, source: 'files' })
        const { inputs, problems } = await readConfigInputs([...paths])
        if (hasErrors(problems)) throw new ConfigError(sortProblems(problems))
        return await request({ kind: 'apply', inputs, source: 'files' })
      }
    },
    applyText: {
      value: async (text: string, mode: 'replace' | 'merge', file = '<body>'): Promise<Generation> => {
        const body = { file, text }
        const inputs = mode === 'replace' ? [body] : [...manager.current.inputs, body]
        return await request({ kind: 'apply', inputs, source: 'api' })
      }
    },
    rollback: { value: async (): Promise<Generation> => await request({ kind: 'rollback' }) },
    applyInputsAll: { value: async (inputs: LoadInput[], source: ConfigSource = 'inputs'): Promise<Generation> => await request({ kind: 'apply', inputs, source }) }
  })
  return wrapped
}
