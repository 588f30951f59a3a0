import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import { stringify } from 'yaml'
import type { DestinationTarget } from '../../src/compile/snapshot.js'
import { endpointHealth } from '../../plugins/events.js'
import type { Generation, Rejection } from '../../plugins/config-manager.js'
import type { RunningGateway } from '../../plugins/gateway.js'
import { authOutcome } from './auth.js'
import { allResources } from './change.js'
import { describeRoute } from './describe.js'
import { dumpResource } from './redact.js'
import { Open, ProblemSchema } from './schemas.js'
import { adminConfig, serverWide, type AdminRouteOptions } from './shared.js'

// The two reads the dashboard is built on, usable by any tool: the topology as one graph
// (`GET /graph`) and the configuration's history with who changed what (`GET /config/history`).

const Node = Type.Object({
  id: Type.String(),
  kind: Type.Union(['listener', 'vhost', 'route', 'destination', 'cluster', 'endpoint'].map(k => Type.Literal(k))),
  label: Type.String(),
  parent: Type.Optional(Type.String({ description: 'the node this one hangs from, for layout' })),
  data: Open({}, 'what the node stands for: a route as GET /routes shows it, an endpoint\'s health...')
})
const Edge = Type.Object({
  id: Type.String(),
  kind: Type.Union(['contains', 'destination', 'cluster', 'fallback', 'endpoint'].map(k => Type.Literal(k))),
  from: Type.String(),
  to: Type.String(),
  label: Type.Optional(Type.String()),
  data: Type.Optional(Open())
})
const GraphReply = Type.Object({ generation: Type.Integer(), nodes: Type.Array(Node), edges: Type.Array(Edge) })

const Who = Type.Object({ via: Type.String({ description: 'token, session (the dashboard) or the source: files, watch, etcd...' }), remote: Type.Optional(Type.String()), method: Type.Optional(Type.String()), url: Type.Optional(Type.String()) })
const Change = Type.Object({
  kind: Type.String(), namespace: Type.String(), name: Type.String(),
  change: Type.Union([Type.Literal('added'), Type.Literal('removed'), Type.Literal('changed')]),
  diff: Type.String({ description: 'unified diff of the resource as YAML (secrets redacted)' })
})
const HistoryReply = Type.Object({
  generation: Type.Integer(),
  history: Type.Array(Type.Object({
    generation: Type.Integer(), loadedAt: Type.String(), source: Type.String(), who: Who, resources: Type.Integer(),
    changes: Type.Array(Change, { description: 'against the previous generation kept; empty for the oldest' })
  })),
  rejections: Type.Array(Type.Object({ at: Type.String(), source: Type.String(), who: Type.Optional(Who), problems: Type.Array(ProblemSchema) }))
})

type NodeT = { id: string; kind: string; label: string; parent?: string; data: Record<string, unknown> }
type EdgeT = { id: string; kind: string; from: string; to: string; label?: string; data?: Record<string, unknown> }

function clustersOf (t: DestinationTarget): string[] {
  if (t.cluster !== undefined) return [t.cluster]
  return [...new Set([...(t.byPort?.values() ?? []), ...(t.fallbackPortCluster !== undefined ? [t.fallbackPortCluster] : [])])]
}

