import type { Worker } from 'node:cluster'
import { type KeyChange, type StoredKey, inputsOfKeys } from '../../src/config/etcd-layout.js'
import { type ConfigStore, ConflictError, type StoreSnapshot, type StoreStatus } from '../../src/config/source.js'

// `--workers N` with an etcd configuration (docs/scale-out.md): the primary process holds the
// one client and the one watch of etcd (StoreRelay) and hands every consistent state it receives
// to its workers; each worker follows the primary (RelayedStore) exactly as a replica follows
// etcd: the same ConfigManager store mode validates and applies each revision whole, reports
// ready after its first sync, and writes (admin API) go through the primary to etcd.

/** A snapshot on the IPC channel: the keys as entries (inputs are derived again on arrival). */
interface WireSnapshot { revision: number; keys: Array<[string, StoredKey]> }
type WireStatus = StoreStatus & { relists: number }

type Call = { op: 'list' } | { op: 'listAt'; revision: number } | { op: 'commit'; base: number; change: KeyChange }
type RelayMsg =
  | { t: 'mg:store-call'; id: number; call: Call }
  | { t: 'mg:store-reply'; id: number; status: WireStatus; ok: true; snapshot?: WireSnapshot; revision?: number }
  | { t: 'mg:store-reply'; id: number; status: WireStatus; ok: false; error: string; conflict?: { base: number; current: number } }
  | { t: 'mg:store-state'; status: WireStatus; snapshot?: WireSnapshot }

const wire = (s: StoreSnapshot): WireSnapshot => ({ revision: s.revision, keys: [...s.keys] })

interface RelayLogger { warn: (obj: object, msg: string) => void }

/** The store as the primary runs it for its workers. */
export interface RelaySource extends ConfigStore { relists: number }

/** In the primary: follow the store once and serve the workers' reads and writes. */
export class StoreRelay {
  private latest: StoreSnapshot | undefined
  private readonly workers = new Set<Worker>()
  private timer: NodeJS.Timeout | undefined
  private lastStatus = ''
  private closed = false

  constructor (private readonly store: RelaySource, private readonly log: RelayLogger, private readonly statusEveryMs = 250) {}

  /** List (retried until etcd answers), then watch; every state received goes to every worker. */
  start (): void {
    this.timer = setInterval(() => this.sendStatus(), this.statusEveryMs)
    this.timer.unref()
    void (async () => {
      for (let delay = 200; !this.closed; delay = Math.min(delay * 2, 2000)) {
        try {
          const first = await this.store.list()
          this.publish(first)
          this.store.watch(first, s => this.publish(s))
          return
        } catch (err) {
          this.sendStatus()
          this.log.warn({ err: (err as Error).message.split('\n')[0] }, 'etcd unreachable; retrying')
          await new Promise(resolve => setTimeout(resolve, delay).unref())
        }
      }
    })()
  }

  /** A forked worker: gets the newest state at once and every later one. */
  attach (w: Worker): void {
    this.workers.add(w)
    w.on('exit', () => this.workers.delete(w))
    w.on('message', (m: RelayMsg) => {
      if (m === null || typeof m !== 'object' || m.t !== 'mg:store-call') return
      void this.answer(m.id, m.call).then(reply => { if (!w.isDead()) w.send(reply) })
    })
  }

  async close (): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    await this.store.close()
  }

  private async answer (id: number, call: Call): Promise<RelayMsg> {
    // Every reply carries the watch state, so a worker that just started has it at once.
    const status = (): WireStatus => ({ ...this.store.status(), relists: this.store.relists })
    try {
      if (call.op === 'list') { const s = wire(await this.store.list()); return { t: 'mg:store-reply', id, status: status(), ok: true, snapshot: s } }
      if (call.op === 'listAt') { const s = wire(await this.store.listAt(call.revision)); return { t: 'mg:store-reply', id, status: status(), ok: true, snapshot: s } }
      const revision = await this.store.commit(call.base, call.change)
      return { t: 'mg:store-reply', id, status: status(), ok: true, revision }
    } catch (err) {
      const conflict = err instanceof ConflictError ? { base: err.baseRevision, current: err.currentRevision } : undefined
      return { t: 'mg:store-reply', id, status: status(), ok: false, error: (err as Error).message.split('\n')[0], ...(conflict !== undefined ? { conflict } : {}) }
    }
  }

  private publish (s: StoreSnapshot): void {
    if (this.latest !== undefined && s.revision < this.latest.revision) return
    this.latest = s
    const msg = this.state(s)
    for (const w of this.workers) this.send(w, msg)
  }

  private state (s: StoreSnapshot | undefined): RelayMsg {
    const status: WireStatus = { ...this.store.status(), relists: this.store.relists }
    this.lastStatus = JSON.stringify(status)
    return { t: 'mg:store-state', status, ...(s !== undefined ? { snapshot: wire(s) } : {}) }
  }

  /** The watch state as it changes (connected, lagging, disconnected…), without a snapshot. */
  private sendStatus (): void {
    const status: WireStatus = { ...this.store.status(), relists: this.store.relists }
    const text = JSON.stringify(status)
    if (text === this.lastStatus) return
    this.lastStatus = text
    for (const w of this.workers) this.send(w, { t: 'mg:store-state', status })
  }

  private send (w: Worker, msg: RelayMsg): void {
    if (!w.isDead() && w.isConnected()) w.send(msg)
  }
}

