import type { GatewayWorkload } from '../src/security/compile.js'
import { compile } from '../src/compile/compile.js'
import type { Snapshot } from '../src/compile/snapshot.js'
import { type LoadInput, compactInputs, loadConfig } from '../src/config/load.js'
import { type ResourceSet, emptySet } from '../src/config/model.js'
import { type StoredKey, desiredKeys, diffKeys, splitResources } from '../src/config/etcd-layout.js'
import { type ConfigStore, ConflictError, type StoreSnapshot, type StoreStatus, type WatchState } from '../src/config/source.js'
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

export { ConflictError }

export type ConfigSource = 'files' | 'api' | 'rollback' | 'watch' | 'inputs' | 'etcd'

/** One applied configuration: what was loaded, from where, and what it compiled to. */
export interface Generation {
  generation: number
  loadedAt: number
  source: ConfigSource
  inputs: LoadInput[]
  set: ResourceSet
  snapshot: Snapshot
  problems: Problem[]
  /** The store revision this generation is (etcd mode). */
  revision?: number
}

export interface Rejection {
  at: number
  source: ConfigSource
  problems: Problem[]
  /** The store revision refused (etcd mode). */
  revision?: number
}

/** Where a store-backed configuration stands, for /ready, /config and the metrics. */
export interface SyncStatus {
  url: string
  /** True once a revision was applied (the replica is ready). */
  synced: boolean
  /** The revision running; 0 before the first sync. */
  revision: number
  /** The newest revision refused by validation, when newer than the running one. */
  refusedRevision?: number
  /** connected, lagging (a received revision is still being applied), disconnected, connecting. */
  watch: WatchState
  /** ISO time since when the watch state holds. */
  since: string
  reason?: string
  /** Re-lists after a compaction. */
  relists: number
}

export interface ConfigManagerOptions {
  /** Files or directories to (re-)read, fixed inputs, or a store to follow (etcd). */
  config: readonly string[] | { inputs: LoadInput[] } | { store: ConfigStore & { relists?: number } }
  /** Store mode: how long the start waits for the first sync before serving not-ready (default 5000 ms). */
  initialSyncMs?: number
  /** Store mode: how long a write waits for its revision to come back through the watch (default 10000 ms). */
  writeApplyMs?: number
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
  // Store mode (etcd): the keys of the running revision, the newest revision received and
  // refused, writers waiting for their revision, and the chain that applies revisions in order.
  private readonly store: (ConfigStore & { relists?: number }) | undefined
  private latest: StoreSnapshot = { revision: 0, keys: new Map<string, StoredKey>(), inputs: [] }
  private received = 0
  private refused = 0
  /** The newest revision applied or refused. */
  private processed = 0
  private waiters: Array<{ revision: number; done: () => void }> = []
  private applyChain: Promise<unknown> = Promise.resolve()
  private stopped = false
  private firstSync: (() => void) | undefined

  constructor (private readonly opts: ConfigManagerOptions) {
    this.store = 'store' in opts.config ? opts.config.store : undefined
  }

  /**
   * The first load. Files and inputs: read and apply (a ConfigError when invalid). A store:
   * list and follow it; when no valid revision arrives within `initialSyncMs` (etcd down, or
   * its configuration refused) the manager starts on an empty placeholder (generation 0) and
   * reports not synced, and the first valid revision replaces it whenever it comes.
   */
  async start (): Promise<Generation> {
    if (this.store === undefined) return await this.reload(Array.isArray(this.opts.config) ? 'files' : 'inputs')
    const synced = new Promise<void>(resolve => { this.firstSync = resolve })
    void this.follow(this.store)
    const timer = new Promise<void>(resolve => setTimeout(resolve, this.opts.initialSyncMs ?? 5000).unref())
    await Promise.race([synced, timer])
    if (this.gens.length === 0) {
      const snapshot = compile(emptySet(), this.compileOptions(0)).snapshot
      this.gens.push({ generation: 0, loadedAt: this.now(), source: 'etcd', inputs: [], set: emptySet(), snapshot, problems: [], revision: 0 })
      this.opts.install(snapshot)
    }
    return this.current
  }

