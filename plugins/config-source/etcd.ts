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
export function connectEtcd (url: string, auth: EtcdAuthOptions = {}): { client: Etcd3; location: EtcdLocation } {
  const loc = parseEtcdUrl(url)
  if (typeof loc === 'string') throw new Error(loc)
  return { client: new Etcd3(clientOptions(loc, auth)), location: loc }
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
 */
export class EtcdStore implements ConfigStore {
  readonly url: string
  readonly prefix: string
  private state: WatchState = 'connecting'
  private since: number
  private reason: string | undefined
  private seen = 0
  private watcher: Watcher | undefined
  private closed = false
  /** Re-lists done because the watch could not resume (compaction). */
  relists = 0

  constructor (readonly client: Etcd3, location: EtcdLocation, private readonly now: () => number = Date.now) {
    this.url = displayUrl(location)
    this.prefix = location.prefix
    this.since = now()
  }

  static connect (url: string, auth: EtcdAuthOptions = {}): EtcdStore {
    const { client, location } = connectEtcd(url, auth)
    return new EtcdStore(client, location)
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
      if (this.state !== 'connected' && this.watcher === undefined) this.setState('connected')
      return { revision: rev, keys, inputs: inputsOfKeys(this.prefix, keys) }
    } catch (err) {
      if (this.watcher === undefined) this.setState('disconnected', messageOf(err))
      throw err
    }
  }

  watch (from: StoreSnapshot, onSnapshot: (s: StoreSnapshot) => void): void {
    const keys = new Map(from.keys)
    let last = from.revision
    const w = this.client.watch().prefix(this.prefix + '/').startRevision(String(last + 1)).watcher()
    this.watcher = w
    // etcd3 resumes a watch after a reconnect from the revision after the newest header it saw,
    // which can be past events still on their way; resume from the last event applied instead,
    // so an outage never skips a change.
    const resumeFrom = (): void => { w.request.start_revision = String(last + 1) }
    w.on('connected', () => { resumeFrom(); this.setState('connected') })
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
      onSnapshot({ revision: rev, keys: new Map(keys), inputs: inputsOfKeys(this.prefix, keys) })
    })
    // The watch was cancelled by etcd: its start revision was compacted away while it was
    // disconnected. Re-list (one consistent state) and watch again from there.
    w.on('error', () => {
      if (this.closed || this.watcher !== w) return
      this.watcher = undefined
      void w.cancel().catch(() => {})
      void this.relist(onSnapshot)
    })
  }

  private async relist (onSnapshot: (s: StoreSnapshot) => void): Promise<void> {
    for (let delay = 100; !this.closed; delay = Math.min(delay * 2, 2000)) {
      try {
        const s = await this.list()
        this.relists++
        onSnapshot(s)
        this.watch(s, onSnapshot)
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
    const res = await this.client.if(head, 'Mod', '<', baseRevision + 1).then(...ops).commit()
    const rev = Number(res.header.revision)
    if (!res.succeeded) throw new ConflictError(baseRevision, rev)
    return rev
  }

  status (): StoreStatus {
    return { url: this.url, state: this.state, since: this.since, seenRevision: this.seen, ...(this.reason !== undefined ? { reason: this.reason } : {}) }
  }

  async close (): Promise<void> {
    this.closed = true
    const w = this.watcher
    this.watcher = undefined
    if (w !== undefined) await Promise.race([w.cancel().catch(() => {}), new Promise(resolve => setTimeout(resolve, 500).unref())])
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