/** In a worker: the store as the primary relays it. */
export class RelayedStore implements ConfigStore {
  readonly url: string
  readonly prefix: string
  private current: WireStatus
  private newest: StoreSnapshot | undefined
  private delivered = 0
  private onSnapshot: ((s: StoreSnapshot) => void) | undefined
  private seq = 0
  private readonly waiting = new Map<number, (m: RelayMsg & { t: 'mg:store-reply' }) => void>()
  private readonly listener: (m: RelayMsg) => void

  constructor (url: string, prefix: string, private readonly proc: NodeJS.Process = process, private readonly callTimeoutMs = 30_000) {
    this.url = url
    this.prefix = prefix
    this.current = { url, state: 'connecting', since: Date.now(), seenRevision: 0, relists: 0 }
    this.listener = m => {
      if (m === null || typeof m !== 'object') return
      if (m.t === 'mg:store-reply') { this.current = m.status; this.waiting.get(m.id)?.(m) }
      if (m.t === 'mg:store-state') {
        this.current = m.status
        if (m.snapshot !== undefined) this.arrived(this.snapshot(m.snapshot))
      }
    }
    proc.on('message', this.listener)
  }

  get relists (): number { return this.current.relists }

  async list (): Promise<StoreSnapshot> { return this.snapshot((await this.call({ op: 'list' })).snapshot!) }

  async listAt (revision: number): Promise<StoreSnapshot> { return this.snapshot((await this.call({ op: 'listAt', revision })).snapshot!) }

  watch (from: StoreSnapshot, onSnapshot: (s: StoreSnapshot) => void): void {
    this.onSnapshot = onSnapshot
    this.delivered = Math.max(this.delivered, from.revision)
    if (this.newest !== undefined) this.arrived(this.newest)
  }

  async commit (baseRevision: number, change: KeyChange): Promise<number> {
    return (await this.call({ op: 'commit', base: baseRevision, change })).revision!
  }

  status (): StoreStatus {
    const { relists: _, ...status } = this.current
    return status
  }

  async close (): Promise<void> {
    this.proc.off('message', this.listener)
    this.onSnapshot = undefined
  }

  private arrived (s: StoreSnapshot): void {
    if (this.newest === undefined || s.revision >= this.newest.revision) this.newest = s
    if (this.onSnapshot === undefined || s.revision <= this.delivered) return
    this.delivered = s.revision
    this.onSnapshot(s)
  }

  private snapshot (w: WireSnapshot): StoreSnapshot {
    const keys = new Map(w.keys)
    return { revision: w.revision, keys, inputs: inputsOfKeys(this.prefix, keys) }
  }

  private async call (call: Call): Promise<RelayMsg & { t: 'mg:store-reply'; ok: true }> {
    const id = ++this.seq
    const reply = await new Promise<RelayMsg & { t: 'mg:store-reply' }>((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting.delete(id); reject(new Error(`the primary process did not answer within ${this.callTimeoutMs / 1000} s`)) }, this.callTimeoutMs)
      this.waiting.set(id, m => { clearTimeout(timer); this.waiting.delete(id); resolve(m) })
      if (this.proc.send === undefined) { clearTimeout(timer); this.waiting.delete(id); reject(new Error('not a worker process: no primary to relay etcd through')); return }
      this.proc.send({ t: 'mg:store-call', id, call } satisfies RelayMsg)
    })
    if (reply.ok) return reply
    if (reply.conflict !== undefined) throw new ConflictError(reply.conflict.base, reply.conflict.current)
    throw new Error(reply.error)
  }
}
