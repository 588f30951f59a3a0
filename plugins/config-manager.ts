import type { GatewayWorkload } from '../src/security/compile.js'
import { compile } from '../src/compile/compile.js'
import type { Snapshot } from '../src/compile/snapshot.js'
import { type LoadInput, compactInputs, loadConfig } from '../src/config/load.js'
import type { ResourceSet } from '../src/config/model.js'
import type { CredentialStore } from '../src/config/credentials.js'
import { Codes, type Problem, hasErrors, sortProblems } from '../src/config/problem.js'
import { readConfigInputs } from './config-files.js'
import { readSettled } from './config-watch.js'
import { loadOffThread, offThread } from './config-worker.js'

/** Thrown when a configuration has errors: carries every problem. */
export class ConfigError extends Error {
  constructor (public readonly problems: Problem[]) {
    super(`configuration has ${problems.filter(p => p.severity === 'Error').length} error(s)`)
    this.name = 'ConfigError'
  }
}

export type ConfigSource = 'files' | 'api' | 'rollback' | 'watch' | 'inputs'

/** One applied configuration: what was loaded, from where, and what it compiled to. */
export interface Generation {
  generation: number
  loadedAt: number
  source: ConfigSource
  inputs: LoadInput[]
  set: ResourceSet
  snapshot: Snapshot
  problems: Problem[]
}

export interface Rejection {
  at: number
  source: ConfigSource
  problems: Problem[]
}

export interface ConfigManagerOptions {
  /** Files or directories to (re-)read, or fixed inputs. */
  config: readonly string[] | { inputs: LoadInput[] }
  strict?: boolean
  /** Istio resources meshgate cannot enforce are skipped with a warning instead of refused (MG0012). */
  allowUnsupportedKinds?: boolean
  meshNamespace?: string
  /** The ingress gateway workload security policies select (default: istio-ingressgateway in istio-system). */
  gatewayWorkload?: GatewayWorkload
  now?: () => number
  /** Generations kept for rollback (the current one included). Default 5. */
  keep?: number
  /** Extra check before a snapshot is accepted (e.g. the listener ports are unchanged). */
  check?: (next: Snapshot, current: Snapshot | undefined) => Problem[]
  /** Where Gateway and DestinationRule `credentialName` secrets are looked up (see plugins/tls.ts). */
  credentials?: CredentialStore
  /** Install an accepted snapshot (the atomic swap). */
  install: (snapshot: Snapshot) => void
  /**
   * File-watch reloads read the files, wait this long and read them again, and apply only
   * when both reads agree (else wait again): a file still being written is never applied half
   * way. Default 250 ms.
   */
  settleMs?: number
}

export { MAX_SETTLE_ROUNDS } from './config-watch.js'

/**
 * Owns the configuration's life: load, reload, replace or merge through the API, dry-run
 * validation, rollback to a kept generation. All-or-nothing: a change with any error leaves the
 * running snapshot untouched and is recorded as the last rejection. Operations are serialised,
 * so concurrent reloads never interleave.
 */
export class ConfigManager {
  private gens: Generation[] = []
  private counter = 0
  private chain: Promise<unknown> = Promise.resolve()
  lastRejection: Rejection | undefined
  reloadFailures = 0

  constructor (private readonly opts: ConfigManagerOptions) {}

  get current (): Generation {
    const g = this.gens[this.gens.length - 1]
    if (g === undefined) throw new Error('configuration not loaded yet')
    return g
  }

  get history (): readonly Generation[] {
    return this.gens
  }

  get paths (): readonly string[] | undefined {
    return Array.isArray(this.opts.config) ? this.opts.config as readonly string[] : undefined
  }

  /** Read the configured files (or inputs) and apply them. */
  reload (source: ConfigSource = 'files'): Promise<Generation> {
    return this.serial(async () => {
      const read = await this.readInputs()
      const { inputs, problems } = source === 'watch' ? await readSettled(read, async () => await this.readInputs(), this.opts.settleMs ?? 250) : read
      return await this.applyInputs(inputs, source, problems)
    })
  }

  /** Apply already-read inputs as the whole configuration. */
  applyInputsAll (inputs: LoadInput[], source: ConfigSource = 'inputs'): Promise<Generation> {
    return this.serial(async () => await this.applyInputs(inputs, source, []))
  }

  /** Apply YAML from the API: `replace` the whole set, or `merge` into the current one (same kind/namespace/name replaces). */
  applyText (text: string, mode: 'replace' | 'merge', file = '<body>'): Promise<Generation> {
    return this.serial(async () => {
      const body = { file, text }
      return await this.applyInputs(mode === 'replace' ? [body] : [...this.current.inputs, body], 'api', [], mode === 'merge')
    })
  }

