import { readFile, readdir, stat } from 'node:fs/promises'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'
import { type GatewayOptions, type LoadInput, type RunningGateway, readConfigInputs, startGateway } from '../index.js'
import { SERVICE_NAMES, type RunningService, type ServiceName, startService } from './bookinfo/index.js'

/** The repository root, found from this module (works from the TS sources and from dist/). */
export function repoRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 4; i++) {
    if (dir.endsWith('dist')) return dirname(dir)
    dir = dirname(dir)
    if (dir.endsWith('dist')) return dirname(dir)
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '..')
}

export interface DemoOptions {
  /** Config directory (default: the repository's gateway-config). */
  configDir?: string
  /** Scenario files: names under gateway-config/scenarios (with or without .yaml) or paths. */
  scenarios?: string[]
  /** Ingress port for the Gateway's port 8080 (default 8080; 0 = free). */
  ingressPort?: number
  /** Mesh listener port (default 15001; 0 = free). */
  meshPort?: number
  /** Start the stand-ins on free ports instead of those in local/services.yaml (tests). */
  freePorts?: boolean
  /** Start the stand-ins on consecutive ports from this one, in registry order (`--workload-port-base`). */
  workloadPortBase?: number
  accessLog?: GatewayOptions['accessLog']
  onProblems?: GatewayOptions['onProblems']
  /** Distributed tracing of the gateway (docs/tracing.md); off when absent. */
  tracing?: GatewayOptions['tracing']
}

/** One stand-in workload, `reviews-v3` style (the Kubernetes deployment name). */
export interface Workload {
  name: string
  app: ServiceName
  version: string
  address: string
  port: number
  running: boolean
  service?: RunningService
}

