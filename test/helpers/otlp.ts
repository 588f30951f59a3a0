// An OTLP/HTTP trace receiver on loopback for the tracing tests: a node:http server that takes
// what the OpenTelemetry exporter posts to /v1/traces (OTLP's JSON encoding) and keeps every
// span, flattened, with its resource's service name.
import { type AddressInfo } from 'node:net'
import { createServer } from 'node:http'
import type { Teardown } from './gateway.js'

export interface ReceivedSpan {
  service: string
  traceId: string
  spanId: string
  /** '' for a root span. */
  parentSpanId: string
  name: string
  kind: 'internal' | 'server' | 'client' | 'producer' | 'consumer' | 'unspecified'
  attributes: Record<string, string | number | boolean>
  /** 0 unset, 1 ok, 2 error. */
  status: number
  startNs: bigint
}

export interface OtlpReceiver {
  /** The base URL to give as `--otlp-endpoint`. */
  url: string
  spans: ReceivedSpan[]
  /** Each POST: its path and content type. */
  posts: Array<{ path: string; contentType: string }>
}

const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'] as const

interface AnyValue { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number }
interface KeyValue { key: string; value: AnyValue }

function valueOf (v: AnyValue): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.boolValue !== undefined) return v.boolValue
  return v.doubleValue ?? ''
}

function attrs (kvs: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {}
  for (const kv of kvs ?? []) out[kv.key] = valueOf(kv.value)
  return out
}

/** Start the receiver; closed when the test ends. */
export async function otlpReceiverFor (t: Teardown): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = []
  const posts: OtlpReceiver['posts'] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => {
      posts.push({ path: req.url ?? '', contentType: String(req.headers['content-type'] ?? '') })
      if (req.method !== 'POST' || req.url !== '/v1/traces') { res.writeHead(404).end(); return }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans?: Array<{ resource?: { attributes?: KeyValue[] }; scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }> }>
      }
      for (const rs of body.resourceSpans ?? []) {
        const service = String(attrs(rs.resource?.attributes)['service.name'] ?? '')
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({
              service,
              traceId: String(s.traceId),
              spanId: String(s.spanId),
              parentSpanId: String(s.parentSpanId ?? ''),
              name: String(s.name),
              kind: KINDS[Number(s.kind ?? 0)] ?? 'unspecified',
              attributes: attrs(s.attributes as KeyValue[] | undefined),
              status: Number((s.status as { code?: number } | undefined)?.code ?? 0),
              startNs: BigInt(String(s.startTimeUnixNano ?? '0'))
            })
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, posts }
}
