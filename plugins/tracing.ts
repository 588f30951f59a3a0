import { hostname } from 'node:os'
import type { IncomingHttpHeaders } from 'node:http'
import { type Context, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, type TextMapGetter, type TextMapSetter, type Tracer, trace } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, ParentBasedSampler, type SpanExporter, TraceIdRatioBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace'
import type { HeaderMap } from '../src/routing/headers.js'
import type { AccessLogContext } from './access-log.js'

/**
 * Distributed tracing (docs/tracing.md): meshgate takes part in a trace as Envoy does in Istio.
 * Each proxied request is a SERVER span that continues the client's W3C or B3 context (or starts
 * a trace, sampled by percentage); each try upstream is a CLIENT span under it, whose context is
 * what the upstream receives, in the formats the client used plus W3C. Spans go to an OTLP/HTTP
 * endpoint through a batch processor.
 *
 * Off (no `tracing` option): the request path holds `undefined` and pays one check per stage.
 * On, for a request that is not sampled: no span is recorded and no try span is created; the
 * server span's context is propagated as is, so the next hops see the same not-sampled trace.
 */

/** What `startGateway` takes to trace. */
export interface TracingOptions {
  /** OTLP/HTTP collector: a base URL (`/v1/traces` is added) or the full traces URL. */
  otlpEndpoint: string
  /** Share of the requests that arrive without a sampling decision that start a sampled trace, 0–100. Default 1 (Istio's). */
  samplingPercent?: number
  /** The resource's `service.name`. Default `meshgate`. */
  serviceName?: string
  /** Another exporter instead of OTLP/HTTP (embedding; the endpoint is then unused). */
  exporter?: SpanExporter
  /** The batch processor's delay between exports, ms (default 1000). */
  exportDelayMs?: number
}

/** Istio's default random sampling percentage (meshConfig `defaultConfig.tracing.sampling`). */
export const DEFAULT_TRACE_SAMPLING = 1

/** The traces URL of an `--otlp-endpoint`: a base URL gets the OTLP traces path. */
export function tracesUrl (endpoint: string): string {
  const u = new URL(endpoint)
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`"${endpoint}": expected an http:// or https:// URL`)
  if (!u.pathname.endsWith('/v1/traces')) u.pathname = u.pathname.replace(/\/$/, '') + '/v1/traces'
  return u.toString()
}

const getter: TextMapGetter<IncomingHttpHeaders> = {
  keys: h => Object.keys(h),
  get: (h, key) => h[key]
}

const setter: TextMapSetter<HeaderMap> = {
  set: (h, key, value) => { h[key] = value }
}

const w3c = new W3CTraceContextPropagator()
// Both B3 propagators read the single and the multi-header forms; they differ in what they write.
const b3Single = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER })
const b3Multi = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER })

/** Which formats a request carried, as bits: what is written upstream besides W3C. */
const B3_SINGLE = 1
const B3_MULTI = 2

/** The tracer of one gateway: provider, sampler, exporter. */
export class Tracing {
  readonly tracer: Tracer
  private readonly provider: TracerProvider
  private readonly node: string

  constructor (o: TracingOptions) {
    const percent = o.samplingPercent ?? DEFAULT_TRACE_SAMPLING
    if (!(percent >= 0 && percent <= 100)) throw new Error(`trace sampling ${percent}: expected a percentage from 0 to 100`)
    const exporter = o.exporter ?? new OTLPTraceExporter({ url: tracesUrl(o.otlpEndpoint), timeoutMillis: 5000 })
    this.provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': o.serviceName ?? 'meshgate' }),
      // A decision that came with the request is kept (Envoy honours x-b3-sampled and the
      // traceparent flag); a request without one is sampled by trace id at the percentage.
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(percent / 100) }),
      spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: o.exportDelayMs ?? 1000, exportTimeoutMillis: 5000 })]
    })
    this.tracer = this.provider.getTracer('meshgate')
    this.node = hostname()
  }

  /**
   * The SERVER span of a request (on the mesh listener or a Gateway port), continuing the context its headers
   * carry. The access log's `trace_id` becomes the span's trace id.
   */
  start (headers: IncomingHttpHeaders, ctx: AccessLogContext, mesh: boolean, scheme: string): RequestTrace {
    let formats = 0
    let parent: Context = ROOT_CONTEXT
    if (headers.b3 !== undefined) formats |= B3_SINGLE
    if (headers['x-b3-traceid'] !== undefined) formats |= B3_MULTI
    // B3 first, W3C last: when both came, the W3C context is the one continued.
    if (formats !== 0) parent = b3Multi.extract(parent, headers, getter)
    if (headers.traceparent !== undefined) parent = w3c.extract(parent, headers, getter)
    const span = this.tracer.startSpan(ctx.authority, { kind: SpanKind.SERVER }, parent)
    ctx.traceId = span.spanContext().traceId
    return new RequestTrace(this, span, formats, mesh, scheme)
  }

  /** The node id as Envoy tags it: the proxy type, the host and the listener kind. */
  nodeId (mesh: boolean): string {
    return `${mesh ? 'sidecar' : 'router'}~${this.node}~meshgate.${mesh ? 'mesh' : 'ingress'}`
  }

  /** Export what is buffered. */
  async flush (): Promise<void> {
    await this.provider.forceFlush()
  }

  /** Export what is buffered and stop. */
  async shutdown (): Promise<void> {
    await this.provider.shutdown()
  }
}

