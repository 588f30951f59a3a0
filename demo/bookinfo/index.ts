// Bookinfo stand-ins: faithful local replacements for the Istio Bookinfo services
// (productpage, details, reviews, ratings), used by the local demo and the e2e tests.

import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createDetails } from './details.js'
import { createProductpage } from './productpage.js'
import { createRatings } from './ratings.js'
import { createReviews } from './reviews.js'
import type { OptionsMap, ServiceName } from './options.js'

export { createDetails, detailsBody, rubyInteger } from './details.js'
export { createRatings } from './ratings.js'
export { createReviews, reviewsBody, javaParseInt, REVIEWS_PROPAGATED_HEADERS } from './reviews.js'
export {
  createProductpage,
  renderProductpage,
  defaultStaticDir,
  PRODUCTPAGE_PROPAGATED_HEADERS,
  B3_HEADERS,
  DETAILS_UNAVAILABLE,
  REVIEWS_UNAVAILABLE,
  RATINGS_UNAVAILABLE,
  type ProductpageView
} from './productpage.js'
export { optionsFromEnv, SERVICE_NAMES } from './options.js'
export type { ServiceName, OptionsMap, CommonOptions, ProductpageOptions, DetailsOptions, ReviewsOptions, RatingsOptions } from './options.js'
export { httpGet, proxyFromEnv, parseProxyUrl, bypassesProxy, serviceBaseUrl, HttpTimeoutError } from './http-client.js'
export type { ProxyConfig, HttpGetOptions, HttpResult } from './http-client.js'

export interface RunningService {
  name: ServiceName
  version: string
  host: string
  port: number
  /** http://host:port */
  url: string
  server: Server
  /** Stop listening, drop open connections, resolve when closed. */
  close: () => Promise<void>
}

/** Create (not listening) the server of a Bookinfo service. */
export function createService<N extends ServiceName> (name: N, opts: OptionsMap[N] = {}): Server {
  switch (name) {
    case 'productpage': return createProductpage(opts)
    case 'details': return createDetails(opts)
    case 'reviews': return createReviews(opts)
    case 'ratings': return createRatings(opts)
    default: throw new Error(`unknown Bookinfo service: ${String(name)}`)
  }
}

/** Create a Bookinfo service and listen on opts.host (default 127.0.0.1) / opts.port (default 9080, 0 = free port). */
export async function startService<N extends ServiceName> (name: N, opts: OptionsMap[N] = {}): Promise<RunningService> {
  const server = createService(name, opts)
  const host = opts.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err)
    server.once('error', onError)
    server.listen(opts.port ?? 9080, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= new Promise<void>(resolve => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
    return closing
  }
  const urlHost = host.includes(':') ? `[${host}]` : host
  return { name, version: opts.version ?? 'v1', host, port, url: `http://${urlHost}:${port}`, server, close }
}
