// Starting meshgate in-process for a test: on free loopback ports, from inline YAML, with every
// access-log line collected. `gatewayFor` also registers the close with the test (as
// `upstreamsFor` in upstream.ts does), so a test body holds no start/stop boilerplate.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startGateway, type GatewayOptions, type RunningGateway } from '../../plugins/gateway.js'

export type InlineGatewayOptions = Partial<GatewayOptions> & { gatewayPorts?: number[] }
export type InlineGateway = RunningGateway & { logs: Array<Record<string, string>>; ingress: string; mesh: string }

/** What a tap test offers for cleaning up (kept structural so helpers need no tap types). */
export interface Teardown { teardown: (fn: () => unknown) => void }

/** Start meshgate on free ports with inline YAML; every access-log line is collected. */
export async function startInlineGateway (yaml: string, opts: InlineGatewayOptions = {}): Promise<InlineGateway> {
  const logs: Array<Record<string, string>> = []
  const portMap: Record<number, number> = {}
  for (const p of opts.gatewayPorts ?? [8080]) portMap[p] = 0
  const gw = await startGateway({
    config: { inputs: [{ file: 'inline.yaml', text: yaml }] },
    host: '127.0.0.1',
    meshPort: 0,
    portMap,
    accessLog: line => logs.push(JSON.parse(line)),
    ...opts
  })
  const ingress = gw.listeners.find(l => l.kind === 'gateway')?.url ?? ''
  const mesh = gw.listeners.find(l => l.kind === 'mesh')?.url ?? ''
  return Object.assign(gw, { logs, ingress, mesh })
}

/** `startInlineGateway`, closed when the test ends. */
export async function gatewayFor (t: Teardown, yaml: string, opts: InlineGatewayOptions = {}): Promise<InlineGateway> {
  const gw = await startInlineGateway(yaml, opts)
  t.teardown(() => gw.close())
  return gw
}

export interface GatewayChild {
  /** The child's mesh listener. */
  mesh: URL
  /** The child's resident set size when it reported ready. */
  rss: number
  /** The peak RSS sampled since the last ask, and the RSS now. */
  peak: () => Promise<{ peak: number; rss: number }>
}

/**
 * meshgate in its own process (gateway-child.ts) with inline YAML, for tests that measure the
 * proxy's memory alone. Stopped when the test ends.
 */
export async function gatewayChildFor (t: Teardown, yaml: string): Promise<GatewayChild> {
  const child = fork(fileURLToPath(new URL('./gateway-child.ts', import.meta.url)), {
    env: { ...process.env, MESHGATE_TEST_YAML: yaml },
    execArgv: [...process.execArgv, '--max-semi-space-size=2']
  })
  const ask = <T>(cmd?: string): Promise<T> => new Promise(resolve => { child.once('message', m => resolve(m as T)); if (cmd !== undefined) child.send({ cmd }) })
  const started = await ask<{ mesh: string; rss: number }>()
  // A graceful stop, bounded: what these tests measure is memory, not the drain, and a child left
  // behind would hold the test runner's output open.
  t.teardown(async () => {
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.send({ cmd: 'stop' })
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(timer)
  })
  return { mesh: new URL(started.mesh), rss: started.rss, peak: () => ask('peak') }
}

/** The gateway's runtime cluster whose name starts with `prefix` (e.g. `outbound|9080||app`). */
export function clusterOf (gw: RunningGateway, prefix: string): NonNullable<ReturnType<RunningGateway['runtime']['cluster']>> {
  const name = [...gw.runtime.allClusters()].map(c => c.spec.name).find(n => n.startsWith(prefix))
  const cluster = name !== undefined ? gw.runtime.cluster(name) : undefined
  if (cluster === undefined) throw new Error(`no cluster ${prefix}`)
  return cluster
}