/** One request's spans: the server span, and the client span of the try in flight. */
export class RequestTrace {
  private tryspan: Span | undefined = undefined
  private tries = 0
  private ended = false
  private readonly recording: boolean

  constructor (private readonly t: Tracing, readonly span: Span, private readonly formats: number, private readonly mesh: boolean, private readonly scheme: string) {
    this.recording = span.isRecording()
  }

  /**
   * A try upstream begins: its CLIENT span (when sampled) is started and its context written
   * into `headers`, the request headers of that try. A try still open is ended first (a retry
   * decided on its answer).
   */
  startTry (headers: HeaderMap, cluster: string, host: string): void {
    this.tries++
    if (this.tryspan !== undefined) this.endTry()
    let ctx: Context
    if (this.recording) {
      const s = this.t.tracer.startSpan(operationOf(cluster), { kind: SpanKind.CLIENT }, trace.setSpan(ROOT_CONTEXT, this.span))
      s.setAttributes({
        component: 'proxy',
        upstream_cluster: cluster,
        'upstream_cluster.name': cluster,
        upstream_address: host,
        'meshgate.attempt': this.tries
      })
      this.tryspan = s
      ctx = trace.setSpan(ROOT_CONTEXT, s)
    } else {
      ctx = trace.setSpan(ROOT_CONTEXT, this.span)
    }
    inject(ctx, headers, this.formats)
  }

  /** The try's response head arrived. */
  tryStatus (status: number): void {
    const s = this.tryspan
    if (s === undefined) return
    s.setAttribute('http.status_code', status)
    if (status >= 500) s.setStatus({ code: SpanStatusCode.ERROR })
  }

  /** The try is over: its body ended, or it failed (`reason`: the transport failure). */
  endTry (reason?: string): void {
    const s = this.tryspan
    if (s === undefined) return
    this.tryspan = undefined
    if (reason !== undefined) {
      s.setAttribute('error', true)
      s.setAttribute('upstream_transport_failure_reason', reason)
      s.setStatus({ code: SpanStatusCode.ERROR, message: reason })
    }
    s.end()
  }

  /** The response closed: the server span gets the access log's facts and ends. */
  end (c: AccessLogContext, status: number): void {
    if (this.ended) return
    this.ended = true
    if (this.tryspan !== undefined) this.endTry(status === 0 ? 'downstream closed' : undefined)
    if (!this.recording) return
    const s = this.span
    const cluster = c.upstreamCluster
    if (cluster !== '-') s.updateName(operationOf(cluster))
    s.setAttributes({
      component: 'proxy',
      node_id: this.t.nodeId(this.mesh),
      'guid:x-request-id': c.requestId,
      'http.url': `${this.scheme}://${c.authority}${c.path}`,
      'http.method': c.method,
      'http.protocol': c.protocol,
      'http.status_code': status,
      user_agent: c.userAgent,
      downstream_cluster: '-',
      'peer.address': c.downstreamRemote,
      request_size: c.bytesReceived,
      response_size: c.bytesSent,
      response_flags: c.responseFlags,
      upstream_cluster: cluster,
      'upstream_cluster.name': cluster,
      upstream_address: c.upstreamHost,
      'meshgate.listener': c.listener,
      'meshgate.route': c.routeName,
      'meshgate.fallback_path': c.fallbackPath,
      'meshgate.fallback_result': c.fallbackResult,
      'meshgate.fallback_final_cluster': c.fallbackFinalCluster,
      'meshgate.retry_count': this.tries > 1 ? this.tries - 1 : 0
    })
    if (status >= 500 || status === 0) {
      s.setAttribute('error', true)
      s.setStatus({ code: SpanStatusCode.ERROR })
    }
    s.end()
  }
}

/** Write the context upstream: W3C always, B3 in the forms the client sent. */
function inject (ctx: Context, headers: HeaderMap, formats: number): void {
  w3c.inject(ctx, headers, setter)
  if (formats === 0) return
  // What the client sent describes its own span; meshgate's span replaces it.
  delete headers['x-b3-parentspanid']
  if ((formats & B3_SINGLE) !== 0) b3Single.inject(ctx, headers, setter)
  if ((formats & B3_MULTI) !== 0) b3Multi.inject(ctx, headers, setter)
}

/** Istio's operation name for a cluster: `host:port/*` (the route decorator of a sidecar). */
function operationOf (cluster: string): string {
  const parts = cluster.split('|')
  return parts.length === 4 ? `${parts[3]}:${parts[1]}/*` : cluster
}
