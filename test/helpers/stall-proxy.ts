// A TCP proxy on loopback in front of one server, whose open connections can be stalled: what
// the server sends on them is held back (as a member that stopped answering, or a network that
// stopped delivering, would do), while what the client sends still goes through and new
// connections work normally. Used to stall an etcd watch stream for real.
import { type Socket, connect, createServer } from 'node:net'

export interface StallProxy {
  /** `127.0.0.1:PORT` to give the client instead of the server. */
  host: string
  /** Stall every connection open now: the server's bytes are held until `resume`. */
  stall: () => void
  /** Bytes the clients sent on stalled connections since `stall`. */
  sentWhileStalled: () => number
  /** Deliver what was held and stop stalling. */
  resume: () => void
  close: () => Promise<void>
}

interface Pair { client: Socket; server: Socket; stalled: boolean; held: Buffer[] }

export async function startStallProxy (target: string): Promise<StallProxy> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))]
  const pairs = new Set<Pair>()
  let sent = 0
  const server = createServer(client => {
    const upstream = connect(port, host)
    const pair: Pair = { client, server: upstream, stalled: false, held: [] }
    pairs.add(pair)
    client.on('data', d => { if (pair.stalled) sent += d.length; upstream.write(d) })
    upstream.on('data', d => { if (pair.stalled) pair.held.push(d); else client.write(d) })
    const end = (): void => { pairs.delete(pair); client.destroy(); upstream.destroy() }
    client.on('close', end).on('error', end)
    upstream.on('close', end).on('error', end)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    host: `127.0.0.1:${(server.address() as { port: number }).port}`,
    stall: () => { sent = 0; for (const p of pairs) p.stalled = true },
    sentWhileStalled: () => sent,
    resume: () => {
      for (const p of pairs) {
        p.stalled = false
        for (const b of p.held.splice(0)) p.client.write(b)
      }
    },
    close: async () => {
      for (const p of pairs) { p.client.destroy(); p.server.destroy() }
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}
