import type { LoadInput } from './load.js'
import type { KeyChange, StoredKey } from './etcd-layout.js'

// Where a configuration is kept and how changes to it are committed. Files (the default) are
// read by the config manager itself; a store (etcd now, a Kubernetes API later) implements
// ConfigStore. Types only: the implementations live in plugins/config-source/.

/** One consistent state of a store: every key at one revision. */
export interface StoreSnapshot {
  revision: number
  /** Resource keys and values (keys outside the layout excluded). */
  keys: Map<string, StoredKey>
  /** The same, as loader inputs in load order. */
  inputs: LoadInput[]
}

/** How the replica's view of the store is doing. */
export type WatchState = 'connecting' | 'connected' | 'lagging' | 'disconnected'

export interface StoreStatus {
  /** `etcd://…/PREFIX`, for display. */
  url: string
  state: WatchState
  /** Since when the state has been what it is (ms since the epoch). */
  since: number
  /** The newest revision the store is known to be at (from any answer of the store). */
  seenRevision: number
  /** Why it is not connected (the last error), when it is not. */
  reason?: string
}

/**
 * A write refused because the store moved past the revision it was based on. `currentRevision`
 * is the revision of the newest change of the configuration: read it again (it is the revision
 * a replica runs once it has applied that change) and retry.
 */
export class ConflictError extends Error {
  /** HTTP status of the refusal (409 Conflict). */
  readonly statusCode = 409
  constructor (public readonly baseRevision: number, public readonly currentRevision: number) {
    super(`the configuration changed since revision ${baseRevision} (it is now at revision ${currentRevision}): read it again and retry`)
    this.name = 'ConflictError'
  }
}

export interface ConfigStore {
  /** Display form of the location (no credentials). */
  readonly url: string
  /** Key prefix of the configuration. */
  readonly prefix: string
  /** Everything at the newest revision. */
  list: () => Promise<StoreSnapshot>
  /** Everything as it was at an earlier revision (throws when that revision was compacted). */
  listAt: (revision: number) => Promise<StoreSnapshot>
  /**
   * Start watching from `snapshot.revision + 1`; `onSnapshot` gets every later consistent state
   * in order (one call per batch of revisions received together, never half a transaction).
   * After a compaction the store re-lists and delivers the full state.
   */
  watch: (from: StoreSnapshot, onSnapshot: (s: StoreSnapshot) => void) => void
  /**
   * Write `change` in one transaction, guarded by `baseRevision`: when anything was written by
   * meshgate after it, nothing is written and ConflictError is thrown. Returns the new revision.
   */
  commit: (baseRevision: number, change: KeyChange) => Promise<number>
  status: () => StoreStatus
  close: () => Promise<void>
}
