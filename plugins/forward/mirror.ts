import { PassThrough, type Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { clusterFor } from '../../src/compile/compile.js'
import type { DestinationTarget } from '../../src/compile/snapshot.js'
import { shadowAuthority } from '../../src/routing/actions.js'
import type { HeaderMap } from '../../src/routing/headers.js'
import type { RuntimeState } from '../../src/runtime/state.js'
import type { ClusterPools } from '../pools.js'
import { hostPort, originOf } from './endpoint.js'
import { H2Try } from './h2-try.js'
import type { TryOwner } from './try.js'

/** Bytes a mirror may fall behind the primary before its copy is abandoned. */
export const MIRROR_LAG_BYTES = 1024 * 1024

export interface MirrorJob {
  mirrors: ReadonlyArray<{ target: DestinationTarget; fraction: number }>
  port: number
  method: string
  path: string
  headers: HeaderMap
  body: Buffer | Readable | null
}

/**
 * Fire-and-forget copies to the mirror clusters (Envoy shadowing; Host gets `-shadow`). Their
 * answers, latency and failures never reach the client. A streamed body is teed: the primary
 * keeps its own backpressure, and a mirror that falls more than MIRROR_LAG_BYTES behind is
 * abandoned, so the primary path never buffers for it. Returns the body the primary should send.
 */
export function mirror (job: MirrorJob, runtime: RuntimeState, pools: ClusterPools, random: () => number): Buffer | Readable | null {
  const chosen = job.mirrors.filter(m => m.fraction >= 1 || random() < m.fraction)
  if (chosen.length === 0) return job.body
  const body = job.body
  const headers: HeaderMap = { ...job.headers, host: shadowAuthority(String(job.headers.host ?? '')) }
  let primary = body
  const shadows: Array<Buffer | PassThrough | null> = []
  if (body === null || Buffer.isBuffer(body)) {
    for (let i = 0; i < chosen.length; i++) shadows.push(body)
  } else {
    const src = body
    const main = new PassThrough()
    const copies = chosen.map(() => new PassThrough())
    const alive = new Set(copies)
    src.on('data', (c: Buffer) => {
      if (!main.write(c)) { src.pause(); main.once('drain', () => src.resume()) }
      for (const cp of alive) {
        if (cp.writableLength > MIRROR_LAG_BYTES) { alive.delete(cp); cp.destroy(); continue }
        cp.write(c)
      }
    })
    src.once('end', () => { main.end(); for (const cp of alive) cp.end() })
    src.once('error', err => { main.destroy(err); for (const cp of alive) cp.destroy() })
    main.once('close', () => { if (!src.readableEnded) src.destroy() })
    primary = main
    shadows.push(...copies)
  }
  chosen.forEach((m, i) => {
    const shadowBody = shadows[i]
    const cluster = runtime.cluster(clusterFor(m.target, job.port))
    const ep = cluster?.pick({ random, hashKey: undefined })
    if (cluster === undefined || ep === undefined) { if (shadowBody instanceof PassThrough) shadowBody.destroy(); return }
    if (shadowBody instanceof PassThrough) shadowBody.on('error', () => {})
    const tls = cluster.spec.policy.tls
    const proto = cluster.spec.upstreamProtocol
    if (proto !== undefined) {
      new H2Try(DISCARD, pools.h2(cluster.spec.name, cluster.limits, tls, cluster.spec.policy.connectionPool?.http?.maxConcurrentStreams), pools.idleTimeoutMs)
        .start({ origin: originOf(cluster, hostPort(ep)), path: job.path, method: job.method, headers, body: shadowBody })
      return
    }
    pools.get(cluster.spec.name, cluster.limits, tls).request({
      origin: originOf(cluster, hostPort(ep)),
      path: job.path,
      method: job.method as Dispatcher.HttpMethod,
      headers: headers as Record<string, string>,
      body: shadowBody
    }).then(res => { res.body.on('error', () => {}); res.body.resume() }, () => { /* a mirror's failure never matters */ })
  })
  return primary
}

/** The owner of a mirror's HTTP/2 try: reads the answer and drops it. */
const DISCARD: TryOwner = {
  onTryHeaders: () => true,
  onTryData: () => true,
  onTryTrailers: () => {},
  onTryEnd: () => {},
  onTryError: () => {}
}
