import type { GatewayOptions } from '../plugins/gateway.js'
import { PATH_NORMALIZATIONS, type EscapedSlashesAction } from '../src/routing/path.js'
import { DEFAULT_LIMITS, type OverloadOptions, type UnderscoreHeadersAction } from '../plugins/listener/index.js'
import { DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS } from '../plugins/pools.js'
import { DEFAULT_TRACE_SAMPLING, tracesUrl } from '../plugins/tracing.js'

// The CLI's hardening and TLS flags (docs/operations.md#security-defaults): each is also read from the
// environment, and maps to one GatewayOptions field. Kept apart from bin/meshgate.ts so the
// flag table, the usage text and the parsing stay together.

type Kind = 'enum' | 'bytes' | 'seconds' | 'count' | 'path' | 'ms'

/** A GatewayOptions field a flag sets directly, or one of the overload guards. */
type Field = keyof GatewayOptions | 'overload.switch' | `overload.${'maxEventLoopDelayMs' | 'maxHeapUsedBytes' | 'maxRssBytes'}`

interface Flag {
  flag: string
  /** MESHGATE_ and the flag in upper case. */
  env: string
  kind: Kind
  values?: readonly string[]
  /** The option it sets. */
  field: Field
  /** The default, as the usage text and the docs show it (taken from the defaults themselves). */
  default: string
  help: string
}

const ESCAPED: readonly EscapedSlashesAction[] = ['REJECT', 'KEEP_UNCHANGED', 'UNESCAPE_AND_FORWARD', 'UNESCAPE_AND_REDIRECT']
const UNDERSCORES: readonly UnderscoreHeadersAction[] = ['REJECT', 'DROP', 'ALLOW']
const D = DEFAULT_LIMITS
const OVERLOAD = DEFAULT_LIMITS.overload as OverloadOptions
const seconds = (ms: number): string => String(ms / 1000)

function flag (name: string, kind: Kind, field: Field, dflt: string, help: string, values?: readonly string[]): Flag {
  return { flag: name, env: `MESHGATE_${name.toUpperCase().replace(/-/g, '_')}`, kind, field, default: dflt, help, ...(values !== undefined ? { values } : {}) }
}

/**
 * Every tuning flag, in the order the usage text lists them: the one table of the tuning
 * options. Defaults come from DEFAULT_LIMITS and the pools' idle timeout, so the usage text,
 * GatewayOptions and docs/operations.md cannot disagree (a test checks the docs against it).
 */
export const TUNING_FLAGS: readonly Flag[] = [
  flag('credentials-dir', 'path', 'credentialsDir', '<first config dir>/credentials', 'directory of credentialName secrets (NAME/tls.crt, NAME/tls.key, NAME/ca.crt)'),
  flag('path-normalization', 'enum', 'pathNormalization', D.pathNormalization, "Istio's pathNormalization", PATH_NORMALIZATIONS),
  flag('escaped-slashes', 'enum', 'escapedSlashes', D.escapedSlashes, '%2F and %5C in paths', ESCAPED),
  flag('headers-with-underscores', 'enum', 'headersWithUnderscores', D.headersWithUnderscores, 'header names containing _', UNDERSCORES),
  flag('max-header-bytes', 'bytes', 'maxHeaderBytes', String(D.maxHeaderBytes), 'request line + headers, bytes → 431'),
  flag('max-headers-count', 'count', 'maxHeadersCount', String(D.maxHeadersCount), 'request headers → 431'),
  flag('max-body-bytes', 'bytes', 'maxRequestBodyBytes', String(D.maxRequestBodyBytes), 'request body bytes, 0 = unlimited → 413'),
  flag('headers-timeout', 'seconds', 'headersTimeoutMs', seconds(D.headersTimeoutMs), 'seconds to receive request headers → 408'),
  flag('request-timeout', 'seconds', 'requestTimeoutMs', seconds(D.requestTimeoutMs), 'seconds to receive the whole request → 408'),
  flag('keep-alive-timeout', 'seconds', 'keepAliveTimeoutMs', seconds(D.keepAliveTimeoutMs), 'seconds an idle client connection stays open'),
  flag('upstream-idle-timeout', 'seconds', 'upstreamIdleTimeoutMs', seconds(DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS), 'seconds an upstream may stay silent → 504 UT / aborted body'),
  flag('shutdown-delay', 'seconds', 'shutdownDelayMs', '0', 'seconds to keep serving after readiness turns false on SIGTERM'),
  flag('max-connections', 'count', 'maxConnections', String(D.maxConnections), 'client connections per listener'),
  flag('max-concurrent-streams', 'count', 'maxConcurrentStreams', String(D.maxConcurrentStreams), 'HTTP/2 streams per connection'),
  flag('num-trusted-proxies', 'count', 'numTrustedProxies', String(D.numTrustedProxies), "proxies in front whose X-Forwarded-For is trusted (Istio numTrustedProxies): the client of remoteIpBlocks"),
  flag('overload', 'enum', 'overload.switch', 'on', 'load shedding with 503 OM', ['on', 'off']),
  flag('overload-max-event-loop-delay', 'ms', 'overload.maxEventLoopDelayMs', String(OVERLOAD.maxEventLoopDelayMs), 'event-loop delay in ms above which requests are shed'),
  flag('overload-max-heap-bytes', 'bytes', 'overload.maxHeapUsedBytes', "95 % of V8's heap limit", 'heap used above which requests are shed'),
  flag('overload-max-rss-bytes', 'bytes', 'overload.maxRssBytes', OVERLOAD.maxRssBytes === 0 ? 'off' : String(OVERLOAD.maxRssBytes), 'resident memory above which requests are shed')
]