  /** Dry run: the same checks, no change. Without text, re-reads the configured files. */
  validate (text?: string, mode: 'replace' | 'merge' = 'replace', file = '<body>'): Promise<{ ok: boolean; problems: Problem[] }> {
    return this.serial(async () => {
      let inputs: LoadInput[]
      let io: Problem[] = []
      if (text === undefined) ({ inputs, problems: io } = await this.readInputs())
      else inputs = mode === 'replace' ? [{ file, text }] : [...this.current.inputs, { file, text }]
      const r = await this.build(inputs, io)
      return { ok: !hasErrors(r.problems), problems: r.problems }
    })
  }

  /** Go back to the previous kept generation (it becomes a new generation number). */
  rollback (): Promise<Generation> {
    return this.serial(async () => {
      if (this.gens.length < 2) throw new ConfigError([{ severity: 'Error', code: Codes.NoRollback, message: 'no previous generation to roll back to', file: '-', line: 1, column: 1 }])
      // The kept generations change only once the rollback is accepted: while it is checked
      // (off the event loop, for a large configuration) `current` is still the running one.
      return await this.applyInputs(this.gens[this.gens.length - 2].inputs, 'rollback', [], false, true)
    })
  }

  private async readInputs (): Promise<{ inputs: LoadInput[]; problems: Problem[] }> {
    if (Array.isArray(this.opts.config)) return await readConfigInputs(this.opts.config as string[])
    return { inputs: (this.opts.config as { inputs: LoadInput[] }).inputs, problems: [] }
  }

  /**
   * Load, validate and compile. Large inputs are parsed and validated in a worker thread (see
   * plugins/config-worker.ts), so a big change never holds up proxied traffic; only compiling
   * runs here. The problems are the same either way.
   */
  private async build (inputs: LoadInput[], io: Problem[], compact = false): Promise<{ inputs: LoadInput[]; set?: ResourceSet; snapshot?: Snapshot; problems: Problem[] }> {
    if (!offThread(inputs)) {
      const used = compact ? compactInputs(inputs) : inputs
      return { inputs: used, ...this.compileLoaded(loadConfig(used, { strict: this.opts.strict, allowUnsupportedKinds: this.opts.allowUnsupportedKinds }), io) }
    }
    const off = await loadOffThread(inputs, { strict: this.opts.strict, allowUnsupportedKinds: this.opts.allowUnsupportedKinds, compact })
    try {
      const used = off.keep === undefined ? inputs : off.keep.map(i => inputs[i])
      const r = this.compileLoaded(off, io)
      return { inputs: used, ...r, problems: sortProblems(await off.resolve(r.problems)) }
    } finally {
      off.release()
    }
  }

  private compileLoaded (loaded: { set: ResourceSet; problems: Problem[] }, io: Problem[]): { set?: ResourceSet; snapshot?: Snapshot; problems: Problem[] } {
    let problems = [...io, ...loaded.problems]
    if (hasErrors(problems)) return { problems: sortProblems(problems) }
    const c = compile(loaded.set, { generation: this.counter + 1, meshNamespace: this.opts.meshNamespace, now: this.opts.now,
      ...(this.opts.gatewayWorkload !== undefined ? { gatewayWorkload: this.opts.gatewayWorkload } : {}),
      ...(this.opts.credentials !== undefined ? { credentials: this.opts.credentials } : {}) })
    problems = [...problems, ...c.problems.map(p => this.opts.strict === true && p.severity === 'Warning' ? { ...p, severity: 'Error' as const } : p)]
    const current = this.gens[this.gens.length - 1]?.snapshot
    problems.push(...(this.opts.check?.(c.snapshot, current) ?? []))
    return { set: loaded.set, snapshot: c.snapshot, problems: sortProblems(problems) }
  }

  /**
   * Build and, when there is no error, install. `compact`: drop merged API bodies a later
   * input redefines entirely. `rollback`: the new generation replaces the top two (the one
   * rolled back from, and the one rolled back to, whose inputs it has).
   */
  private async applyInputs (inputs: LoadInput[], source: ConfigSource, io: Problem[], compact = false, rollback = false): Promise<Generation> {
    const r = await this.build(inputs, io, compact)
    const now = (this.opts.now ?? Date.now)()
    if (hasErrors(r.problems) || r.snapshot === undefined || r.set === undefined) {
      this.lastRejection = { at: now, source, problems: r.problems }
      if (this.gens.length > 0) this.reloadFailures++
      throw new ConfigError(r.problems)
    }
    this.counter++
    const gen: Generation = { generation: this.counter, loadedAt: now, source, inputs: r.inputs, set: r.set, snapshot: r.snapshot, problems: r.problems }
    if (rollback && this.gens.length >= 2) { this.gens.pop(); this.gens[this.gens.length - 1] = gen } else this.gens.push(gen)
    while (this.gens.length > (this.opts.keep ?? 5)) this.gens.shift()
    this.opts.install(r.snapshot)
    return gen
  }

  private serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn)
    this.chain = run.catch(() => {})
    return run
  }
}

export { compactInputs } from '../src/config/load.js'
