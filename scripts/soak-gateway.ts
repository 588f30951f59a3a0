// The gateway side of the soak (scripts/soak.ts): meshgate and its admin API in a process of
// their own, so heap and handle samples measure the gateway alone. Forked with --expose-gc.
// Config YAML comes in MESHGATE_SOAK_YAML (A) and MESHGATE_SOAK_YAML_B (the alternate used by
// in-process reloads); it answers IPC commands:
//   { cmd: 'sample' }            → post-GC heap, RSS, active handles and sockets, warnings
//   { cmd: 'reloads', n }        → n in-process reloads alternating A and B (no traffic: I2)
//   { cmd: 'stop' }              → graceful close, exit 0
import { Socket } from 'node:net'
import { startGateway } from '../plugins/gateway.js'
import { startAdmin } from '../routes/admin.js'

/** What the child reports for one sample. */
export interface GatewaySample {
  heapUsed: number
  rss: number
  /** Active libuv handles and requests, by type (process.getActiveResourcesInfo). */
  resources: Record<string, number>
  handles: number
  sockets: number
  /** Each open TCP socket: its ports, which side opened it, and its state (to name a leak). */
  socketInfo: string[]
  generation: number
  warnings: Record<string, number>
}

const yamlA = process.env.MESHGATE_SOAK_YAML ?? ''
const yamlB = process.env.MESHGATE_SOAK_YAML_B ?? yamlA
// Node creates the stdio handles on first use (a warning printed mid-run would add one):
// create them now, so the baseline holds them.
void process.stdout.writable
void process.stderr.writable
const warnings: Record<string, number> = {}
process.on('warning', w => { warnings[w.name] = (warnings[w.name] ?? 0) + 1 })

const gw = await startGateway({
  config: { inputs: [{ file: 'soak-a.yaml', text: yamlA }] },
  host: '127.0.0.1',
  meshPort: 0,
  // MESHGATE_SOAK_ACCESS_LOG=path keeps the access log (to look into failures); off by default.
  accessLog: process.env.MESHGATE_SOAK_ACCESS_LOG ?? 'off'
})
const admin = await startAdmin({ gateway: gw, port: 0, token: process.env.MESHGATE_SOAK_TOKEN, reloadLimit: 1000 })

const gc = (globalThis as { gc?: () => void }).gc
async function sample (): Promise<GatewaySample> {
  // Two collections with a turn of the loop between: finalizers and weak callbacks run.
  for (let i = 0; i < 3; i++) {
    gc?.()
    await new Promise(resolve => setImmediate(resolve))
  }
  const resources: Record<string, number> = {}
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1
  const m = process.memoryUsage()
  // process._getActiveHandles is undocumented but the only way to see which sockets are open.
  const handles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles?.() ?? []
  const socketInfo = handles.filter((h): h is Socket => h instanceof Socket && !(h as { _isStdio?: boolean })._isStdio && h.remotePort !== undefined)
    .map(describeSocket)
  return {
    heapUsed: m.heapUsed,
    rss: m.rss,
    resources,
    // The sampler's own setImmediate and file-system requests are not handles anyone leaked.
    handles: Object.entries(resources).filter(([k]) => k !== 'FSReqCallback' && k !== 'Immediate').reduce((s, [, v]) => s + v, 0),
    sockets: resources.TCPSocketWrap ?? 0,
    socketInfo,
    generation: gw.config.current.generation,
    warnings: { ...warnings }
  }
}

function describeSocket (s: Socket): string {
  const side = (s as { server?: unknown }).server !== undefined && (s as { server?: unknown }).server !== null ? 'accepted' : 'dialled'
  const timeout = (s as { timeout?: number }).timeout
  return `${side} ${s.localAddress ?? '?'}:${s.localPort ?? '?'} → ${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'} ${s.readyState} read ${s.bytesRead} written ${s.bytesWritten}${s.destroyed ? ' destroyed' : ''}${timeout !== undefined && timeout > 0 ? ` timeout ${timeout} ms` : ''}`
}

process.on('message', (m: { cmd: string; n?: number; id?: number }) => {
  const reply = (body: object): void => { process.send?.({ id: m.id, ...body }) }
  if (m.cmd === 'sample') void sample().then(s => reply({ sample: s }))
  if (m.cmd === 'reloads') {
    void (async () => {
      let failed = 0
      for (let i = 0; i < (m.n ?? 0); i++) {
        const text = gw.config.current.inputs[0]?.text === yamlA ? yamlB : yamlA
        try { await gw.reload({ inputs: [{ file: 'soak-a.yaml', text }] }) } catch { failed++ }
      }
      reply({ done: true, failed, generation: gw.config.current.generation })
    })()
  }
  if (m.cmd === 'stop') void gw.close(5000).then(async () => { await admin.close(); process.exit(0) })
})
process.send?.({ ready: true, mesh: gw.listeners.find(l => l.kind === 'mesh')?.url, admin: admin.url, gc: gc !== undefined })
