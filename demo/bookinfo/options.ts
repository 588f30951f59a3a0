// Options of the Bookinfo stand-ins and how they are read from the environment,
// mirroring the upstream services' environment variables.

import { proxyFromEnv, type ProxyConfig } from './http-client.js'

export type ServiceName = 'productpage' | 'details' | 'reviews' | 'ratings'
export const SERVICE_NAMES: readonly ServiceName[] = ['productpage', 'details', 'reviews', 'ratings']

export interface CommonOptions {
  /** Listen address for startService (default 127.0.0.1). */
  host?: string
  /** Listen port for startService (0 = any free port; default 9080). */
  port?: number
  /** SERVICE_VERSION (default v1). */
  version?: string
  /** Forward proxy for outbound calls (HTTP_PROXY / http_proxy). */
  proxy?: ProxyConfig | null
}

export interface ProductpageOptions extends CommonOptions {
  detailsHostname?: string // DETAILS_HOSTNAME, default details
  detailsPort?: string | number // DETAILS_SERVICE_PORT, default 9080
  reviewsHostname?: string // REVIEWS_HOSTNAME, default reviews
  reviewsPort?: string | number // REVIEWS_SERVICE_PORT, default 9080
  ratingsHostname?: string // RATINGS_HOSTNAME, default ratings
  ratingsPort?: string | number // RATINGS_SERVICE_PORT, default 9080
  servicesDomain?: string // SERVICES_DOMAIN, appended as .<domain>; default none
  /** FLOOD_FACTOR: extra (ignored) reviews calls per /productpage. Default 0. */
  floodFactor?: number
  /** Key signing the `session` cookie. Default: random per process. */
  sessionSecret?: string | Buffer
  /** Directory served under /static. Default: demo/bookinfo/static. */
  staticDir?: string
  /** Per-call timeouts (upstream: 3 s each; reviews gets 2 attempts). */
  detailsTimeoutMs?: number
  reviewsTimeoutMs?: number
  ratingsTimeoutMs?: number
}

/** details has no options of its own (details v2's external book service is not supported). */
export type DetailsOptions = CommonOptions

export interface ReviewsOptions extends CommonOptions {
  /** ENABLE_RATINGS (v1 false, v2/v3 true). */
  enableRatings?: boolean
  /** STAR_COLOR (default black; red for v3). */
  starColor?: string
  /** HOSTNAME (default reviews-<version>-local). */
  podname?: string
  /** CLUSTER_NAME (unset -> the literal text "null", like Java string concatenation). */
  clustername?: string
  ratingsHostname?: string
  ratingsPort?: string | number
  servicesDomain?: string
  /** Ratings call timeout; default 10000 ms when starColor is "black", else 2500 ms. */
  ratingsTimeoutMs?: number
}

export interface RatingsOptions extends CommonOptions {
  /** Random source for v-faulty / v-delayed (default Math.random). */
  random?: () => number
  /** v-delayed delay (default 7000 ms). */
  delayMs?: number
  /** v-unavailable toggle period (default 60000 ms). */
  unavailablePeriodMs?: number
  /** v-unhealthy toggle period (default 900000 ms). */
  unhealthyPeriodMs?: number
  /** Clock for the toggling variants (default Date.now). */
  now?: () => number
}

export interface OptionsMap {
  productpage: ProductpageOptions
  details: DetailsOptions
  reviews: ReviewsOptions
  ratings: RatingsOptions
}

type Env = NodeJS.ProcessEnv | Record<string, string | undefined>

function common (env: Env): CommonOptions {
  const out: CommonOptions = { version: env.SERVICE_VERSION ?? 'v1' }
  const proxy = proxyFromEnv(env)
  if (proxy !== undefined) out.proxy = proxy
  return out
}

/** Read a service's options from environment variables, like the upstream images do. */
export function optionsFromEnv<N extends ServiceName> (name: N, env: Env = process.env): OptionsMap[N] {
  const base = common(env)
  switch (name) {
    case 'productpage': {
      const o: ProductpageOptions = {
        ...base,
        detailsHostname: env.DETAILS_HOSTNAME ?? 'details',
        detailsPort: env.DETAILS_SERVICE_PORT ?? '9080',
        reviewsHostname: env.REVIEWS_HOSTNAME ?? 'reviews',
        reviewsPort: env.REVIEWS_SERVICE_PORT ?? '9080',
        ratingsHostname: env.RATINGS_HOSTNAME ?? 'ratings',
        ratingsPort: env.RATINGS_SERVICE_PORT ?? '9080',
        servicesDomain: env.SERVICES_DOMAIN ?? '',
        floodFactor: env.FLOOD_FACTOR === undefined ? 0 : parseInt(env.FLOOD_FACTOR, 10) || 0
      }
      return o as OptionsMap[N]
    }
    case 'reviews': {
      const version = base.version ?? 'v1'
      const o: ReviewsOptions = {
        ...base,
        // Java Boolean.valueOf: true only for "true" (any case). The images bake
        // ENABLE_RATINGS=false for v1 and true for v2/v3.
        enableRatings: env.ENABLE_RATINGS !== undefined ? env.ENABLE_RATINGS.toLowerCase() === 'true' : version !== 'v1',
        starColor: env.STAR_COLOR ?? (version === 'v3' ? 'red' : 'black'),
        podname: env.HOSTNAME ?? `reviews-${version}-local`,
        clustername: env.CLUSTER_NAME ?? 'null',
        ratingsHostname: env.RATINGS_HOSTNAME ?? 'ratings',
        ratingsPort: env.RATINGS_SERVICE_PORT ?? '9080',
        servicesDomain: env.SERVICES_DOMAIN ?? ''
      }
      return o as OptionsMap[N]
    }
    case 'details':
    case 'ratings':
      return { ...base } as OptionsMap[N]
    default:
      throw new Error(`unknown Bookinfo service: ${String(name)}`)
  }
}
