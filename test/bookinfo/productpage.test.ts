import t from 'tap'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  startService,
  PRODUCTPAGE_PROPAGATED_HEADERS,
  defaultStaticDir,
  B3_HEADERS,
  type ProductpageOptions,
  type RunningService
} from '../../demo/bookinfo/index.js'
import { call, fake, json } from '../helpers/stand-ins.js'
import { closedPort } from '../helpers/upstream.js'

// productpage stand-in against real backends (stand-ins or fakes) on 127.0.0.1:0.

/** productpage on a free port, calling the given backends (ports) on loopback. */
function productpageOn (backends: { details?: number; reviews?: number; ratings?: number }, extra: ProductpageOptions = {}): Promise<RunningService> {
  const on = (name: 'details' | 'reviews' | 'ratings'): ProductpageOptions => backends[name] === undefined ? {} : { [`${name}Hostname`]: '127.0.0.1', [`${name}Port`]: backends[name] }
  return startService('productpage', { port: 0, ...on('details'), ...on('reviews'), ...on('ratings'), ...extra })
}

/** A full Bookinfo (details, ratings, reviews <version>, productpage) on loopback. */
async function bookinfo (t: { teardown: (fn: () => Promise<void>) => void }, reviewsVersion: string, extra: ProductpageOptions = {}): Promise<{ pp: RunningService }> {
  const details = await startService('details', { port: 0 })
  const ratings = await startService('ratings', { port: 0 })
  const reviews = await startService('reviews', { port: 0, version: reviewsVersion, podname: `reviews-${reviewsVersion}-abc`, ratingsHostname: '127.0.0.1', ratingsPort: ratings.port })
  const pp = await productpageOn({ details: details.port, reviews: reviews.port, ratings: ratings.port }, extra)
  t.teardown(async () => { await pp.close(); await reviews.close(); await ratings.close(); await details.close() })
  return { pp }
}

const FILLED = '<svg id="glyphicon glyphicon-star" class="h-5 w-5 flex-none" viewBox="0 0 20 20" fill="currentColor" aria-hidden="true">'
const EMPTY = '<svg xmlns="http://www.w3.org/2000/svg" fill="none" viewBox="0 0 24 24" stroke-width="1.5" stroke="currentColor" class="h-5 w-5 flex-none">'
const count = (s: string, sub: string): number => s.split(sub).length - 1

