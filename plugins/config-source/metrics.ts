import { Counter, Gauge, type Registry } from 'prom-client'
import type { SyncStatus } from '../config-manager.js'

const STATES = ['connecting', 'connected', 'lagging', 'disconnected'] as const

/**
 * The store-mode metrics, read at scrape time: the revision running, the newest refused one,
 * the watch state (one series per state, 1 for the current one) and since when it holds, and
 * the re-lists after a compaction. Refusals also count in meshgate_config_reload_failures_total.
 */
export function registerSyncMetrics (registry: Registry, status: () => SyncStatus | undefined): void {
  const read = (fn: (s: SyncStatus) => number) => function (this: Gauge) { const s = status(); if (s !== undefined) this.set(fn(s)) }
  new Gauge({ name: 'meshgate_config_revision', help: 'The etcd revision of the running configuration (0 before the first sync).', registers: [registry], collect: read(s => s.revision) })
  new Gauge({ name: 'meshgate_config_refused_revision', help: 'The newest etcd revision refused by validation, when newer than the running one; else 0.', registers: [registry], collect: read(s => s.refusedRevision ?? 0) })
  new Gauge({ name: 'meshgate_config_synced', help: '1 once a configuration from etcd runs (the replica is ready).', registers: [registry], collect: read(s => s.synced ? 1 : 0) })
  new Gauge({ name: 'meshgate_config_watch_state_since_seconds', help: 'When the current watch state began (Unix time, seconds).', registers: [registry], collect: read(s => Date.parse(s.since) / 1000) })
  new Gauge({
    name: 'meshgate_config_watch_state', help: 'The etcd watch state: 1 for the current state, 0 for the others.', labelNames: ['state'], registers: [registry],
    collect () {
      const s = status()
      if (s !== undefined) for (const st of STATES) this.set({ state: st }, s.watch === st ? 1 : 0)
    }
  })
  new Counter({
    name: 'meshgate_config_relists_total', help: 'Full re-reads of the etcd prefix after the watch could not resume (compaction).', registers: [registry],
    collect () { const s = status(); if (s !== undefined) { this.reset(); this.inc(s.relists) } }
  })
}
