// Outbound HTTP for the Bookinfo stand-ins (productpage -> details/reviews/ratings,
// reviews -> ratings). One GET per call, no pooling (`agent: false`), a hard deadline
// covering the whole exchange until the body is read, and forward-proxy support the
// way Python requests / curl use HTTP_PROXY: connect to the proxy and send the request
// line in absolute form (`GET http://reviews:9080/reviews/0 HTTP/1.1`, `Host: reviews:9080`).

import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'

export interface ProxyConfig {
  /** Proxy host name or IP (no brackets for IPv6). */
  host: string
  port: number
  /** Entries of NO_PROXY / no_proxy; a target matching one is called directly. */
  noProxy?: string[]
}

export interface HttpGetOptions {
  headers?: OutgoingHttpHeaders
  /** Deadline for the whole request (connect, send, response head and body). */
  timeoutMs: number
  /** Forward proxy; undefined or null means a direct connection. */
  proxy?: ProxyConfig | null
}

export interface HttpResult {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

export class HttpTimeoutError extends Error {
  override name = 'HttpTimeoutError'
}

/** `http://<host>[.<domain>]:<port>` as the upstream services build their targets. */
export function serviceBaseUrl (hostname: string, servicesDomain: string, port: string | number): string {
  const domain = servicesDomain === '' ? '' : `.${servicesDomain}`
  return `http://${hostname}${domain}:${port}`
}

/**
 * The forward proxy from the environment, as Python's urllib/requests read it:
 * `http_proxy` (lower case) wins over `HTTP_PROXY`; an empty lower-case value disables
 * the proxy; a value without a scheme is taken as `http://<value>`; default port 80.
 * `no_proxy` / `NO_PROXY` (comma separated) lists hosts reached directly.
 */
export function proxyFromEnv (env: NodeJS.ProcessEnv | Record<string, string | undefined>): ProxyConfig | undefined {
  let raw: string | undefined
  if (env.http_proxy !== undefined) raw = env.http_proxy
  else raw = env.HTTP_PROXY
  if (raw === undefined || raw.trim() === '') return undefined
  const proxy = parseProxyUrl(raw.trim())
  const np = env.no_proxy ?? env.NO_PROXY
  if (np !== undefined && np.trim() !== '') {
    proxy.noProxy = np.replace(/\s/g, '').split(',').filter(x => x !== '')
  }
  return proxy
}

export function parseProxyUrl (raw: string): ProxyConfig {
  const withScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(raw) ? raw : `http://${raw}`
  let u: URL
  try {
    u = new URL(withScheme)
  } catch {
    throw new Error(`invalid HTTP proxy URL: ${raw}`)
  }
  if (u.protocol !== 'http:') throw new Error(`unsupported HTTP proxy scheme ${u.protocol} in ${raw} (only http:// proxies)`)
  return { host: stripBrackets(u.hostname), port: u.port === '' ? 80 : Number(u.port) }
}

function stripBrackets (h: string): string {
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h
}

/** requests' no_proxy test: `*`, exact host, `host:port`, or a domain suffix (leading dot optional). */
export function bypassesProxy (hostname: string, port: string, noProxy: string[] | undefined): boolean {
  if (noProxy === undefined) return false
  const host = hostname.toLowerCase()
  for (let entry of noProxy) {
    entry = entry.toLowerCase()
    if (entry === '*') return true
    if (entry === `${host}:${port}`) return true
    const bare = entry.startsWith('.') ? entry.slice(1) : entry
    if (host === bare || host.endsWith(`.${bare}`)) return true
  }
  return false
}

/** GET `url`; resolves with status, headers and the whole body, rejects on error or deadline. */
export function httpGet (url: string, opts: HttpGetOptions): Promise<HttpResult> {
  const target = new URL(url)
  if (target.protocol !== 'http:') return Promise.reject(new Error(`unsupported URL scheme in ${url}`))
  const hostname = stripBrackets(target.hostname)
  const port = target.port === '' ? 80 : Number(target.port)
  const pathAndQuery = target.pathname + target.search
  const headers: OutgoingHttpHeaders = {}
  for (const [k, v] of Object.entries(opts.headers ?? {})) {
    if (v !== undefined && k.toLowerCase() !== 'host') headers[k] = v
  }
  headers.host = target.host // `reviews:9080` (port omitted only when it is 80)

  const proxy = opts.proxy ?? undefined
  const viaProxy = proxy !== undefined && !bypassesProxy(hostname, String(port), proxy.noProxy)
  const reqOpts = viaProxy
    ? { host: proxy.host, port: proxy.port, path: `http://${target.host}${pathAndQuery}` }
    : { host: hostname, port, path: pathAndQuery }

  return new Promise<HttpResult>((resolve, reject) => {
    let settled = false
    const finish = (err: Error | undefined, res?: HttpResult): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err !== undefined) reject(err)
      else resolve(res as HttpResult)
    }
    const req = httpRequest({ ...reqOpts, method: 'GET', headers, agent: false, setHost: false })
    const timer = setTimeout(() => {
      finish(new HttpTimeoutError(`GET ${url}: no complete response within ${opts.timeoutMs} ms`))
      req.destroy()
    }, opts.timeoutMs)
    req.on('error', err => finish(err))
    req.on('response', res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') })
      })
      res.on('aborted', () => finish(new Error(`GET ${url}: response aborted`)))
      res.on('error', err => finish(err))
      res.on('close', () => finish(new Error(`GET ${url}: connection closed before the response ended`)))
    })
    req.end()
  })
}