/** The `parseArgs` option table of the tuning flags. */
export function tuningArgOptions (): Record<string, { type: 'string' }> {
  const out: Record<string, { type: 'string' }> = {}
  for (const f of TUNING_FLAGS) out[f.flag] = { type: 'string' }
  return out
}

/** Usage lines of the tuning flags. */
export function tuningUsage (): string {
  return TUNING_FLAGS.map(f => `      --${f.flag} ${f.kind === 'enum' ? 'V' : f.kind === 'path' ? 'DIR' : 'N'}`.padEnd(47) + `${f.values !== undefined ? `${f.values.join('|')}: ` : ''}${f.help} (default ${f.default}; ${f.env})`).join('\n')
}

/**
 * GatewayOptions from the tuning flags (a flag wins over its environment variable). Throws an
 * Error naming the flag for a value that is not valid.
 */
export function tuningOptions (values: Record<string, unknown>, env: NodeJS.ProcessEnv): Partial<GatewayOptions> {
  const raw = (f: Flag): string | undefined => {
    const v = values[f.flag]
    if (typeof v === 'string') return v
    const e = env[f.env]
    return e === undefined || e === '' ? undefined : e
  }
  const num = (f: Flag): number | undefined => {
    const v = raw(f)
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isFinite(n) || n < 0 || ((f.kind === 'count' || f.kind === 'bytes') && !Number.isInteger(n))) {
      throw new Error(`--${f.flag} (${f.env}) "${v}": expected a ${f.kind === 'seconds' ? 'number of seconds' : 'non-negative integer'}`)
    }
    return f.kind === 'seconds' ? Math.round(n * 1000) : n
  }
  const pick = <T extends string>(f: Flag): T | undefined => {
    const v = raw(f)
    if (v === undefined) return undefined
    const up = f.flag === 'overload' ? v.toLowerCase() : v.toUpperCase()
    if (!(f.values ?? []).includes(up)) throw new Error(`--${f.flag} (${f.env}) "${v}": expected one of ${(f.values ?? []).join(', ')}`)
    return up as T
  }
  const out: Partial<GatewayOptions> = {}
  const guards: Record<string, number> = {}
  let overloadOff = false
  for (const f of TUNING_FLAGS) {
    const v = f.kind === 'enum' ? pick<string>(f) : f.kind === 'path' ? raw(f) : num(f)
    if (v === undefined) continue
    if (f.field === 'overload.switch') overloadOff = v === 'off'
    else if (f.field.startsWith('overload.')) guards[f.field.slice('overload.'.length)] = v as number
    else (out as Record<string, unknown>)[f.field] = v
  }
  if (overloadOff) out.overload = false
  else if (Object.keys(guards).length > 0) out.overload = guards
  return out
}

/** The tuning flags as a Markdown table, the form docs/operations.md shows them in. */
export function tuningMarkdown (): string {
  const rows = TUNING_FLAGS.map(f => `| \`--${f.flag}\` | \`${f.env}\` | ${f.default} | ${f.kind === 'seconds' ? 'seconds' : f.kind === 'ms' ? 'ms' : f.kind === 'bytes' ? 'bytes' : f.kind === 'enum' ? (f.values ?? []).join(', ') : f.kind === 'count' ? 'count' : 'path'} | ${f.help.replace(/\|/g, '\\|')} |`)
  return ['| flag | environment | default | unit or values | what it sets |', '|---|---|---|---|---|', ...rows].join('\n')
}

/** Markers around the generated table in docs/operations.md. */
export const TUNING_DOC_MARKERS = ['<!-- tuning flags: generated by npm run docs:tuning from bin/tuning.ts -->', '<!-- end of tuning flags -->'] as const

/** The tracing flags (docs/tracing.md), as `parseArgs` options. */
export const TRACING_ARG_OPTIONS = {
  'otlp-endpoint': { type: 'string' },
  'trace-sampling': { type: 'string' }
} as const

/** Usage lines of the tracing flags. */
export const TRACING_USAGE = `      --otlp-endpoint URL  export spans over OTLP/HTTP to this collector (http://HOST:4318, /v1/traces added
                           unless given); tracing is off without it (MESHGATE_OTLP_ENDPOINT)
      --trace-sampling P   percentage of requests without a sampling decision that start a sampled trace,
                           0–100 (MESHGATE_TRACE_SAMPLING, default ${DEFAULT_TRACE_SAMPLING}, Istio's default)`

/**
 * GatewayOptions' `tracing` from `--otlp-endpoint` and `--trace-sampling` (a flag wins over its
 * environment variable); undefined when no endpoint is given. Throws an Error naming the flag.
 */
export function tracingOptions (values: Record<string, unknown>, env: NodeJS.ProcessEnv): GatewayOptions['tracing'] {
  const pick = (flag: string, name: string): string | undefined => {
    const v = values[flag]
    if (typeof v === 'string') return v
    const e = env[name]
    return e === undefined || e === '' ? undefined : e
  }
  const endpoint = pick('otlp-endpoint', 'MESHGATE_OTLP_ENDPOINT')
  const sampling = pick('trace-sampling', 'MESHGATE_TRACE_SAMPLING')
  let percent: number | undefined
  if (sampling !== undefined) {
    percent = Number(sampling)
    if (sampling.trim() === '' || !Number.isFinite(percent) || percent < 0 || percent > 100) throw new Error(`--trace-sampling (MESHGATE_TRACE_SAMPLING) "${sampling}": expected a percentage from 0 to 100`)
  }
  if (endpoint === undefined) return undefined
  try {
    tracesUrl(endpoint)
  } catch {
    throw new Error(`--otlp-endpoint (MESHGATE_OTLP_ENDPOINT) "${endpoint}": expected an http:// or https:// URL`)
  }
  return { otlpEndpoint: endpoint, ...(percent !== undefined ? { samplingPercent: percent } : {}) }
}