export interface Demo {
  gateway: RunningGateway
  ingressUrl: string
  meshUrl: string
  workloads: Map<string, Workload>
  scenarios: string[]
  /** Stop a workload (like `kubectl scale deployment reviews-v3 --replicas=0`). */
  stop: (name: string) => Promise<void>
  /** Start it again (`--replicas=1`). */
  start: (name: string) => Promise<void>
  /** Replace the active scenario files and reload routes (no scenario = base config only). */
  setScenarios: (scenarios: string[]) => Promise<void>
  close: () => Promise<void>
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

/** Resolve scenario names to files under `<configDir>/scenarios`. */
export async function scenarioFiles (configDir: string, names: string[]): Promise<string[]> {
  const out: string[] = []
  for (const n of names) {
    const candidates = [n, join(configDir, 'scenarios', n), join(configDir, 'scenarios', `${n}.yaml`)]
    let found: string | undefined
    for (const c of candidates) {
      try { if ((await stat(c)).isFile()) { found = c; break } } catch { /* try next */ }
    }
    if (found === undefined) {
      const known = (await readdir(join(configDir, 'scenarios'))).filter(f => f.endsWith('.yaml')).map(f => f.slice(0, -5))
      throw new Error(`unknown scenario "${n}"; known: ${known.join(', ')}`)
    }
    out.push(found)
  }
  return out
}

/**
 * The local Bookinfo demo: the stand-ins registered in `gateway-config/local/services.yaml`
 * started on loopback (each ServiceEntry endpoint labelled app/version is one workload), and
 * meshgate with the Bookinfo Gateway, DestinationRules and the chosen scenario files. The
 * stand-ins call each other through meshgate's mesh listener (HTTP_PROXY style).
 */
export async function startDemo (opts: DemoOptions = {}): Promise<Demo> {
  const configDir = opts.configDir ?? join(repoRoot(), 'gateway-config')
  const servicesFile = join(configDir, 'local', 'services.yaml')
  const servicesText = await readFile(servicesFile, 'utf8')
  const docs = parseAllDocuments(servicesText)
  const workloads = new Map<string, Workload>()
  for (const doc of docs) {
    const se = doc.toJS() as { kind?: string; spec?: { endpoints?: Array<{ address: string; ports?: Record<string, number>; labels?: Record<string, string> }> } } | null
    if (se?.kind !== 'ServiceEntry') continue
    se.spec?.endpoints?.forEach((ep, i) => {
      const app = ep.labels?.app as ServiceName | undefined
      const version = ep.labels?.version ?? 'v1'
      if (app === undefined || !SERVICE_NAMES.includes(app)) return
      const port = Object.values(ep.ports ?? {})[0] ?? 9080
      workloads.set(`${app}-${version}`, { name: `${app}-${version}`, app, version, address: ep.address, port, running: false })
      if (opts.freePorts === true || opts.workloadPortBase !== undefined) {
        (doc as unknown as { setIn: (p: unknown[], v: unknown) => void }).setIn(['spec', 'endpoints', i, 'ports', Object.keys(ep.ports ?? { http: 0 })[0]], -1)
      }
    })
  }
  if (opts.freePorts === true) for (const w of workloads.values()) w.port = await freePort()
  else if (opts.workloadPortBase !== undefined) {
    let next = opts.workloadPortBase
    for (const w of workloads.values()) w.port = next++
  }
  const meshPort = opts.meshPort ?? 15001
  const actualMeshPort = meshPort === 0 ? await freePort() : meshPort

  // With free or moved ports, the registry text is rewritten to the ports actually used.
  let localText = servicesText
  if (opts.freePorts === true || opts.workloadPortBase !== undefined) {
    const byApp = [...workloads.values()]
    let k = 0
    for (const doc of docs) {
      const se = doc.toJS() as { kind?: string; spec?: { endpoints?: unknown[] } } | null
      if (se?.kind !== 'ServiceEntry') continue
      ;(se.spec?.endpoints ?? []).forEach((_e, i) => {
        const w = byApp[k++]
        const d = doc as unknown as { getIn: (p: unknown[]) => unknown; setIn: (p: unknown[], v: unknown) => void }
        const ports = d.getIn(['spec', 'endpoints', i, 'ports']) as { items: Array<{ key: { value: string } }> }
        d.setIn(['spec', 'endpoints', i, 'ports', ports.items[0].key.value], w.port)
      })
    }
    localText = docs.map(d => d.toString()).join('---\n')
  }

  const proxy = { host: '127.0.0.1', port: actualMeshPort }
  const startWorkload = async (w: Workload): Promise<void> => {
    if (w.running) return
    const base = { host: w.address, port: w.port, version: w.version }
    w.service = w.app === 'productpage'
      ? await startService('productpage', { ...base, proxy })
      : w.app === 'reviews'
        ? await startService('reviews', { ...base, proxy, podname: `${w.name}-local` })
        : await startService(w.app, base)
    w.running = true
  }
  for (const w of workloads.values()) await startWorkload(w)

  let scenarios = opts.scenarios ?? []
  const inputsFor = async (names: string[]): Promise<LoadInput[]> => {
    const files = await scenarioFiles(configDir, names)
    const { inputs, problems } = await readConfigInputs([configDir, ...files])
    if (problems.length > 0) throw new Error(problems.map(p => `${p.file}: ${p.message}`).join('\n'))
    return [...inputs, { file: servicesFile, text: localText }]
  }

  let gateway: RunningGateway
  try {
    gateway = await startGateway({
      config: { inputs: await inputsFor(scenarios) },
      host: '127.0.0.1',
      portMap: { 8080: opts.ingressPort ?? 8080 },
      meshPort: actualMeshPort,
      accessLog: opts.accessLog ?? 'stdout',
      onProblems: opts.onProblems,
      ...(opts.tracing !== undefined ? { tracing: opts.tracing } : {})
    })
  } catch (err) {
    for (const w of workloads.values()) await w.service?.close()
    throw err
  }
  const ingress = gateway.listeners.find(l => l.kind === 'gateway')
  const mesh = gateway.listeners.find(l => l.kind === 'mesh')
  const get = (name: string): Workload => {
    const w = workloads.get(name)
    if (w === undefined) throw new Error(`unknown workload "${name}"; known: ${[...workloads.keys()].join(', ')}`)
    return w
  }
  return {
    gateway,
    ingressUrl: ingress?.url ?? '',
    meshUrl: mesh?.url ?? '',
    workloads,
    get scenarios () { return scenarios },
    stop: async name => {
      const w = get(name)
      if (!w.running) return
      await w.service?.close()
      w.service = undefined
      w.running = false
    },
    start: async name => { await startWorkload(get(name)) },
    setScenarios: async names => {
      await gateway.reload({ inputs: await inputsFor(names) })
      scenarios = names
    },
    close: async () => {
      await gateway.close()
      for (const w of workloads.values()) if (w.running) await w.service?.close()
    }
  }
}
