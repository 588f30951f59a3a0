// ratings stand-in (upstream: Node.js + httpdispatcher, samples/bookinfo/src/ratings/ratings.js).
//
// GET  /health         -> 200 {"status":"Ratings is healthy"} (500 {"status":"Ratings is not healthy"} while v-unhealthy is unhealthy)
// GET  /ratings/<id>   -> 200 {"id":<id>,"ratings":{"Reviewer1":5,"Reviewer2":4}} (or what was POSTed for <id>)
// POST /ratings/<id>   -> 200 {"id":<id>,"ratings":<body>} (v1) / 501 (v2) / 400 bad JSON
// <id> not numeric     -> 400 {"error":"please provide numeric product ID"}
// Anything else        -> 404, empty body (httpdispatcher's default error listener).
//
// SERVICE_VERSION variants: v-faulty (50 % 503), v-delayed (50 % answered after 7 s),
// v-unavailable (503 every other 60 s), v-unhealthy (every other 15 min: 503 and /health 500),
// v2 (database backed upstream; without a database GET answers 500 "could not connect to
// ratings database" like the MongoDB flavour does when it cannot connect).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { RatingsOptions } from './options.js'
import { readBody, requestPath } from './util.js'

const RATINGS_ROUTE = /^\/ratings\/[0-9]*/
const JSON_HEADERS = { 'Content-type': 'application/json' }

function send (res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, JSON_HEADERS)
  res.end(JSON.stringify(value))
}

export function createRatings (opts: RatingsOptions = {}): Server {
  const version = opts.version ?? 'v1'
  const random = opts.random ?? Math.random
  const now = opts.now ?? Date.now
  const delayMs = opts.delayMs ?? 7000
  const started = now()
  const userAddedRatings = new Map<string, unknown>()
  const timers = new Set<NodeJS.Timeout>()

  // Upstream flips a boolean with setInterval; the same schedule computed from the clock.
  const phase = (period: number): boolean => Math.floor((now() - started) / period) % 2 === 1
  const unavailable = (): boolean => {
    if (version === 'v-unavailable') return phase(opts.unavailablePeriodMs ?? 60000)
    if (version === 'v-unhealthy') return phase(opts.unhealthyPeriodMs ?? 900000)
    return false
  }
  const healthy = (): boolean => version !== 'v-unhealthy' || !phase(opts.unhealthyPeriodMs ?? 900000)

  const getLocalReviews = (productId: number): unknown => {
    const stored = userAddedRatings.get(String(productId))
    if (stored !== undefined) return stored
    return { id: productId, ratings: { Reviewer1: 5, Reviewer2: 4 } }
  }
  const successful = (res: ServerResponse, productId: number): void => send(res, 200, getLocalReviews(productId))
  const serviceUnavailable = (res: ServerResponse): void => send(res, 503, { error: 'Service unavailable' })

  const onGetRatings = (req: IncomingMessage, res: ServerResponse): void => {
    const productId = parseInt((req.url ?? '').split('/').pop() ?? '')
    if (Number.isNaN(productId)) {
      send(res, 400, { error: 'please provide numeric product ID' })
    } else if (version === 'v2') {
      send(res, 500, { error: 'could not connect to ratings database' })
    } else if (version === 'v-faulty') {
      if (random() <= 0.5) serviceUnavailable(res)
      else successful(res, productId)
    } else if (version === 'v-delayed') {
      if (random() <= 0.5) {
        const timer = setTimeout(() => { timers.delete(timer); successful(res, productId) }, delayMs)
        timers.add(timer)
      } else {
        successful(res, productId)
      }
    } else if (version === 'v-unavailable' || version === 'v-unhealthy') {
      if (unavailable()) serviceUnavailable(res)
      else successful(res, productId)
    } else {
      successful(res, productId)
    }
  }

  const onPostRatings = (req: IncomingMessage, res: ServerResponse, body: string): void => {
    const productId = parseInt((req.url ?? '').split('/').pop() ?? '')
    if (Number.isNaN(productId)) {
      send(res, 400, { error: 'please provide numeric product ID' })
      return
    }
    let ratings: unknown
    try {
      ratings = JSON.parse(body)
    } catch {
      send(res, 400, { error: 'please provide valid ratings JSON' })
      return
    }
    if (version === 'v2') {
      send(res, 501, { error: 'Post not implemented for database backed ratings' })
    } else {
      userAddedRatings.set(String(productId), { id: productId, ratings })
      send(res, 200, getLocalReviews(productId))
    }
  }

  const notFound = (res: ServerResponse): void => {
    res.writeHead(404)
    res.end()
  }

  const server = createServer((req, res) => {
    const pathname = requestPath(req.url)
    const method = (req.method ?? 'GET').toLowerCase()
    try {
      if (method === 'post') {
        readBody(req).then(body => {
          if (RATINGS_ROUTE.test(pathname)) onPostRatings(req, res, body)
          else notFound(res)
        }, () => { res.destroy() })
        return
      }
      req.resume()
      if (method === 'get' && pathname === '/health') {
        if (healthy()) send(res, 200, { status: 'Ratings is healthy' })
        else send(res, 500, { status: 'Ratings is not healthy' })
      } else if (method === 'get' && RATINGS_ROUTE.test(pathname)) {
        onGetRatings(req, res)
      } else {
        notFound(res)
      }
    } catch {
      res.destroy()
    }
  })
  server.on('close', () => {
    for (const t of timers) clearTimeout(t)
    timers.clear()
  })
  return server
}
