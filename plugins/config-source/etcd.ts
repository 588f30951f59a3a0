import { readFileSync } from 'node:fs'
import { Etcd3, type IOptions, type IKeyValue, type IWatchResponse, type Watcher } from 'etcd3'
import { type EtcdLocation, type KeyChange, type StoredKey, headKey, inputsOfKeys, parseEtcdUrl, parseResourceKey } from '../../src/config/etcd-layout.js'
import { type ConfigStore, ConflictError, type StoreSnapshot, type StoreStatus, type WatchState } from '../../src/config/source.js'

/** TLS and authentication, named after etcdctl's flags (`--cacert`, `--cert`, `--key`, `--user`). */
export interface EtcdAuthOptions {
  /** CA bundle that signed the members' certificates (PEM file). */
  cacert?: string
  /** Client certificate (PEM file), with `key`. */
  cert?: string
  key?: string
  /** `USER` or `USER:PASSWORD`. */
  user?: string
  /** Used when `user` carries no password (MESHGATE_ETCD_PASSWORD). */
  password?: string
  /** Deadline of one unary call (ms). Default 5000. */
  callTimeoutMs?: number
}

/** etcd3 client options for a location: every member, TLS files read now, a deadline on unary calls. */
export function clientOptions (loc: EtcdLocation, auth: EtcdAuthOptions = {}): IOptions {
  const tls = loc.tls || auth.cacert !== undefined || auth.cert !== undefined
  const opts: IOptions = {
    hosts: loc.hosts.map(h => `${tls ? 'https' : 'http'}://${h}`),
    dialTimeout: 3000,
    // Each gRPC channel gets its own connection: a channel closed after a failed call (etcd3
    // resets a host's services then) or a watch restarted after a stall never picks up the
    // connection that stalled.
    grpcOptions: { 'grpc.use_local_subchannel_pool': 1 },
    // Streams (watch, lease keep-alive) live as long as they must; a unary call that hangs on a
    // member that stopped answering is abandoned and retried on another member.
    defaultCallOptions: ctx => ctx.isStream ? {} : { deadline: Date.now() + (auth.callTimeoutMs ?? 5000) }
  }
  if (tls && auth.cacert !== undefined) {
    opts.credentials = {
      rootCertificate: readFileSync(auth.cacert),
      ...(auth.cert !== undefined ? { certChain: readFileSync(auth.cert) } : {}),
      ...(auth.key !== undefined ? { privateKey: readFileSync(auth.key) } : {})
    }
  }
  if (auth.user !== undefined && auth.user !== '') {
    const colon = auth.user.indexOf(':')
    const username = colon < 0 ? auth.user : auth.user.slice(0, colon)
    const password = colon < 0 ? auth.password ?? '' : auth.user.slice(colon + 1)
    opts.auth = { username, password }
  }
  return opts
}

/** A client for an `etcd://` URL; throws with the reason when the URL is not one. */
export function connectEtcd (url: string, auth: EtcdAuthOptions = {}): { client: Etcd3; location: EtcdLocation; options: IOptions } {
  const loc = parseEtcdUrl(url)
  if (typeof loc === 'string') throw new Error(loc)
  const options = clientOptions(loc, auth)
  return { client: new Etcd3(options), location: loc, options }
}

/** Where the store says what it does about its watch (pino's signature). */
export interface StoreLogger {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
}

/** How a following store checks that its watch keeps up with etcd. */
export interface LagOptions {
  /** How often the watch is compared with etcd (ms); 0 turns the check off. Default 2000. */
  lagCheckMs?: number
  /**
   * How long the watch may stay behind etcd before the store reports `lagging`, says so in
   * the log and re-reads the prefix (ms). Default 10000: far above the few milliseconds a
   * change normally takes to arrive.
   */
  lagBoundMs?: number
  log?: StoreLogger
}

