import type { Snapshot } from '../compile/snapshot.js'

/**
 * Holds the current snapshot. A swap is one reference assignment: a request reads `current`
 * once and keeps that snapshot until it ends, so a reload never changes a request half-way.
 */
export class SnapshotStore {
  private snapshot: Snapshot
  private readonly listeners: Array<(next: Snapshot, prev: Snapshot) => void> = []

  constructor (initial: Snapshot) {
    this.snapshot = initial
  }

  get current (): Snapshot {
    return this.snapshot
  }

  /** Install a new snapshot and tell subscribers (runtime-state reconciliation, listeners). */
  swap (next: Snapshot): void {
    const prev = this.snapshot
    this.snapshot = next
    for (const fn of this.listeners) fn(next, prev)
  }

  onSwap (fn: (next: Snapshot, prev: Snapshot) => void): void {
    this.listeners.push(fn)
  }
}
