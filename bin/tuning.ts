import type { GatewayOptions } from '../plugins/gateway.js'
import { PATH_NORMALIZATIONS, type EscapedSlashesAction, type PathNormalization } from '../src/routing/path.js'
import type { UnderscoreHeadersAction } from '../plugins/listener/index.js'

// The CLI's hardening and TLS flags (docs/operations.md#security-defaults): each is also read from the
// environment, and maps to one GatewayOptions field. Kept apart from bin/meshgate.ts so the
// flag table, the usage text and the parsing stay together.

type Kind = 'enum' | 'bytes' | 'seconds' | 'count' | 'path' | 'ms'

interface Flag {
  flag: string
  env: string
  kind: Kind
  values?: readonly string[]
  help: string
}

const ESCAPED: readonly EscapedSlashesAction[] = ['REJECT', 'KEEP_UNCHANGED', 'UNESCAPE_AND_FORWARD', 'UNESCAPE_AND_REDIRECT']
const UNDERSCORES: readonly UnderscoreHeadersAction[] = ['REJECT', 'DROP', 'ALLOW']

/** Every tuning flag, in the order the usage text lists them. */
export const TUNING_FLAGS: readonly Flag[] = [
  { flag: 'credentials-dir', env: 'MESHGATE_CREDENTIALS_DIR', kind: 'path', help: 'directory of credentialName secrets (NAME/tls.crt, NAME/tls.key, NAME/ca.crt); default <first config dir>/credentials' },
  { flag: 'path-normalization', env: 'MESHGATE_PATH_NORMALIZATION', kind: 'enum', values: PATH_NORMALIZATIONS, help: 'NONE|BASE|MERGE_SLASHES|DECODE_AND_MERGE_SLASHES (default BASE, as Istio)' },
  { flag: 'escaped-slashes', env: 'MESHGATE_ESCAPED_SLASHES', kind: 'enum', values: ESCAPED, help: '%2F/%5C in paths: REJECT|KEEP_UNCHANGED|UNESCAPE_AND_FORWARD|UNESCAPE_AND_REDIRECT (default REJECT)' },
  { flag: 'headers-with-underscores', env: 'MESHGATE_HEADERS_WITH_UNDERSCORES', kind: 'enum', values: UNDERSCORES, help: 'REJECT|DROP|ALLOW (default REJECT)' },
  { flag: 'max-header-bytes', env: 'MESHGATE_MAX_HEADER_BYTES', kind: 'bytes', help: 'request line + headers, bytes (default 61440) → 431' },
  { flag: 'max-headers-count', env: 'MESHGATE_MAX_HEADERS_COUNT', kind: 'count', help: 'request headers (default 100) → 431' },
  { flag: 'max-body-bytes', env: 'MESHGATE_MAX_BODY_BYTES', kind: 'bytes', help: 'request body bytes, 0 = unlimited (default 1073741824) → 413' },
  { flag: 'headers-timeout', env: 'MESHGATE_HEADERS_TIMEOUT', kind: 'seconds', help: 'seconds to receive request headers (default 30) → 408' },
  { flag: 'request-timeout', env: 'MESHGATE_REQUEST_TIMEOUT', kind: 'seconds', help: 'seconds to receive the whole request (default 300) → 408' },
  { flag: 'keep-alive-timeout', env: 'MESHGATE_KEEP_ALIVE_TIMEOUT', kind: 'seconds', help: 'seconds an idle client connection stays open (default 75)' },
  { flag: 'upstream-idle-timeout', env: 'MESHGATE_UPSTREAM_IDLE_TIMEOUT', kind: 'seconds', help: 'seconds an upstream may stay silent (default 300) → 504 UT / aborted body' },
  { flag: 'shutdown-delay', env: 'MESHGATE_SHUTDOWN_DELAY', kind: 'seconds', help: 'seconds to keep serving after readiness turns false on SIGTERM (default 0)' },
  { flag: 'max-connections', env: 'MESHGATE_MAX_CONNECTIONS', kind: 'count', help: 'client connections per listener (default 10000)' },
  { flag: 'max-concurrent-streams', env: 'MESHGATE_MAX_CONCURRENT_STREAMS', kind: 'count', help: 'HTTP/2 streams per connection (default 100)' },
  { flag: 'overload', env: 'MESHGATE_OVERLOAD', kind: 'enum', values: ['on', 'off'], help: "load shedding with 503 OM: 'on' (default) or 'off'" },
  { flag: 'overload-max-event-loop-delay', env: 'MESHGATE_OVERLOAD_MAX_EVENT_LOOP_DELAY', kind: 'ms', help: 'event-loop delay in ms above which requests are shed (default 1000)' },
  { flag: 'overload-max-heap-bytes', env: 'MESHGATE_OVERLOAD_MAX_HEAP_BYTES', kind: 'bytes', help: "heap used above which requests are shed (default 95 % of V8's limit)" },
  { flag: 'overload-max-rss-bytes', env: 'MESHGATE_OVERLOAD_MAX_RSS_BYTES', kind: 'bytes', help: 'resident memory above which requests are shed (default off)' }
]

/** The `parseArgs` option table of the tuning flags. */
export function tuningArgOptions (): Record<string, { type: 'string' }> {
  const out: Record<string, { type: 'string' }> = {}
  for (const f of TUNING_FLAGS) out[f.flag] = { type: 'string' }
  return out
}

/** Usage lines of the tuning flags. */
export function tuningUsage (): string {
  return TUNING_FLAGS.map(f => `      --${f.flag} ${f.kind === 'enum' ? 'V' : f.kind === 'path' ? 'DIR' : 'N'}`.padEnd(47) + `${f.help} (${f.env})`).join('\n')
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
  const by = (name: string): Flag => TUNING_FLAGS.find(f => f.flag === name)!
  const out: Partial<GatewayOptions> = {}
  const set = <K extends keyof GatewayOptions>(k: K, v: GatewayOptions[K] | undefined): void => { if (v !== undefined) out[k] = v }
  set('credentialsDir', raw(by('credentials-dir')))
  set('pathNormalization', pick<PathNormalization>(by('path-normalization')))
  set('escapedSlashes', pick<EscapedSlashesAction>(by('escaped-slashes')))
  set('headersWithUnderscores', pick<UnderscoreHeadersAction>(by('headers-with-underscores')))
  set('maxHeaderBytes', num(by('max-header-bytes')))
  set('maxHeadersCount', num(by('max-headers-count')))
  set('maxRequestBodyBytes', num(by('max-body-bytes')))
  set('headersTimeoutMs', num(by('headers-timeout')))
  set('requestTimeoutMs', num(by('request-timeout')))
  set('keepAliveTimeoutMs', num(by('keep-alive-timeout')))
  set('upstreamIdleTimeoutMs', num(by('upstream-idle-timeout')))
  set('shutdownDelayMs', num(by('shutdown-delay')))
  set('maxConnections', num(by('max-connections')))
  set('maxConcurrentStreams', num(by('max-concurrent-streams')))
  const overloadSwitch = pick<string>(by('overload'))
  const guards: Record<string, number> = {}
  const delay = num(by('overload-max-event-loop-delay'))
  const heap = num(by('overload-max-heap-bytes'))
  const rss = num(by('overload-max-rss-bytes'))
  if (delay !== undefined) guards.maxEventLoopDelayMs = delay
  if (heap !== undefined) guards.maxHeapUsedBytes = heap
  if (rss !== undefined) guards.maxRssBytes = rss
  if (overloadSwitch === 'off') out.overload = false
  else if (Object.keys(guards).length > 0) out.overload = guards
  return out
}