/** `etcd://h1:p1,h2:p2/prefix`: the URL as shown (never credentials: they are flags). */
export function displayUrl (loc: EtcdLocation): string {
  return `${loc.tls ? 'etcds' : 'etcd'}://${loc.hosts.join(',')}${loc.prefix}`
}

function messageOf (err: unknown): string {
  return (err as Error)?.message?.split('\n')[0] ?? String(err)
}

/**
 * The configuration kept in etcd (docs/scale-out.md). `list` reads the prefix at one revision;
 * `watch` follows it, delivering one consistent state per batch of revisions received (a
 * transaction is never split across batches); `commit` writes a change in one transaction
 * guarded by the head key's revision.
 *
 * While it watches, the store compares what it has delivered with etcd every `lagCheckMs`, by
 * a keys-only read of the prefix (keys and their modification revisions, no values). A watch
 * still behind after `lagBoundMs` (its stream stalled on a member that stopped answering or
 * lost its cluster, for instance) is `lagging`: the store logs it, drops that watch and its
 * connections, re-reads the prefix at the current revision and watches again from there.
 */
export class EtcdStore implements ConfigStore {
  readonly url: string
  readonly prefix: string
  private state: WatchState = 'connecting'
  private since: number
  private reason: string | undefined
  private seen = 0
  private watcher: Watcher | undefined
  /** The client the watch runs on: its own, so that a stalled watch can be dropped with its connections. */
  private watchClient: Etcd3 | undefined
  /** What the watch has delivered: the keys at revision `delivered`. */
  private deliveredKeys = new Map<string, StoredKey>()
  private delivered = 0
  /** Since when a check has found etcd ahead of what was delivered (ms since the epoch). */
  private behindSince: number | undefined
  private lagTimer: NodeJS.Timeout | undefined
  private checking = false
  private recovering = false
  /** After a re-list for lag: `lagging` holds until a check finds the watch caught up. */
  private lagPending = false
  private closed = false
  private readonly log: StoreLogger
  /** Re-lists done because the watch could not resume (compaction) or fell behind. */
  relists = 0

  constructor (readonly client: Etcd3, location: EtcdLocation, private readonly now: () => number = Date.now, private readonly options?: IOptions, private readonly lag: LagOptions = {}) {
    this.url = displayUrl(location)
    this.prefix = location.prefix
    this.since = now()
    this.log = lag.log ?? { info: () => {}, warn: () => {} }
  }

  static connect (url: string, auth: EtcdAuthOptions = {}, lag: LagOptions = {}): EtcdStore {
    const { client, location, options } = connectEtcd(url, auth)
    return new EtcdStore(client, location, Date.now, options, lag)
  }

  async list (): Promise<StoreSnapshot> {
    return await this.listAt(0)
  }

  async listAt (revision: number): Promise<StoreSnapshot> {
    let q = this.client.getAll().prefix(this.prefix + '/')
    if (revision > 0) q = q.revision(String(revision))
    try {
      const res = await q.exec()
      const keys = new Map<string, StoredKey>()
      for (const kv of res.kvs) this.take(keys, kv)
      const rev = revision > 0 ? revision : Number(res.header.revision)
      if (rev > this.seen) this.seen = rev
      if (this.state !== 'connected' && this.watcher === undefined && !this.lagPending) this.setState('connected')
      return { revision: rev, keys, inputs: inputsOfKeys(this.prefix, keys) }
    } catch (err) {
      if (this.watcher === undefined) this.setState('disconnected', messageOf(err))
      throw err
    }
  }

