import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { compactIndices, loadConfig, type LoadInput } from '../src/config/load.js'
import { SET_LISTS, emptySet, type Resource, type ResourceSet } from '../src/config/model.js'
import { Codes, type Problem } from '../src/config/problem.js'

// Parsing and validating a configuration off the event loop. YAML parsing dominates the cost
// of a change (a 400 KB config: about 300 ms to parse and validate, 15–50 ms to compile), and
// proxied traffic waits for whatever the event loop is doing. This module is both sides: the
// client below, used by ConfigManager on the main thread, and, when started as a worker
// thread, the loader itself. Compiling stays on the main thread: a snapshot holds RE2
// programs, matcher closures and Maps, which cannot cross threads.

type Path = ReadonlyArray<string | number>
type Position = { line: number; column: number }

/** A resource as it crosses threads: everything but `locate` (a closure over the YAML tree). */
export type PlainResource = Omit<Resource, 'locate'>

type Request =
  | { kind: 'load'; id: number; inputs: LoadInput[]; strict: boolean; allowUnsupportedKinds: boolean; compact: boolean; keepPositions: boolean }
  | { kind: 'locate'; id: number; load: number; queries: Array<{ index: number; path: Path }> }
  | { kind: 'release'; id: number; load: number }

type Reply =
  | { kind: 'load'; id: number; set: Record<keyof ResourceSet, PlainResource[]>; problems: Problem[]; keep?: number[] }
  | { kind: 'locate'; id: number; positions: Position[] }
  | { kind: 'error'; id: number; message: string }

const LISTS = Object.values(SET_LISTS)
const ROLE = 'meshgate-config-worker'

// ---------------------------------------------------------------- worker side

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) {
  // Per load still being compiled by the main thread: the resources' position lookups, so
  // problems found by the compiler get the same file, line and column as on one thread.
  const kept = new Map<number, Array<Resource['locate']>>()
  parentPort!.on('message', (m: Request) => {
    try {
      if (m.kind === 'load') {
        const keep = m.compact ? compactIndices(m.inputs) : undefined
        const inputs = keep === undefined ? m.inputs : keep.map(i => m.inputs[i])
        const loaded = loadConfig(inputs, { strict: m.strict, allowUnsupportedKinds: m.allowUnsupportedKinds })
        const locates: Array<Resource['locate']> = []
        const set = {} as Record<keyof ResourceSet, PlainResource[]>
        for (const list of LISTS) {
          set[list] = (loaded.set[list] as Resource[]).map(r => {
            const { locate, ...rest } = r
            locates.push(locate)
            return rest
          })
        }
        if (m.keepPositions && loaded.ok) kept.set(m.id, locates)
        parentPort!.postMessage({ kind: 'load', id: m.id, set, problems: loaded.problems, ...(keep !== undefined ? { keep } : {}) } satisfies Reply)
      } else if (m.kind === 'locate') {
        const locates = kept.get(m.load)
        const positions = m.queries.map(q => locates?.[q.index]?.(q.path) ?? { line: 1, column: 1 })
        parentPort!.postMessage({ kind: 'locate', id: m.id, positions } satisfies Reply)
      } else {
        kept.delete(m.load)
      }
    } catch (err) {
      parentPort!.postMessage({ kind: 'error', id: m.id, message: (err as Error).message } satisfies Reply)
    }
  })
}

// ---------------------------------------------------------------- main-thread client

/**
 * Inputs smaller than this (UTF-16 units in total) are loaded on the calling thread: about
 * 10 ms of parsing, less than a round trip to a worker that has to start first. Larger ones go
 * to the worker.
 */
export const OFF_THREAD_MIN_CHARS = 16 * 1024

/** The worker is stopped after this long without work; the next large change starts it again. */
const IDLE_MS = 30_000

/** A load done by the worker: the resource set, its problems, and position lookups for the compiler. */
export interface OffThreadLoad {
  set: ResourceSet
  problems: Problem[]
  /** With `compact`: the indices of the inputs kept. */
  keep?: number[]
  /**
   * Positions of the paths the compiler asked `locate` for, by resource: each resource's
   * `locate` answers a placeholder (line and column -k for the k-th call) until resolved here.
   */
  resolve: (problems: Problem[]) => Promise<Problem[]>
  /** Frees the worker's copy of the YAML trees. */
  release: () => void
}

let worker: Worker | undefined
let seq = 0
let idleTimer: NodeJS.Timeout | undefined
const pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>()

