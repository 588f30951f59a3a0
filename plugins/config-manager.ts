import { compile } from '../src/compile/compile.js'
import type { Snapshot } from '../src/compile/snapshot.js'
import { type LoadInput, loadConfig, parseDocuments } from '../src/config/load.js'
import { type ResourceSet, resourceId } from '../src/config/model.js'
import type { CredentialStore } from '../src/config/credentials.js'
import { type Problem, hasErrors, sortProblems } from '../src/config/problem.js'
import { readConfigInputs } from './config-files.js'

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
  meshNamespace?: string
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

/** Rounds of `settleMs` a watch reload waits for the files to stop changing before it gives up. */
export const MAX_SETTLE_ROUNDS = 20

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
      const { inputs, problems } = source === 'watch' ? await this.settled(read) : read
      return this.applyInputs(inputs, source, problems)
    })
  }

  /** Re-read until two reads `settleMs` apart agree; after MAX_SETTLE_ROUNDS, an error. */
  private async settled (first: { inputs: LoadInput[]; problems: Problem[] }): Promise<{ inputs: LoadInput[]; problems: Problem[] }> {
    const ms = this.opts.settleMs ?? 250
    let prev = first
    for (let i = 0; i < MAX_SETTLE_ROUNDS; i++) {
      await new Promise(resolve => setTimeout(resolve, ms))
      const next = await this.readInputs()
      if (sameInputs(prev, next)) return next
      prev = next
    }
    return {
      inputs: prev.inputs,
      problems: [...prev.problems, { severity: 'Error', code: 'MG0010', message: `the configuration files kept changing for ${(MAX_SETTLE_ROUNDS * ms) / 1000} s; not applied (write a new file and rename it over the old one)`, file: prev.inputs[0]?.file ?? '-', line: 1, column: 1 }]
    }
  }

  /** Apply already-read inputs as the whole configuration. */
  applyInputsAll (inputs: LoadInput[], source: ConfigSource = 'inputs'): Promise<Generation> {
    return this.serial(async () => this.applyInputs(inputs, source, []))
  }

  /** Apply YAML from the API: `replace` the whole set, or `merge` into the current one (same kind/namespace/name replaces). */
  applyText (text: string, mode: 'replace' | 'merge', file = '<body>'): Promise<Generation> {
    return this.serial(async () => {
      const body = { file, text }
      const inputs = mode === 'replace' ? [body] : compactInputs([...this.current.inputs, body])
      return this.applyInputs(inputs, 'api', [])
    })
  }

  /** Dry run: the same checks, no change. Without text, re-reads the configured files. */
  validate (text?: string, mode: 'replace' | 'merge' = 'replace', file = '<body>'): Promise<{ ok: boolean; problems: Problem[] }> {
    return this.serial(async () => {
      let inputs: LoadInput[]
      let io: Problem[] = []
      if (text === undefined) ({ inputs, problems: io } = await this.readInputs())
      else inputs = mode === 'replace' ? [{ file, text }] : [...this.current.inputs, { file, text }]
      const r = this.build(inputs, io)
      return { ok: !hasErrors(r.problems), problems: r.problems }
    })
  }

  /** Go back to the previous kept generation (it becomes a new generation number). */
  rollback (): Promise<Generation> {
    return this.serial(async () => {
      if (this.gens.length < 2) throw new ConfigError([{ severity: 'Error', code: 'MG0008', message: 'no previous generation to roll back to', file: '-', line: 1, column: 1 }])
      const prev = this.gens[this.gens.length - 2]
      const top = this.gens.pop()!
      try {
        return this.applyInputs(prev.inputs, 'rollback', [], true)
      } catch (err) {
        this.gens.push(top)
        throw err
      }
    })
  }

  private async readInputs (): Promise<{ inputs: LoadInput[]; problems: Problem[] }> {
    if (Array.isArray(this.opts.config)) return await readConfigInputs(this.opts.config as string[])
    return { inputs: (this.opts.config as { inputs: LoadInput[] }).inputs, problems: [] }
  }

  private build (inputs: LoadInput[], io: Problem[]): { set?: ResourceSet; snapshot?: Snapshot; problems: Problem[] } {
    const loaded = loadConfig(inputs, { strict: this.opts.strict })
    let problems = [...io, ...loaded.problems]
    if (hasErrors(problems)) return { problems: sortProblems(problems) }
    const c = compile(loaded.set, { generation: this.counter + 1, meshNamespace: this.opts.meshNamespace, now: this.opts.now, ...(this.opts.credentials !== undefined ? { credentials: this.opts.credentials } : {}) })
    problems = [...problems, ...c.problems.map(p => this.opts.strict === true && p.severity === 'Warning' ? { ...p, severity: 'Error' as const } : p)]
    const current = this.gens[this.gens.length - 1]?.snapshot
    problems.push(...(this.opts.check?.(c.snapshot, current) ?? []))
    return { set: loaded.set, snapshot: c.snapshot, problems: sortProblems(problems) }
  }

  private applyInputs (inputs: LoadInput[], source: ConfigSource, io: Problem[], replacingTop = false): Generation {
    const r = this.build(inputs, io)
    const now = (this.opts.now ?? Date.now)()
    if (hasErrors(r.problems) || r.snapshot === undefined || r.set === undefined) {
      this.lastRejection = { at: now, source, problems: r.problems }
      if (this.gens.length > 0) this.reloadFailures++
      throw new ConfigError(r.problems)
    }
    this.counter++
    const gen: Generation = { generation: this.counter, loadedAt: now, source, inputs, set: r.set, snapshot: r.snapshot, problems: r.problems }
    if (replacingTop && this.gens.length > 0) this.gens[this.gens.length - 1] = gen
    else this.gens.push(gen)
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

function sameInputs (a: { inputs: LoadInput[]; problems: Problem[] }, b: { inputs: LoadInput[]; problems: Problem[] }): boolean {
  if (a.inputs.length !== b.inputs.length || a.problems.length !== b.problems.length) return false
  return a.inputs.every((x, i) => x.file === b.inputs[i].file && x.text === b.inputs[i].text)
}

/**
 * Drop merged API bodies whose every resource a later input redefines: repeated merges would
 * otherwise keep every body ever sent, and re-parse them all on each change. The result
 * loads to the same set, since a later definition replaces an earlier one. Files read from
 * disk are always kept.
 */
export function compactInputs (inputs: LoadInput[]): LoadInput[] {
  if (inputs.length < 2) return inputs
  const ids = inputs.map(i => i.file.startsWith('<') ? parseDocuments(i.text, i.file).resources.map(r => resourceId(r)) : undefined)
  const later = new Set<string>()
  const keep: boolean[] = new Array(inputs.length).fill(true)
  for (let i = inputs.length - 1; i >= 0; i--) {
    const own = ids[i]
    if (i < inputs.length - 1 && own !== undefined && own.every(id => later.has(id))) keep[i] = false
    if (own !== undefined) for (const id of own) later.add(id)
    else {
      for (const r of parseDocuments(inputs[i].text, inputs[i].file).resources) later.add(resourceId(r))
    }
  }
  return inputs.filter((_, i) => keep[i])
}