  /** True once a real configuration runs (always, outside store mode). */
  get synced (): boolean {
    return this.gens.length > 0 && this.gens[this.gens.length - 1].generation > 0
  }

  /** Why the replica is not ready yet (store mode before its first sync). */
  get notSyncedReason (): string | undefined {
    if (this.synced || this.store === undefined) return undefined
    const st = this.store.status()
    // Shown by the public /ready: the state and since when, not the members or the error (GET /config has them).
    if (st.state !== 'connected') return `no configuration yet: etcd unreachable since ${new Date(st.since).toISOString()}`
    if (this.lastRejection?.revision !== undefined) return `no configuration yet: revision ${this.lastRejection.revision} was refused (${this.lastRejection.problems.filter(p => p.severity === 'Error').length} error(s), see GET /config)`
    return 'no configuration yet: waiting for the first sync with etcd'
  }

  /** The store's state as this replica sees it; undefined outside store mode. */
  syncStatus (): SyncStatus | undefined {
    if (this.store === undefined) return undefined
    const st: StoreStatus = this.store.status()
    const revision = this.gens[this.gens.length - 1]?.revision ?? 0
    const lagging = st.state === 'connected' && this.received > Math.max(revision, this.refused)
    return {
      url: st.url,
      synced: this.synced,
      revision,
      ...(this.refused > revision ? { refusedRevision: this.refused } : {}),
      watch: lagging ? 'lagging' : st.state,
      since: new Date(st.since).toISOString(),
      ...(st.reason !== undefined ? { reason: st.reason } : {}),
      relists: this.store.relists ?? 0
    }
  }