t.test('productpage with reviews v1', async t => {
  const { pp } = await bookinfo(t, 'v1')
  const r = await call(pp.port, '/productpage?u=normal')
  t.equal(r.status, 200)
  t.equal(r.headers['content-type'], 'text/html; charset=utf-8')
  t.match(r.body, '<title>Simple Bookstore App</title>')
  t.match(r.body, 'BookInfo Sample')
  t.match(r.body, /<h1 [^>]*>The Comedy of Errors<\/h1>/)
  t.match(r.body, '<b>William Shakespeare\'s</b> early plays')
  t.match(r.body, /<h4 [^>]*>Book Details<\/h4>/)
  for (const v of ['1234567890', 'PublisherA', '>200<', 'paperback', 'English']) t.match(r.body, v)
  t.match(r.body, '<h4 class="text-3xl font-semibold">Book Reviews</h4>')
  t.match(r.body, '<p>"An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"</p>')
  t.match(r.body, '<div class="font-semibold text-gray-900">Reviewer1</div>')
  t.match(r.body, '<div class="font-semibold text-gray-900">Reviewer2</div>')
  t.match(r.body, /Reviews served by: \s*reviews-v1-abc/)
  t.notMatch(r.body, 'glyphicon glyphicon-star')
  t.notMatch(r.body, 'Ratings service is currently unavailable')
  t.notMatch(r.body, 'on cluster', 'clustername "null" hidden')
  t.notMatch(r.body, 'Error fetching')
  // anonymous: Sign in button and the login dialog
  t.match(r.body, /<button [^>]*id="sign-in-button"[^>]*>Sign in<\/button>/)
  t.match(r.body, /<dialog id="dialog"/)
  t.match(r.body, /<form [^>]*method="post" action='login'/)
  t.match(r.body, /<input id="username" name="username"/)
  t.match(r.body, /<input id="password" name="passwd" type="password"/)
  t.match(r.body, /<button type="submit"[^>]*>Sign in<\/button>/)
  t.match(r.body, 'showModal()')
  t.notMatch(r.body, 'Sign out')
  t.notMatch(r.body, /<script[^>]+src="https?:/, 'no external scripts')
})

t.test('productpage with reviews v2 (black stars) and v3 (red stars)', async t => {
  const { pp: p2 } = await bookinfo(t, 'v2')
  const r2 = await call(p2.port, '/productpage')
  t.equal(r2.status, 200)
  t.match(r2.body, '<div class="flex gap-x-1 text-black-500">')
  t.notMatch(r2.body, 'gap-x-1 text-red-500')
  t.equal(count(r2.body, FILLED), 9, '5 + 4 filled stars')
  t.equal(count(r2.body, EMPTY), 1, '1 empty star')
  t.match(r2.body, /Reviews served by: \s*reviews-v2-abc/)

  const { pp: p3 } = await bookinfo(t, 'v3')
  const r3 = await call(p3.port, '/productpage')
  t.match(r3.body, '<div class="flex gap-x-1 text-red-500">')
  t.notMatch(r3.body, 'text-black-500')
  t.equal(count(r3.body, FILLED), 9)
  t.equal(count(r3.body, EMPTY), 1)
  t.match(r3.body, /Reviews served by: \s*reviews-v3-abc/)
})

t.test('productpage: reviews v2 with ratings down shows the rating error', async t => {
  const details = await startService('details', { port: 0 })
  const reviews = await startService('reviews', { port: 0, version: 'v2', ratingsHostname: '127.0.0.1', ratingsPort: await closedPort() })
  const pp = await productpageOn({ details: details.port, reviews: reviews.port })
  t.teardown(async () => { await pp.close(); await reviews.close(); await details.close() })
  const r = await call(pp.port, '/productpage')
  t.equal(r.status, 200)
  t.equal(count(r.body, '<p class="text-red-500">Ratings service is currently unavailable</p>'), 2)
  t.notMatch(r.body, 'glyphicon glyphicon-star')
  t.notMatch(r.body, 'Error fetching product reviews')
})

t.test('productpage: details and reviews unreachable -> error sections, still 200', async t => {
  const dead = await closedPort()
  const pp = await productpageOn({ details: dead, reviews: dead })
  t.teardown(pp.close)
  const r = await call(pp.port, '/productpage')
  t.equal(r.status, 200)
  t.match(r.body, '<p class="text-2xl text-red-500">Error fetching product details</p>')
  t.match(r.body, '<p class="text-lg text-gray-600">Sorry, product details are currently unavailable for this book.</p>')
  t.match(r.body, '<p class="text-2xl text-red-500">Error fetching product reviews</p>')
  t.match(r.body, '<p class="text-lg text-gray-600">Sorry, product reviews are currently unavailable for this book.</p>')
  t.notMatch(r.body, 'Book Details')
  t.match(r.body, 'The Comedy of Errors')

  const api = await call(pp.port, '/api/v1/products/0')
  t.equal(api.status, 500, 'exception -> 500')
  t.equal(api.body, '{"error": "Sorry, product details are currently unavailable for this book."}')
  t.equal(api.headers['content-type'], 'application/json')
  const apiR = await call(pp.port, '/api/v1/products/0/reviews')
  t.equal(apiR.status, 500)
  t.equal(apiR.body, '{"error": "Sorry, product reviews are currently unavailable for this book."}')
  const apiRt = await call(pp.port, '/api/v1/products/0/ratings')
  t.equal(apiRt.status, 500)
  t.equal(apiRt.body, '{"error": "Sorry, product ratings are currently unavailable for this book."}')
})

t.test('productpage retries reviews once on non-200; status of the last attempt', async t => {
  const details = await startService('details', { port: 0 })
  t.teardown(details.close)
  const reviewsBody = '{"id": "0","podname": "flaky","clustername": "null","reviews": [{  "reviewer": "Reviewer1",  "text": "t1"},{  "reviewer": "Reviewer2",  "text": "t2"}]}'
  const flaky = await fake((_req, res, n) => n === 1 ? json(res, 503, 'no healthy upstream') : json(res, 200, reviewsBody))
  t.teardown(flaky.close)
  const pp = await productpageOn({ details: details.port, reviews: flaky.port })
  t.teardown(pp.close)
  const r = await call(pp.port, '/productpage')
  t.equal(flaky.seen.length, 2, 'second attempt after a 503')
  t.match(r.body, 'Book Reviews')
  t.match(r.body, /Reviews served by: \s*flaky/)

  let statuses = [503, 504]
  const broken = await fake((_req, res, n) => json(res, statuses[(n - 1) % 2], 'upstream request timeout'))
  t.teardown(broken.close)
  const pp2 = await productpageOn({ details: details.port, reviews: broken.port })
  t.teardown(pp2.close)
  const r2 = await call(pp2.port, '/productpage')
  t.equal(r2.status, 200)
  t.equal(broken.seen.length, 2, 'exactly two attempts')
  t.match(r2.body, 'Error fetching product reviews')
  statuses = [500, 404]
  const api = await call(pp2.port, '/api/v1/products/0/reviews')
  t.equal(api.status, 404, 'status of the LAST attempt')
  t.equal(api.body, '{"error": "Sorry, product reviews are currently unavailable for this book."}')
  t.equal(broken.seen.length, 4)
})

t.test('productpage timeouts: details 3 s; reviews per-attempt timeout, 2 attempts', async t => {
  const hang = await fake(() => { /* never answers */ })
  t.teardown(hang.close)
  const reviews = await fake((_req, res) => json(res, 200, '{"id": "0","podname": "ok","clustername": "null","reviews": []}'))
  t.teardown(reviews.close)
  const pp = await productpageOn({ details: hang.port, reviews: reviews.port })
  t.teardown(pp.close)
  const r = await call(pp.port, '/productpage')
  t.ok(r.ms >= 2900 && r.ms < 4000, `details timed out after ~3 s (${r.ms} ms)`)
  t.match(r.body, 'Error fetching product details')
  t.match(r.body, 'Book Reviews')

  const pp2 = await productpageOn({ details: reviews.port, reviews: hang.port }, { reviewsTimeoutMs: 300 })
  t.teardown(pp2.close)
  const before = hang.seen.length
  const r2 = await call(pp2.port, '/productpage')
  t.equal(hang.seen.length - before, 2, 'two attempts')
  t.ok(r2.ms >= 580 && r2.ms < 1500, `2 x 300 ms (${r2.ms} ms)`)
  t.match(r2.body, 'Error fetching product reviews')
})

t.test('login, end-user propagation, nav, logout', async t => {
  const details = await startService('details', { port: 0 })
  t.teardown(details.close)
  const reviews = await fake((_req, res) => json(res, 200, '{"id": "0","podname": "cap","clustername": "null","reviews": [{  "reviewer": "Reviewer1",  "text": "x"}]}'))
  t.teardown(reviews.close)
  const pp = await productpageOn({ details: details.port, reviews: reviews.port })
  t.teardown(pp.close)

  // anonymous: no end-user, even when the client sends one
  await call(pp.port, '/productpage', { headers: { 'end-user': 'mallory' } })
  t.equal(reviews.seen[0].headers['end-user'], undefined, 'incoming end-user is NOT copied')

  const login = await call(pp.port, '/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', referer: 'http://localhost:8080/productpage' },
    body: 'username=jason&passwd=whatever'
  })
  t.equal(login.status, 302)
  t.equal(login.headers.location, 'http://localhost:8080/productpage', 'redirect to Referer')
  const setCookie = login.headers['set-cookie']?.[0] ?? ''
  t.match(setCookie, /^session=[^;]+; HttpOnly; Path=\//)
  const cookie = setCookie.split(';')[0]

  const page = await call(pp.port, '/productpage', { headers: { cookie } })
  t.equal(page.status, 200)
  t.equal(reviews.seen[1].headers['end-user'], 'jason', 'end-user from the session')
  t.equal(reviews.seen[1].headers.cookie, cookie, 'cookie forwarded')
  t.match(page.body, '<p class="text-base font-medium text-gray-50">jason</p>')
  t.match(page.body, '<a href="logout" class="text-xs font-medium text-gray-400 hover:text-gray-300">Sign out</a>')
  t.notMatch(page.body, 'id="sign-in-button"')

  // a tampered cookie is ignored
  await call(pp.port, '/productpage', { headers: { cookie: cookie.slice(0, -2) + 'xx' } })
  t.equal(reviews.seen[2].headers['end-user'], undefined, 'bad signature -> anonymous')

  // the cookie of another productpage process (other secret) is not accepted
  const other = await productpageOn({ details: details.port, reviews: reviews.port })
  t.teardown(other.close)
  await call(other.port, '/productpage', { headers: { cookie } })
  t.equal(reviews.seen[3].headers['end-user'], undefined)

  const logout = await call(pp.port, '/logout', { headers: { cookie, referer: 'http://localhost:8080/productpage' } })
  t.equal(logout.status, 302)
  t.equal(logout.headers.location, 'http://localhost:8080/productpage')
  t.equal(logout.headers['set-cookie']?.[0], 'session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; Path=/')

  const noRef = await call(pp.port, '/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=x' })
  t.equal(noRef.status, 302)
  t.equal(noRef.headers.location, 'None', 'Flask redirect(None) without a Referer')

  t.equal((await call(pp.port, '/login')).status, 405, 'GET /login not allowed')
  const escaped = await call(pp.port, '/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', referer: '/productpage' }, body: 'username=%3Cb%3Eevil' })
  const evil = await call(pp.port, '/productpage', { headers: { cookie: (escaped.headers['set-cookie']?.[0] ?? '').split(';')[0] } })
  t.match(evil.body, '&lt;b&gt;evil', 'user name is HTML-escaped')
})