/** The topology: listeners → virtual hosts → routes → destinations → clusters → endpoints, fallbacks as their own edges. */
export function topology (gw: RunningGateway): { generation: number; nodes: NodeT[]; edges: EdgeT[] } {
  const snap = gw.store.current
  const nodes: NodeT[] = []
  const edges: EdgeT[] = []
  const clusters = new Set<string>()
  for (const l of [...snap.gateways, snap.mesh]) {
    const lid = `listener:${l.name}`
    nodes.push({ id: lid, kind: 'listener', label: l.kind === 'mesh' ? `mesh :${l.port}` : `${l.name}`, data: { name: l.name, kind: l.kind, port: l.port, gateways: l.gatewayNames } })
    for (const vh of l.hosts.all) {
      const vid = `vhost:${l.name}/${vh.name}`
      nodes.push({ id: vid, kind: 'vhost', label: vh.name, parent: lid, data: { listener: l.name, name: vh.name, domains: vh.domains } })
      edges.push({ id: `${lid}>${vid}`, kind: 'contains', from: lid, to: vid })
      vh.routes.forEach((r, order) => {
        const rid = `route:${l.name}/${vh.name}/${order}`
        const d = describeRoute(r, order)
        nodes.push({ id: rid, kind: 'route', label: `${r.name === '-' ? `#${order}` : r.name} ${r.virtualService}`, parent: vid, data: { listener: l.name, listenerKey: l.kind === 'mesh' ? 'mesh' : String(l.port), virtualHost: vh.name, ...d } })
        edges.push({ id: `${vid}>${rid}`, kind: 'contains', from: vid, to: rid })
        r.destinations.forEach((dest, i) => {
          const did = `${rid}/dest:${i}`
          const share = r.totalWeight > 0 ? Math.round(dest.weight / r.totalWeight * 1000) / 10 : 0
          nodes.push({ id: did, kind: 'destination', label: `${dest.host.split('.')[0]}${dest.subset !== '' ? ` ${dest.subset}` : ''} ${share}%`, parent: rid, data: { host: dest.host, subset: dest.subset, weight: dest.weight, share } })
          edges.push({ id: `${rid}>${did}`, kind: 'destination', from: rid, to: did, label: `${share}%`, data: { weight: dest.weight } })
          const primary = clustersOf(dest)
          for (const c of primary) {
            clusters.add(c)
            edges.push({ id: `${did}>cluster:${c}`, kind: 'cluster', from: did, to: `cluster:${c}` })
          }
          if (dest.fallback !== undefined) {
            const fb = clustersOf(dest.fallback)
            primary.forEach((p, k) => {
              const f = fb[k] ?? fb[0]
              if (f === undefined) return
              clusters.add(f)
              edges.push({ id: `fallback:${did}:${k}`, kind: 'fallback', from: `cluster:${p}`, to: `cluster:${f}`, label: 'fallback', data: { route: r.name, listener: l.name, primary: p, fallback: f } })
            })
          }
        })
      })
    }
  }
  const health = endpointHealth(gw.runtime)
  for (const name of clusters) {
    const c = gw.runtime.cluster(name)
    const cid = `cluster:${name}`
    const [, port, subset, host] = name.split('|')
    nodes.push({
      id: cid, kind: 'cluster', label: `${(host ?? name).split('.')[0]}${subset ? ` ${subset}` : ''} :${port ?? ''}`,
      data: { name, host: c?.spec.host ?? host ?? '', subset: c?.spec.subset ?? subset ?? '', endpoints: c?.endpoints.length ?? 0, healthy: c?.healthy.length ?? 0, loadBalancer: c?.lb.kind ?? null }
    })
    for (const e of c?.endpoints ?? []) {
      const eid = `endpoint:${name} ${e.key}`
      const h = health.get(`${name} ${e.key}`)
      nodes.push({ id: eid, kind: 'endpoint', label: `${e.spec.labels.version ?? ''} ${e.key}`.trim(), parent: cid, data: { ...h, labels: e.spec.labels } })
      edges.push({ id: `${cid}>${eid}`, kind: 'endpoint', from: cid, to: eid })
    }
  }
  return { generation: snap.generation, nodes, edges }
}

/** A unified line diff (longest common subsequence) of two short texts, with `---`/`+++` headers. */
export function lineDiff (before: string, after: string, name: string): string {
  const a = before === '' ? [] : before.replace(/\n$/, '').split('\n')
  const b = after === '' ? [] : after.replace(/\n$/, '').split('\n')
  const out = [`--- ${before === '' ? '/dev/null' : `a/${name}`}`, `+++ ${after === '' ? '/dev/null' : `b/${name}`}`]
  if (a.length * b.length > 4_000_000) return [...out, ...a.map(l => `-${l}`), ...b.map(l => `+${l}`)].join('\n')
  // lcs[i][j]: length of the common subsequence of a[i..] and b[j..].
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1))
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1])
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) { out.push(` ${a[i]}`); i++; j++ } else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) { out.push(`+${b[j]}`); j++ } else { out.push(`-${a[i]}`); i++ }
  }
  return out.join('\n')
}

