import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { compile } from '../src/compile/compile.js'
import type { Snapshot } from '../src/compile/snapshot.js'
import { loadConfig, type LoadInput } from '../src/config/load.js'
import { type Problem, hasErrors, sortProblems } from '../src/config/problem.js'
import { RuntimeState } from '../src/runtime/state.js'
import { SnapshotStore } from '../src/runtime/store.js'
import { type AccessLogTarget, createAccessLogWriter } from './access-log.js'
import { readConfigInputs } from './config-files.js'
import { createListener } from './proxy.js'
import { Forwarder } from './forwarder.js'
import { HealthChecker } from './health.js'
import { ClusterPools } from './pools.js'

/** Thrown when the configuration has errors: carries every problem. */
export class ConfigError extends Error {
  constructor (public readonly problems: Problem[]) {
    super(`configuration has ${problems.filter(p => p.severity === 'Error').length} error(s)`)
    this.name = 'ConfigError'
  }
}

export interface GatewayOptions {
  /** Config files or directories (read from disk), or already-read inputs. */
  config: readonly string[] | { inputs: LoadInput[] }
  strict?: boolean
  /** Address every listener binds to. Default 0.0.0.0. */
  host?: string
  /** Mesh listener port. Default 15001; 0 picks a free port; null disables the mesh listener. */
  meshPort?: number | null
  /** Bind port per Gateway server port (e.g. `{ 8080: 0 }` in tests). Default: the server port. */
  portMap?: Record<number, number>
  meshNamespace?: string
  accessLog?: AccessLogTarget
  random?: () => number
  now?: () => number
  /** Called with warnings after a successful load. */
  onProblems?: (problems: Problem[]) => void
}

export interface BoundListener {
  name: string
  kind: 'gateway' | 'mesh'
  configPort: number
  host: string
  port: number
  url: string
}

export interface RunningGateway {
  listeners: BoundListener[]
  store: SnapshotStore
  runtime: RuntimeState
  /** Problems (warnings) of the loaded configuration. */
  problems: Problem[]
  health: HealthChecker
  pools: ClusterPools
  /**
   * Re-read the configuration (or load the given one) and swap it in atomically. On any
   * error the running snapshot stays and ConfigError is thrown with every problem.
   */
  reload: (config?: GatewayOptions['config']) => Promise<{ snapshot: Snapshot; problems: Problem[] }>
  close: () => Promise<void>
}

/** Read, validate and compile a configuration. Throws ConfigError listing every problem. */
export async function loadSnapshot (
  config: GatewayOptions['config'],
  opts: { strict?: boolean; generation?: number; meshNamespace?: string; now?: () => number } = {}
): Promise<{ snapshot: Snapshot; problems: Problem[] }> {
  let inputs: LoadInput[]
  let ioProblems: Problem[] = []
  if (Array.isArray(config)) {
    const read = await readConfigInputs(config)
    inputs = read.inputs
    ioProblems = read.problems
  } else {
    inputs = (config as { inputs: LoadInput[] }).inputs
  }
  const loaded = loadConfig(inputs, { strict: opts.strict })
  const problems = [...ioProblems, ...loaded.problems]
  if (hasErrors(problems)) throw new ConfigError(sortProblems(problems))
  const compiled = compile(loaded.set, { generation: opts.generation, meshNamespace: opts.meshNamespace, now: opts.now })
  const all = sortProblems([...problems, ...compiled.problems.map(p => opts.strict === true && p.severity === 'Warning' ? { ...p, severity: 'Error' as const } : p)])
  if (hasErrors(all)) throw new ConfigError(all)
  return { snapshot: compiled.snapshot, problems: all }
}

/**
 * Start meshgate: load the configuration, then one Fastify listener per Gateway server port
 * and the mesh listener. All listeners share one snapshot store, one runtime state and one
 * undici Agent (a keep-alive pool per endpoint origin).
 */
export async function startGateway (opts: GatewayOptions): Promise<RunningGateway> {
  const { snapshot, problems } = await loadSnapshot(opts.config, opts)
  opts.onProblems?.(problems)
  const store = new SnapshotStore(snapshot)
  const runtime = new RuntimeState(snapshot, opts.now)
  const pools = new ClusterPools()
  const health = new HealthChecker(runtime)
  runtime.onRemoved(names => pools.release(names))
  store.onSwap(next => { runtime.reconcile(next); health.sync() })
  health.sync()
  const forwarder = new Forwarder(runtime, pools, opts.random ?? Math.random)
  const accessLog = createAccessLogWriter(opts.accessLog ?? 'stdout')
  const host = opts.host ?? '0.0.0.0'
  const apps: Array<{ app: FastifyInstance; name: string; kind: 'gateway' | 'mesh'; configPort: number; bindPort: number }> = []
  const common = { store, forwarder, accessLog, random: opts.random, now: opts.now }
  for (const l of snapshot.gateways) {
    apps.push({ app: await createListener({ ...common, kind: 'gateway', configPort: l.port }), name: l.name, kind: 'gateway', configPort: l.port, bindPort: opts.portMap?.[l.port] ?? l.port })
  }
  if (opts.meshPort !== null) {
    apps.push({ app: await createListener({ ...common, kind: 'mesh', configPort: 0 }), name: 'mesh', kind: 'mesh', configPort: 0, bindPort: opts.meshPort ?? 15001 })
  }
  const listeners: BoundListener[] = []
  try {
    for (const a of apps) {
      await a.app.listen({ host, port: a.bindPort })
      const addr = a.app.server.address() as AddressInfo
      const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host
      listeners.push({ name: a.name, kind: a.kind, configPort: a.configPort, host, port: addr.port, url: `http://${shown.includes(':') ? `[${shown}]` : shown}:${addr.port}` })
    }
  } catch (err) {
    await Promise.allSettled(apps.map(a => a.app.close()))
    health.close()
    await pools.close()
    throw err
  }
  return {
    listeners,
    store,
    runtime,
    problems,
    health,
    pools,
    reload: async (config = opts.config) => {
      const next = await loadSnapshot(config, { ...opts, generation: store.current.generation + 1 })
      const ports = (s: Snapshot): string => s.gateways.map(g => g.port).join(',')
      if (ports(next.snapshot) !== ports(store.current)) {
        throw new ConfigError([{ severity: 'Error', code: 'MG0007', message: `the set of Gateway ports changed (${ports(store.current)} → ${ports(next.snapshot)}); listeners are fixed until restart`, file: '-', line: 1, column: 1 }])
      }
      store.swap(next.snapshot)
      return next
    },
    close: async () => {
      health.close()
      await Promise.allSettled(apps.map(a => a.app.close()))
      await pools.close()
      await accessLog.close()
    }
  }
}