function getWorker (): Worker {
  if (worker !== undefined) return worker
  // This very module (.ts under the tests' TypeScript loader, which the thread inherits; .js
  // when built). A 1 MB stack like the main thread's, so deep YAML fails alike on both.
  const w = new Worker(new URL(import.meta.url), { workerData: { role: ROLE }, resourceLimits: { stackSizeMb: 1 } })
  w.on('message', (r: Reply) => {
    const p = pending.get(r.id)
    if (p === undefined) return
    pending.delete(r.id)
    if (r.kind === 'error') p.reject(new Error(r.message))
    else p.resolve(r)
    idle()
  })
  const fail = (err: Error): void => {
    if (worker === w) worker = undefined
    for (const [id, p] of pending) { pending.delete(id); p.reject(err) }
  }
  w.on('error', err => fail(err))
  w.on('exit', code => fail(new Error(`the configuration parser thread exited (code ${code})`)))
  worker = w
  return w
}

/** Keep the process alive only while work is pending; stop the worker after IDLE_MS idle. */
function idle (): void {
  const w = worker
  if (w === undefined) return
  if (pending.size > 0) { w.ref(); return }
  w.unref()
  if (idleTimer !== undefined) clearTimeout(idleTimer)
  idleTimer = setTimeout(() => {
    idleTimer = undefined
    if (pending.size === 0 && worker === w) { worker = undefined; void w.terminate() }
  }, IDLE_MS)
  idleTimer.unref()
}

function ask (msg: Request): Promise<Reply> {
  const w = getWorker()
  return new Promise((resolve, reject) => {
    pending.set(msg.id, { resolve, reject })
    w.ref()
    w.postMessage(msg)
  })
}

/** Stops the worker now (tests; a process that exits need not call it). */
export async function stopConfigWorker (): Promise<void> {
  const w = worker
  worker = undefined
  if (idleTimer !== undefined) { clearTimeout(idleTimer); idleTimer = undefined }
  if (w !== undefined) await w.terminate()
}

/** Whether inputs of this size are loaded by the worker. */
export function offThread (inputs: readonly LoadInput[]): boolean {
  let chars = 0
  for (const i of inputs) chars += typeof i.text === 'string' ? i.text.length : 0
  return chars >= OFF_THREAD_MIN_CHARS
}

/**
 * `loadConfig` (after `compactIndices` when `compact`) in the worker thread. Problems are the
 * same objects one thread would produce; a worker that fails is one Error problem.
 */
export async function loadOffThread (inputs: LoadInput[], opts: { strict?: boolean; allowUnsupportedKinds?: boolean; compact?: boolean } = {}): Promise<OffThreadLoad> {
  const id = ++seq
  let reply: Reply
  try {
    reply = await ask({ kind: 'load', id, inputs, strict: opts.strict === true, allowUnsupportedKinds: opts.allowUnsupportedKinds === true, compact: opts.compact === true, keepPositions: true })
  } catch (err) {
    const problem: Problem = { severity: 'Error', code: Codes.Io, message: `the configuration could not be checked: ${(err as Error).message}`, file: inputs[0]?.file ?? '-', line: 1, column: 1 }
    return { set: emptySet(), problems: [problem], resolve: async p => p, release: () => {} }
  }
  if (reply.kind !== 'load') throw new Error('unexpected reply from the configuration parser thread')
  // Receiving the reply (structured-clone decoding) took one turn of the event loop; the
  // compile that follows gets its own, so requests waiting for I/O run in between.
  await new Promise(resolve => setImmediate(resolve))
  const queries: Array<{ index: number; path: Path }> = []
  const set = {} as ResourceSet
  let index = 0
  for (const list of LISTS) {
    (set as unknown as Record<string, Resource[]>)[list] = reply.set[list].map(plain => {
      const i = index++
      const r = plain as Resource
      r.locate = (path: Path) => {
        queries.push({ index: i, path: [...path] })
        return { line: -queries.length, column: -queries.length }
      }
      return r
    })
  }
  let released = false
  const release = (): void => {
    if (released) return
    released = true
    // After the build, a resource's position is its document's: nothing asks for more.
    for (const list of LISTS) for (const r of set[list] as Resource[]) r.locate = () => ({ line: r.source.line, column: r.source.column })
    if (worker !== undefined) worker.postMessage({ kind: 'release', id: ++seq, load: id } satisfies Request)
  }
  const resolve = async (problems: Problem[]): Promise<Problem[]> => {
    if (!problems.some(p => p.line < 0)) return problems
    let positions: Position[]
    try {
      const r = await ask({ kind: 'locate', id: ++seq, load: id, queries })
      positions = r.kind === 'locate' ? r.positions : []
    } catch {
      positions = []
    }
    return problems.map(p => {
      if (p.line >= 0) return p
      const at = positions[-p.line - 1] ?? { line: 1, column: 1 }
      return { ...p, line: at.line, column: at.column }
    })
  }
  return { set, problems: reply.problems, ...(reply.keep !== undefined ? { keep: reply.keep } : {}), resolve, release }
}
