// A real etcd cluster for tests: N members of Debian's etcd (etcd-server) on free loopback
// ports, data in a temporary folder, started and stopped by the test.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Etcd3 } from 'etcd3'
import { closedPort } from './upstream.js'

export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd'

interface Member { name: string; client: number; peer: number; dir: string; proc?: ChildProcess }

export interface EtcdCluster {
  /** `127.0.0.1:PORT` of each member's client port. */
  hosts: string[]
  /** `etcd://…/PREFIX` for every member. */
  url: (prefix: string) => string
  /** A client of the whole cluster (closed by `stop`). */
  client: Etcd3
  /** Kill member i (SIGKILL: no goodbye to its peers). */
  kill: (i: number) => Promise<void>
  /** Start members again on their ports with their data, and wait until they serve. */
  restart: (...which: number[]) => Promise<void>
  /** Index of the current leader. */
  leader: () => Promise<number>
  /** Compact the history up to the current revision (physical). */
  compact: () => Promise<number>
  stop: () => Promise<void>
}

/** Start an `n`-member cluster (default 3) and wait until it answers. */
export async function startEtcd (n = 3): Promise<EtcdCluster> {
  const base = mkdtempSync(join(tmpdir(), 'meshgate-etcd-'))
  const members: Member[] = []
  for (let i = 0; i < n; i++) members.push({ name: `m${i}`, client: await closedPort(), peer: await closedPort(), dir: join(base, `m${i}`) })
  const initialCluster = members.map(m => `${m.name}=http://127.0.0.1:${m.peer}`).join(',')
  const spawnMember = (m: Member, state: 'new' | 'existing'): void => {
    m.proc = spawn(ETCD_BIN, [
      '--name', m.name, '--data-dir', m.dir,
      '--listen-client-urls', `http://127.0.0.1:${m.client}`, '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
      '--listen-peer-urls', `http://127.0.0.1:${m.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
      '--initial-cluster', initialCluster, '--initial-cluster-state', state, '--initial-cluster-token', 'meshgate-test',
      // Short heartbeat and election: a lost leader is replaced in well under a second.
      '--heartbeat-interval', '50', '--election-timeout', '500',
      '--logger', 'zap', '--log-level', 'error'
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    m.proc.stderr?.resume()
  }
  for (const m of members) spawnMember(m, 'new')
  const hosts = members.map(m => `127.0.0.1:${m.client}`)
  const client = new Etcd3({ hosts: hosts.map(h => `http://${h}`), dialTimeout: 2000 })
  const started = Date.now()
  for (;;) {
    try { await client.put('/meshgate-test/up').value('1'); break } catch (err) {
      if (Date.now() - started > 20_000) throw new Error(`etcd did not start: ${(err as Error).message}`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
  /** Each live member's own id and the leader id it reports. */
  const statuses = async (): Promise<Array<{ i: number; self: string; leader: string }>> => {
    const out: Array<{ i: number; self: string; leader: string }> = []
    for (let i = 0; i < n; i++) {
      if (members[i].proc === undefined) continue
      const one = new Etcd3({ hosts: `http://${hosts[i]}`, dialTimeout: 1000 })
      try { const s = await one.maintenance.status(); out.push({ i, self: s.header.member_id, leader: s.leader }) } catch { /* down */ } finally { one.close() }
    }
    return out
  }
  return {
    hosts,
    url: prefix => `etcd://${hosts.join(',')}${prefix}`,
    client,
    kill: async i => {
      const p = members[i].proc
      members[i].proc = undefined
      if (p === undefined || p.exitCode !== null) return
      const exited = new Promise(resolve => p.once('exit', resolve))
      p.kill('SIGKILL')
      await exited
    },
    restart: async (...which) => {
      // All at once: a member serves clients only once it has rejoined a quorum.
      for (const i of which) spawnMember(members[i], 'existing')
      await Promise.all(which.map(async i => {
        const one = new Etcd3({ hosts: `http://${hosts[i]}`, dialTimeout: 1000 })
        try {
          const t0 = Date.now()
          for (;;) {
            try { await one.maintenance.status(); return } catch {
              if (Date.now() - t0 > 15_000) throw new Error(`etcd member ${i} did not come back`)
              await new Promise(resolve => setTimeout(resolve, 100))
            }
          }
        } finally { one.close() }
      }))
    },
    leader: async () => {
      const all = await statuses()
      const found = all.find(m => all.some(o => o.leader === m.self))
      if (found === undefined) throw new Error('no leader')
      return found.i
    },
    compact: async () => {
      const rev = Number((await client.get('/meshgate-test/up').exec()).header.revision)
      await client.kv.compact({ revision: String(rev), physical: true })
      return rev
    },
    stop: async () => {
      client.close()
      await Promise.all(members.map(async m => {
        const p = m.proc
        m.proc = undefined
        if (p === undefined || p.exitCode !== null) return
        const exited = new Promise(resolve => p.once('exit', resolve))
        p.kill('SIGKILL')
        await exited
      }))
      rmSync(base, { recursive: true, force: true })
    }
  }
}
