// A meshgate gateway in its own process, for tests that measure the proxy alone (memory).
// Started with child_process.fork (inheriting tap's TypeScript loader); config YAML comes in
// the MESHGATE_TEST_YAML environment variable; it reports its mesh URL, then answers
// { cmd: 'peak' } with the peak resident set size sampled every 10 ms since the last ask.
import { startGateway } from '../../plugins/gateway.js'

const gw = await startGateway({
  config: { inputs: [{ file: 'child.yaml', text: process.env.MESHGATE_TEST_YAML ?? '' }] },
  host: '127.0.0.1',
  meshPort: 0,
  accessLog: 'off'
})
let peak = process.memoryUsage().rss
setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 10).unref()
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'peak') { process.send?.({ peak, rss: process.memoryUsage().rss }); peak = process.memoryUsage().rss }
  if (m.cmd === 'stop') void gw.close().then(() => process.exit(0))
})
// The test process is gone (it crashed or was killed): go too, rather than hold its stdout open,
// which would keep the test runner waiting for that file forever.
process.on('disconnect', () => process.exit(1))
process.send?.({ mesh: gw.listeners.find(l => l.kind === 'mesh')?.url, rss: process.memoryUsage().rss })