t.test('productpage header propagation', async t => {
  const details = await fake((_req, res) => json(res, 200, '{"id":0}'))
  const reviews = await fake((_req, res) => json(res, 200, '{"reviews": []}'))
  const ratings = await fake((_req, res) => json(res, 200, '{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}'))
  t.teardown(async () => { await details.close(); await reviews.close(); await ratings.close() })
  const pp = await productpageOn({ details: details.port, reviews: reviews.port, ratings: ratings.port })
  t.teardown(pp.close)

  const sent: Record<string, string> = {}
  for (const h of [...PRODUCTPAGE_PROPAGATED_HEADERS, ...B3_HEADERS]) sent[h] = `v-${h}`
  sent['x-b3-traceid'] = '80f198ee56343ba864fe8b2a57d3eff7'
  sent['x-b3-spanid'] = 'e457b5a2e4d86bd1'
  sent['x-b3-sampled'] = '1'
  sent['end-user'] = 'someone'
  sent['x-other'] = 'no'
  await call(pp.port, '/productpage', { headers: sent })
  await call(pp.port, '/api/v1/products/0/ratings', { headers: sent })

  for (const [name, f, path] of [['details', details, '/details/0'], ['reviews', reviews, '/reviews/0'], ['ratings', ratings, '/ratings/0']] as const) {
    t.equal(f.seen.length, 1, `${name} called once`)
    const h = f.seen[0].headers
    t.equal(f.seen[0].url, path)
    for (const k of [...PRODUCTPAGE_PROPAGATED_HEADERS, ...B3_HEADERS]) t.equal(h[k], sent[k], `${name}: ${k}`)
    t.equal(h['end-user'], undefined, `${name}: end-user only from the session`)
    t.equal(h['x-other'], undefined)
  }
  t.same([...PRODUCTPAGE_PROPAGATED_HEADERS].sort(), [
    'authorization', 'cookie', 'grpc-trace-bin', 'jwt', 'sw8', 'traceparent', 'tracestate', 'user-agent',
    'x-cloud-trace-context', 'x-datadog-parent-id', 'x-datadog-sampling-priority', 'x-datadog-trace-id', 'x-ot-span-context', 'x-request-id'
  ])
  t.same([...B3_HEADERS], ['x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'])
})