function resourceText (r: unknown): string {
  const { source: _source, ...rest } = dumpResource(r)
  return stringify(rest)
}

/** What changed from one generation to the next, resource by resource. */
export function generationChanges (prev: Generation | undefined, next: Generation): Array<{ kind: string; namespace: string; name: string; change: 'added' | 'removed' | 'changed'; diff: string }> {
  if (prev === undefined) return []
  const key = (r: { kind: string; metadata: { namespace: string; name: string } }): string => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`
  const before = new Map(allResources(prev).map(r => [key(r), r]))
  const after = new Map(allResources(next).map(r => [key(r), r]))
  const out: ReturnType<typeof generationChanges> = []
  for (const k of new Set([...before.keys(), ...after.keys()])) {
    const [kind, namespace, name] = k.split('/')
    const b = before.has(k) ? resourceText(before.get(k)) : ''
    const a = after.has(k) ? resourceText(after.get(k)) : ''
    if (a === b) continue
    out.push({ kind, namespace, name, change: b === '' ? 'added' : a === '' ? 'removed' : 'changed', diff: lineDiff(b, a, `${kind}/${namespace}/${name}`) })
  }
  return out
}

interface WhoT { via: string; remote?: string; method?: string; url?: string }

/**
 * Who made each change through the API, noted when a changing call succeeds (its generation)
 * or is refused (its rejection), for `GET /config/history`. Server-wide: it sees every route.
 */
export class ChangeLog {
  readonly byGeneration = new Map<number, WhoT>()
  readonly rejections: Array<Rejection & { who?: WhoT }> = []
  private seen: Rejection | undefined

  /** Records a rejection the config manager holds, once. */
  noteRejection (rej: Rejection | undefined, who?: WhoT): void {
    if (rej === undefined || rej === this.seen) return
    this.seen = rej
    this.rejections.push({ ...rej, ...(who !== undefined ? { who } : {}) })
    if (this.rejections.length > 20) this.rejections.shift()
  }
}

export const adminChangeLog = serverWide<{ gw: RunningGateway; log: ChangeLog }>('meshgate-admin-change-log', async (app, { gw, log }) => {
  app.addHook('onResponse', async (req, reply) => {
    if (adminConfig(req.routeOptions.config).change !== true) return
    const outcome = authOutcome(req)
    const who = { via: outcome === 'session' ? 'session' : 'token', remote: req.ip, method: req.method, url: req.url }
    if (reply.statusCode === 200) {
      try { log.byGeneration.set(gw.config.current.generation, who) } catch { /* not loaded yet */ }
    } else if (reply.statusCode === 400) log.noteRejection(gw.config.lastRejection, who)
  })
})

/** `GET /graph` and `GET /config/history`. */
export const uiDataRoutes: FastifyPluginAsync<AdminRouteOptions & { log: ChangeLog }> = async (app, { gw, log }) => {
  app.get('/graph', { schema: { response: { 200: GraphReply } } }, async () => topology(gw))
  app.get('/config/history', { schema: { response: { 200: HistoryReply } } }, async () => {
    log.noteRejection(gw.config.lastRejection)
    const gens = gw.config.history
    return {
      generation: gw.config.current.generation,
      history: gens.map((g, i) => ({
        generation: g.generation,
        loadedAt: new Date(g.loadedAt).toISOString(),
        source: g.source,
        who: log.byGeneration.get(g.generation) ?? { via: g.source },
        resources: allResources(g).length,
        changes: generationChanges(gens[i - 1], g)
      })),
      rejections: log.rejections.map(r => ({ at: new Date(r.at).toISOString(), source: r.source, ...(r.who !== undefined ? { who: r.who } : {}), problems: r.problems }))
    }
  })
}