  watch (from: StoreSnapshot, onSnapshot: (s: StoreSnapshot) => void): void {
    const keys = new Map(from.keys)
    let last = from.revision
    this.deliveredKeys = keys
    this.delivered = last
    this.behindSince = undefined
    this.watchClient ??= this.options !== undefined ? new Etcd3(this.options) : this.client
    const w = this.watchClient.watch().prefix(this.prefix + '/').startRevision(String(last + 1)).watcher()
    this.watcher = w
    this.startLagCheck(onSnapshot)
    // etcd3 resumes a watch after a reconnect from the revision after the newest header it saw,
    // which can be past events still on their way; resume from the last event applied instead,
    // so an outage never skips a change.
    const resumeFrom = (): void => { w.request.start_revision = String(last + 1) }
    w.on('connected', () => { resumeFrom(); this.setState(this.lagPending ? 'lagging' : 'connected') })
    w.on('disconnected', (err: Error) => { this.setState('disconnected', messageOf(err)) })
    w.on('data', (res: IWatchResponse) => {
      if (res.events.length === 0) {
        // A progress notification: every event up to header.revision has been sent.
        const rev = Number(res.header.revision)
        if (rev > this.seen) this.seen = rev
        return
      }
      let rev = last
      for (const ev of res.events) {
        const key = ev.kv.key.toString('utf8')
        rev = Math.max(rev, Number(ev.kv.mod_revision))
        if (parseResourceKey(this.prefix, key) === undefined) continue
        if (ev.type === 'Delete') keys.delete(key)
        else keys.set(key, { value: ev.kv.value.toString('utf8'), lease: String(ev.kv.lease ?? '0') })
      }
      last = rev
      resumeFrom()
      if (rev > this.seen) this.seen = rev
      if (this.watcher === w) this.delivered = rev
      onSnapshot({ revision: rev, keys: new Map(keys), inputs: inputsOfKeys(this.prefix, keys) })
    })
    // The watch was cancelled by etcd: its start revision was compacted away while it was
    // disconnected. Re-list (one consistent state) and watch again from there.
    w.on('error', (err: Error) => {
      if (this.closed || this.watcher !== w) return
      this.watcher = undefined
      void w.cancel().catch(() => {})
      this.log.warn({ revision: last, err: messageOf(err) }, 'etcd watch cancelled (its resume revision was compacted away): re-reading the whole prefix at the current revision')
      void this.relist(onSnapshot, 'compaction')
    })
  }

  /** Every `lagCheckMs` while watching: is etcd ahead of what the watch delivered, and for how long? */
  private startLagCheck (onSnapshot: (s: StoreSnapshot) => void): void {
    const every = this.lag.lagCheckMs ?? 2000
    if (every <= 0 || this.lagTimer !== undefined) return
    this.lagTimer = setInterval(() => {
      if (this.checking || this.recovering || this.closed || this.watcher === undefined) return
      this.checking = true
      void this.checkLag(onSnapshot).finally(() => { this.checking = false })
    }, every)
    this.lagTimer.unref()
  }

  private async checkLag (onSnapshot: (s: StoreSnapshot) => void): Promise<void> {
    const start = Buffer.from(this.prefix + '/')
    // The end of the prefix's range: the prefix with its last byte ('/') incremented.
    const end = Buffer.from(start)
    end[end.length - 1]++
    let res
    try {
      res = await this.client.kv.range({ key: start, range_end: end, keys_only: true }, { deadline: Date.now() + Math.max(1000, this.lag.lagCheckMs ?? 2000) })
    } catch {
      return // etcd unreachable: the watch's own state says so
    }
    const delivered = this.delivered
    const have = this.deliveredKeys
    let ahead = 0
    let present = 0
    for (const kv of res.kvs) {
      const rev = Number(kv.mod_revision)
      if (rev > delivered) ahead = Math.max(ahead, rev)
      if (have.has(kv.key.toString('utf8'))) present++
    }
    // A key delivered but gone from etcd: a deletion the watch has not brought (unless the
    // watch has moved past the revision read meanwhile).
    if (ahead === 0 && present < have.size && Number(res.header.revision) > delivered) ahead = Number(res.header.revision)
    if (Number(res.header.revision) > this.seen) this.seen = Number(res.header.revision)
    if (ahead === 0) {
      this.behindSince = undefined
      if (this.lagPending && this.watcher !== undefined) {
        this.lagPending = false
        this.setState('connected')
        this.log.info({ revision: delivered }, 'etcd watch in sync again')
      }
      return
    }
    const now = this.now()
    this.behindSince ??= now
    const behindMs = now - this.behindSince
    if (behindMs < (this.lag.lagBoundMs ?? 10_000) || this.watcher === undefined) return
    // Behind for longer than the bound: the watch will not catch up by itself.
    const w = this.watcher
    this.watcher = undefined
    this.recovering = true
    this.lagPending = true
    this.setState('lagging', `the watch is at revision ${delivered}, etcd's configuration at revision ${ahead}, for ${behindMs} ms`)
    this.log.warn({ revision: delivered, etcdRevision: ahead, behindMs }, 'etcd watch behind etcd for longer than the bound: dropping it and re-reading the prefix at the current revision')
    // Detached first, so that etcd3 does not try to re-establish it once its client is closed.
    w.removeAllListeners()
    w.on('error', () => {})
    void w.cancel().catch(() => {})
    const old = this.watchClient
    this.watchClient = undefined
    if (old !== undefined && old !== this.client) old.close()
    try { await this.relist(onSnapshot, 'lag') } finally { this.recovering = false }
  }