t.test('productpage through an HTTP proxy (absolute-form, Host reviews:9080)', async t => {
  const proxy = await fake((req, res) => {
    if ((req.url ?? '').startsWith('http://details:9080/')) json(res, 200, '{"id":0,"publisher":"ViaProxy"}')
    else json(res, 200, '{"id": "0","podname": "proxied","clustername": "null","reviews": []}')
  })
  t.teardown(proxy.close)
  const pp = await startService('productpage', { port: 0, proxy: { host: '127.0.0.1', port: proxy.port } })
  t.teardown(pp.close)
  const r = await call(pp.port, '/productpage')
  t.equal(r.status, 200)
  t.same(proxy.seen.map(s => [s.method, s.url, s.headers.host]), [
    ['GET', 'http://details:9080/details/0', 'details:9080'],
    ['GET', 'http://reviews:9080/reviews/0', 'reviews:9080']
  ])
  t.match(r.body, 'ViaProxy')
  t.match(r.body, 'Book Reviews')

  const d2 = await startService('productpage', { port: 0, servicesDomain: 'default.svc.cluster.local', reviewsPort: 9081, proxy: { host: '127.0.0.1', port: proxy.port } })
  t.teardown(d2.close)
  await call(d2.port, '/api/v1/products/0/reviews')
  t.equal(proxy.seen[2].url, 'http://reviews.default.svc.cluster.local:9081/reviews/0')
  t.equal(proxy.seen[2].headers.host, 'reviews.default.svc.cluster.local:9081')
})

