// reviews stand-in (upstream: Java JAX-RS on OpenLiberty,
// samples/bookinfo/src/reviews/reviews-application/.../LibertyRestEndpoint.java).
//
// GET /health               -> 200 {"status": "Reviews is healthy"}
// GET /reviews/<productId>  -> 200, body built by string concatenation (exact bytes below);
//                              with ENABLE_RATINGS it first calls ratings (timeout 10000 ms
//                              when STAR_COLOR is "black", 2500 ms otherwise) and reports a
//                              ratings failure inside the body. <productId> must be a Java int,
//                              otherwise 404 (JAX-RS path parameter conversion failure).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { httpGet, serviceBaseUrl } from './http-client.js'
import type { ReviewsOptions } from './options.js'
import { B3_HEADERS, TRACE_HEADERS, USER_HEADERS, copyHeaders, requestPath, safeDecode } from './util.js'

/** Headers reviews copies from its incoming request onto the ratings call. */
export const REVIEWS_PROPAGATED_HEADERS: readonly string[] = [...TRACE_HEADERS, ...B3_HEADERS, 'sw8', 'end-user', ...USER_HEADERS]

const HEALTH_BODY = '{"status": "Reviews is healthy"}'
const RATINGS_ERROR = ', "rating": {"error": "Ratings service is currently unavailable"}'

/** Java Integer.parseInt (ASCII digits): optional sign, decimal digits, 32-bit range. */
export function javaParseInt (s: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined
  const v = Number(s)
  if (v < -(2 ** 31) || v > 2 ** 31 - 1) return undefined
  return v === 0 ? 0 : v // no -0
}

/** The exact body upstream reviews builds (stars -1 = ratings unavailable for that reviewer). */
export function reviewsBody (productId: string, podname: string, clustername: string, ratingsEnabled: boolean, starColor: string, stars1: number, stars2: number): string {
  const rating = (stars: number): string => {
    if (!ratingsEnabled) return ''
    if (stars !== -1) return `, "rating": {"stars": ${stars}, "color": "${starColor}"}`
    return RATINGS_ERROR
  }
  let result = '{'
  result += `"id": "${productId}",`
  result += `"podname": "${podname}",`
  result += `"clustername": "${clustername}",`
  result += '"reviews": ['
  result += '{'
  result += '  "reviewer": "Reviewer1",'
  result += '  "text": "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"'
  result += rating(stars1)
  result += '},'
  result += '{'
  result += '  "reviewer": "Reviewer2",'
  result += '  "text": "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."'
  result += rating(stars2)
  result += '}'
  result += ']'
  result += '}'
  return result
}

/** Thrown for answers the Java code would fail on (non-object JSON, wrong types): reviews then answers 500. */
class ReviewsProcessingError extends Error {}

/** JsonNumber.intValue(): truncate, keep the low 32 bits. */
function javaIntValue (v: unknown, key: string): number {
  if (typeof v !== 'number') throw new ReviewsProcessingError(`java.lang.ClassCastException: ${key} is not a JsonNumber`)
  return Math.trunc(v) | 0
}

export function createReviews (opts: ReviewsOptions = {}): Server {
  const version = opts.version ?? 'v1'
  const ratingsEnabled = opts.enableRatings ?? version !== 'v1'
  const starColor = opts.starColor ?? (version === 'v3' ? 'red' : 'black')
  const podname = opts.podname ?? `reviews-${version}-local`
  const clustername = opts.clustername ?? 'null'
  const ratingsService = `${serviceBaseUrl(opts.ratingsHostname ?? 'ratings', opts.servicesDomain ?? '', opts.ratingsPort ?? '9080')}/ratings`
  const timeoutMs = opts.ratingsTimeoutMs ?? (starColor === 'black' ? 10000 : 2500)

  /** Parsed ratings answer, or null when ratings is unavailable (non-200 or the call threw). */
  const getRatings = async (productId: string, req: IncomingMessage): Promise<Record<string, unknown> | null> => {
    const headers = copyHeaders(req, REVIEWS_PROPAGATED_HEADERS, { accept: 'application/json' })
    let status: number
    let body: string
    try {
      const r = await httpGet(`${ratingsService}/${productId}`, { headers, timeoutMs, proxy: opts.proxy })
      status = r.status
      body = r.body
    } catch {
      return null
    }
    if (status !== 200) return null
    let parsed: unknown
    try {
      parsed = JSON.parse(body)
    } catch (err) {
      throw new ReviewsProcessingError(`javax.json.stream.JsonParsingException: ${(err as Error).message}`)
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ReviewsProcessingError('javax.json.JsonException: Cannot read JSON object, found JSON array or value')
    }
    return parsed as Record<string, unknown>
  }

  const bookReviewsById = async (productId: number, req: IncomingMessage): Promise<string> => {
    let stars1 = -1
    let stars2 = -1
    if (ratingsEnabled) {
      const resp = await getRatings(String(productId), req)
      if (resp !== null && Object.prototype.hasOwnProperty.call(resp, 'ratings')) {
        const ratings = resp.ratings
        if (ratings === null || typeof ratings !== 'object' || Array.isArray(ratings)) {
          throw new ReviewsProcessingError('java.lang.ClassCastException: ratings is not a JsonObject')
        }
        const r = ratings as Record<string, unknown>
        if (Object.prototype.hasOwnProperty.call(r, 'Reviewer1')) stars1 = javaIntValue(r.Reviewer1, 'Reviewer1')
        if (Object.prototype.hasOwnProperty.call(r, 'Reviewer2')) stars2 = javaIntValue(r.Reviewer2, 'Reviewer2')
      }
    }
    return reviewsBody(String(productId), podname, clustername, ratingsEnabled, starColor, stars1, stars2)
  }

  const sendText = (req: IncomingMessage, res: ServerResponse, status: number, contentType: string, body: string): void => {
    res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  return createServer((req, res) => {
    req.resume()
    const path = requestPath(req.url)
    const method = req.method ?? 'GET'
    const isGet = method === 'GET' || method === 'HEAD'
    const reviewsMatch = /^\/reviews\/([^/]+)$/.exec(path)
    if (path === '/health' || reviewsMatch !== null) {
      if (!isGet) {
        res.setHeader('Allow', 'HEAD,GET,OPTIONS')
        sendText(req, res, method === 'OPTIONS' ? 200 : 405, 'text/plain', '')
        return
      }
    }
    if (path === '/health') {
      sendText(req, res, 200, 'application/json', HEALTH_BODY)
      return
    }
    if (reviewsMatch !== null) {
      const productId = javaParseInt(safeDecode(reviewsMatch[1]))
      if (productId === undefined) {
        sendText(req, res, 404, 'text/plain', '')
        return
      }
      bookReviewsById(productId, req).then(
        body => sendText(req, res, 200, 'application/json', body),
        (err: unknown) => sendText(req, res, 500, 'text/plain', `Error 500: ${(err as Error).message}`)
      )
      return
    }
    sendText(req, res, 404, 'text/plain', `Error 404: java.io.FileNotFoundException: SRVE0190E: File not found: ${path}`)
  })
}