  private async relist (onSnapshot: (s: StoreSnapshot) => void, why: 'compaction' | 'lag'): Promise<void> {
    for (let delay = 100; !this.closed; delay = Math.min(delay * 2, 2000)) {
      try {
        const s = await this.list()
        this.relists++
        onSnapshot(s)
        this.watch(s, onSnapshot)
        this.log.info({ revision: s.revision, why }, 'etcd prefix re-read: watching again from its revision')
        return
      } catch {
        await new Promise(resolve => setTimeout(resolve, delay).unref())
      }
    }
  }

  async commit (baseRevision: number, change: KeyChange): Promise<number> {
    const head = headKey(this.prefix)
    const ops = [
      ...change.puts.map(([k, v]) => this.client.put(k).value(v)),
      ...change.deletes.map(k => this.client.delete().key(k)),
      this.client.put(head).value(JSON.stringify({ base: baseRevision, puts: change.puts.length, deletes: change.deletes.length }))
    ]
    // On a conflict the same transaction reads the newest key of the prefix: its modification
    // revision is the revision the configuration is at now, which the refusal reports.
    const newest = this.client.getAll().prefix(this.prefix + '/').sort('Mod', 'Descend').limit(1)
    const res = await this.client.if(head, 'Mod', '<', baseRevision + 1).then(...ops).else(newest).commit()
    const rev = Number(res.header.revision)
    if (!res.succeeded) {
      const kv = res.responses[0]?.response_range?.kvs[0]
      throw new ConflictError(baseRevision, kv !== undefined ? Number(kv.mod_revision) : rev)
    }
    return rev
  }

  status (): StoreStatus {
    return { url: this.url, state: this.state, since: this.since, seenRevision: this.seen, ...(this.reason !== undefined ? { reason: this.reason } : {}) }
  }

  async close (): Promise<void> {
    this.closed = true
    clearInterval(this.lagTimer)
    const w = this.watcher
    this.watcher = undefined
    if (w !== undefined) await Promise.race([w.cancel().catch(() => {}), new Promise(resolve => setTimeout(resolve, 500).unref())])
    if (this.watchClient !== undefined && this.watchClient !== this.client) this.watchClient.close()
    this.client.close()
  }

  private take (keys: Map<string, StoredKey>, kv: IKeyValue): void {
    const key = kv.key.toString('utf8')
    if (parseResourceKey(this.prefix, key) !== undefined) keys.set(key, { value: kv.value.toString('utf8'), lease: String(kv.lease ?? '0') })
  }

  private setState (state: WatchState, reason?: string): void {
    if (state !== this.state) { this.state = state; this.since = this.now() }
    this.reason = state === 'connected' ? undefined : reason ?? this.reason
  }
}