t.test('productpage /api/v1 pass-through (status and Python-style JSON)', async t => {
  const { pp } = await bookinfo(t, 'v2')
  const list = await call(pp.port, '/api/v1/products')
  t.equal(list.status, 200)
  t.equal(list.headers['content-type'], 'application/json')
  t.equal(list.body, '[{"id": 0, "title": "The Comedy of Errors", "descriptionHtml": "<a href=\\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\\">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare\'s</b> early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play."}]')

  const d = await call(pp.port, '/api/v1/products/0')
  t.equal(d.status, 200)
  t.equal(d.body, '{"id": 0, "author": "William Shakespeare", "year": 1595, "type": "paperback", "pages": 200, "publisher": "PublisherA", "language": "English", "ISBN-10": "1234567890", "ISBN-13": "123-1234567890"}')
  const bad = await call(pp.port, '/api/v1/products/abc')
  t.equal(bad.status, 400, 'details 400 passed through')
  t.equal(bad.body, '{"error": "Sorry, product details are currently unavailable for this book."}')

  const rv = await call(pp.port, '/api/v1/products/0/reviews')
  t.equal(rv.status, 200)
  t.match(rv.body, /^\{"id": "0", "podname": "reviews-v2-abc", "clustername": "null", "reviews": \[\{"reviewer": "Reviewer1", "text": "An extremely/)
  t.match(rv.body, '"rating": {"stars": 5, "color": "black"}')
  const rt = await call(pp.port, '/api/v1/products/0/ratings')
  t.equal(rt.status, 200)
  t.equal(rt.body, '{"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}')

  // a 503 with a non-JSON body from the backend
  const down = await fake((_req, res) => { res.writeHead(503); res.end('no healthy upstream') })
  t.teardown(down.close)
  const pp2 = await productpageOn({ ratings: down.port })
  t.teardown(pp2.close)
  const r503 = await call(pp2.port, '/api/v1/products/0/ratings')
  t.equal(r503.status, 503)
  t.equal(r503.body, '{"error": "Sorry, product ratings are currently unavailable for this book."}')
})

t.test('productpage misc routes: index, health, metrics, static, 404', async t => {
  const { pp } = await bookinfo(t, 'v1')
  const h = await call(pp.port, '/health')
  t.equal(h.status, 200)
  t.equal(h.body, 'Product page is healthy')
  t.equal(h.headers['content-type'], 'text/html; charset=utf-8')

  for (const p of ['/', '/index.html']) {
    const i = await call(pp.port, p)
    t.equal(i.status, 200)
    t.match(i.body, 'Hello! This is a simple bookstore application consisting of three services as shown below')
    t.match(i.body, '<a href="/productpage?u=normal">Normal user</a>')
    t.match(i.body, '<a href="/productpage?u=test">Test user</a>')
    t.match(i.body, '<table class="table table-condensed table-bordered table-hover">')
    t.match(i.body, '<td>ratings</td>')
  }

  await call(pp.port, '/productpage')
  const m = await call(pp.port, '/metrics')
  t.equal(m.status, 200)
  t.match(m.body, '# TYPE request_result_total counter')
  t.match(m.body, 'request_result_total{destination_app="details",response_code="200"} 1.0')
  t.match(m.body, 'request_result_total{destination_app="reviews",response_code="200"} 1.0')

  const css = await call(pp.port, '/static/tailwind/tailwind.css')
  t.equal(css.status, 200)
  t.match(css.headers['content-type'], /^text\/css/)
  t.match(css.body, '.text-red-500')
  const png = await call(pp.port, '/static/img/izzy.png')
  t.equal(png.status, 200)
  t.equal(png.headers['content-type'], 'image/png')
  t.equal((await call(pp.port, '/static/../productpage.ts')).status, 404)
  t.equal((await call(pp.port, '/static/%2e%2e/productpage.ts')).status, 404, 'no traversal')
  t.equal((await call(pp.port, '/static/nope.css')).status, 404)

  const nf = await call(pp.port, '/reviews/0')
  t.equal(nf.status, 404)
  t.match(nf.body, '<title>404 Not Found</title>')
  t.equal((await call(pp.port, '/productpage', { method: 'POST' })).status, 405)
  const head = await call(pp.port, '/health', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body, '')
})

t.test('productpage renders 500 when a backend answers 200 with a non-JSON body (as res.json() raises)', async t => {
  const bad = await fake((_req, res) => { res.writeHead(200); res.end('<html>not json</html>') })
  t.teardown(bad.close)
  const pp = await productpageOn({ details: bad.port, reviews: bad.port })
  t.teardown(pp.close)
  const r = await call(pp.port, '/productpage')
  t.equal(r.status, 500)
  t.match(r.body, 'Internal Server Error')
})

t.test('FLOOD_FACTOR sends extra reviews calls', async t => {
  const reviews = await fake((_req, res) => json(res, 200, '{"reviews": []}'))
  t.teardown(reviews.close)
  const pp = await productpageOn({ details: await closedPort(), reviews: reviews.port }, { floodFactor: 3 })
  t.teardown(pp.close)
  await call(pp.port, '/productpage')
  t.equal(reviews.seen.length, 4)
})

t.test('static dir is found from the TS source and from dist/', async t => {
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
  const want = join(repo, 'demo', 'bookinfo', 'static')
  t.equal(defaultStaticDir(), want, 'default (module next to static/)')
  t.equal(defaultStaticDir(join(repo, 'demo', 'bookinfo')), want, 'from demo/bookinfo')
  t.equal(defaultStaticDir(join(repo, 'dist', 'demo', 'bookinfo')), want, 'from dist/demo/bookinfo')
})