  /** Stop following the store (store mode). */
  async close (): Promise<void> {
    this.stopped = true
    await this.store?.close()
  }

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
    if (this.store !== undefined) {
      // A store reload reads the newest revision and applies it (nothing is written).
      const store = this.store
      return this.serial(async () => { await this.applySnapshot(await store.list()); return this.current })
    }
    return this.serial(async () => {
      const read = await this.readInputs()
      const { inputs, problems } = source === 'watch' ? await readSettled(read, async () => await this.readInputs(), this.opts.settleMs ?? 250) : read
      return await this.applyInputs(inputs, source, problems)
    })
  }

  /** Apply already-read inputs as the whole configuration. */
  applyInputsAll (inputs: LoadInput[], source: ConfigSource = 'inputs'): Promise<Generation> {
    if (this.store !== undefined) return this.serial(async () => await this.write(inputs, 'replace', source))
    return this.serial(async () => await this.applyInputs(inputs, source, []))
  }

  /** Apply YAML from the API: `replace` the whole set, or `merge` into the current one (same kind/namespace/name replaces). */
  applyText (text: string, mode: 'replace' | 'merge', file = '<body>'): Promise<Generation> {
    if (this.store !== undefined) return this.serial(async () => await this.write([{ file, text }], mode, 'api'))
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
      if (text === undefined && this.store !== undefined) inputs = (await this.store.list()).inputs
      else if (text === undefined) ({ inputs, problems: io } = await this.readInputs())
      else inputs = mode === 'replace' ? [{ file, text }] : [...this.current.inputs, { file, text }]
      const r = await this.build(inputs, io)
      return { ok: !hasErrors(r.problems), problems: r.problems }
    })
  }

  /**
   * Go back to the previous kept generation, or to the one named by `to` (it becomes a new
   * generation number). In store mode `to` is a store revision (default: the previous kept
   * generation's), and the rollback is written to the store like any change.
   */
  rollback (to?: number): Promise<Generation> {
    const none = (message: string): ConfigError => new ConfigError([{ severity: 'Error', code: Codes.NoRollback, message, file: '-', line: 1, column: 1 }])
    const store = this.store
    if (store !== undefined) {
      return this.serial(async () => {
        const target = to ?? this.gens[this.gens.length - 2]?.revision
        if (target === undefined || target <= 0) throw none('no previous revision to roll back to (name one: ?revision=N)')
        let then: StoreSnapshot
        try { then = await store.listAt(target) } catch (err) { throw none(`revision ${target} cannot be read: ${(err as Error).message.split('\n')[0]}`) }
        // Registered endpoints (keys under a lease) are their registrants' business, then and now.
        const inputs = then.inputs.filter(i => then.keys.get(i.file)?.lease === '0')
        return await this.write(inputs, 'replace', 'rollback')
      })
    }
    if (to !== undefined) {
      return this.serial(async () => {
        const g = this.gens.find(x => x.generation === to)
        if (g === undefined) throw none(`generation ${to} is not kept (kept: ${this.gens.map(x => x.generation).join(', ')})`)
        return await this.applyInputs(g.inputs, 'rollback', [], false, g === this.gens[this.gens.length - 2])
      })
    }
    return this.serial(async () => {
      if (this.gens.length < 2) throw none('no previous generation to roll back to')
      // The kept generations change only once the rollback is accepted: while it is checked
      // (off the event loop, for a large configuration) `current` is still the running one.
      return await this.applyInputs(this.gens[this.gens.length - 2].inputs, 'rollback', [], false, true)
    })
  }

  private async readInputs (): Promise<{ inputs: LoadInput[]; problems: Problem[] }> {
    if (Array.isArray(this.opts.config)) return await readConfigInputs(this.opts.config as string[])
    if (this.store !== undefined) return { inputs: (await this.store.list()).inputs, problems: [] }
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
    const c = compile(loaded.set, this.compileOptions(this.counter + 1))
    problems = [...problems, ...c.problems.map(p => this.opts.strict === true && p.severity === 'Warning' ? { ...p, severity: 'Error' as const } : p)]
    // The placeholder a store-mode replica starts on fixes nothing: its first real snapshot
    // is checked as a first load.
    const current = this.synced ? this.gens[this.gens.length - 1]?.snapshot : undefined
    problems.push(...(this.opts.check?.(c.snapshot, current) ?? []))
    return { set: loaded.set, snapshot: c.snapshot, problems: sortProblems(problems) }
  }

  private compileOptions (generation: number): Parameters<typeof compile>[1] {
    return {
      generation, meshNamespace: this.opts.meshNamespace, now: this.opts.now,
      ...(this.opts.gatewayWorkload !== undefined ? { gatewayWorkload: this.opts.gatewayWorkload } : {}),
      ...(this.opts.credentials !== undefined ? { credentials: this.opts.credentials } : {})
    }
  }

  private now (): number {
    return (this.opts.now ?? Date.now)()
  }

  /** List, apply and watch the store; retried with backoff until it answers. */
  private async follow (store: ConfigStore): Promise<void> {
    for (let delay = 200; !this.stopped; delay = Math.min(delay * 2, 3000)) {
      let first: StoreSnapshot
      try { first = await store.list() } catch {
        await new Promise(resolve => setTimeout(resolve, delay).unref())
        continue
      }
      const onSnapshot = (s: StoreSnapshot): void => { void this.applySnapshot(s).catch(() => {}) }
      onSnapshot(first)
      store.watch(first, onSnapshot)
      return
    }
  }

  /**
   * Apply one store revision, in revision order: validated and compiled exactly as files are;
   * refused as a whole (the running snapshot stays, the refusal is recorded) when it has errors.
   */
  private applySnapshot (s: StoreSnapshot): Promise<void> {
    if (s.revision > this.received) this.received = s.revision
    if (s.revision >= this.latest.revision) this.latest = s
    const run = this.applyChain.then(async () => {
      const running = this.gens[this.gens.length - 1]?.revision ?? 0
      if (s.revision <= running && this.synced) return
      try {
        const gen = await this.applyInputs(s.inputs, 'etcd', [], false, false, s.revision)
        if (this.gens[0]?.generation === 0) this.gens.shift()
        void gen
        this.firstSync?.()
      } catch (err) {
        if (err instanceof ConfigError && this.lastRejection !== undefined) { this.lastRejection.revision = s.revision; this.refused = Math.max(this.refused, s.revision) }
        throw err
      } finally {
        this.processed = Math.max(this.processed, s.revision)
        const ready = this.waiters.filter(w => w.revision <= s.revision)
        this.waiters = this.waiters.filter(w => w.revision > s.revision)
        for (const w of ready) w.done()
      }
    })
    this.applyChain = run.catch(() => {})
    return run
  }

  /**
   * A change in store mode: validate the configuration it leads to (the stored resources it
   * does not replace, plus its inputs, so problems name the caller's file and line), then write
   * it in one transaction based on the newest revision this replica received (a refused
   * revision included, so that a change can repair it), and wait until the new revision has
   * come back through the watch and runs here.
   */
  private async write (inputs: LoadInput[], mode: 'replace' | 'merge', source: ConfigSource): Promise<Generation> {
    const store = this.store!
    if (this.latest.revision === 0) throw new ConfigError([{ severity: 'Error', code: Codes.Io, message: this.notSyncedReason ?? 'not synced with etcd', file: store.url, line: 1, column: 1 }])
    const { revision: base, keys } = this.latest
    const split = splitResources(inputs)
    const desired = desiredKeys(store.prefix, split.resources)
    const change = diffKeys(keys, desired, mode)
    const kept = [...keys].filter(([k, v]) => !desired.has(k) && (mode === 'merge' || v.lease !== '0')).map(([k]) => k).sort()
    const r = await this.build([...kept.map(k => ({ file: k, text: keys.get(k)!.value })), ...inputs], split.problems)
    if (hasErrors(r.problems)) {
      this.lastRejection = { at: this.now(), source, problems: r.problems }
      this.reloadFailures++
      throw new ConfigError(r.problems)
    }
    if (change.puts.length === 0 && change.deletes.length === 0) return this.current
    const revision = await store.commit(base, change)
    // The watch may have brought the revision back before the commit's answer arrived.
    if (this.processed < revision) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`written at revision ${revision}, but it has not come back through the watch within ${(this.opts.writeApplyMs ?? 10_000) / 1000} s`)), this.opts.writeApplyMs ?? 10_000)
        this.waiters.push({ revision, done: () => { clearTimeout(timer); resolve() } })
      })
    }
    const g = this.current
    if ((g.revision ?? 0) < revision) throw new ConfigError(this.lastRejection?.problems ?? [])
    return g
  }

  /**
   * Build and, when there is no error, install. `compact`: drop merged API bodies a later
   * input redefines entirely. `rollback`: the new generation replaces the top two (the one
   * rolled back from, and the one rolled back to, whose inputs it has).
   */
  private async applyInputs (inputs: LoadInput[], source: ConfigSource, io: Problem[], compact = false, rollback = false, revision?: number): Promise<Generation> {
    const r = await this.build(inputs, io, compact)
    const now = this.now()
    if (hasErrors(r.problems) || r.snapshot === undefined || r.set === undefined) {
      this.lastRejection = { at: now, source, problems: r.problems, ...(revision !== undefined ? { revision } : {}) }
      if (this.gens.length > 0) this.reloadFailures++
      throw new ConfigError(r.problems)
    }
    this.counter++
    const gen: Generation = { generation: this.counter, loadedAt: now, source, inputs: r.inputs, set: r.set, snapshot: r.snapshot, problems: r.problems }
    if (revision !== undefined) gen.revision = revision
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
