import t from 'tap'
import { startService, REVIEWS_PROPAGATED_HEADERS, rubyInteger, javaParseInt } from '../../demo/bookinfo/index.js'
import { call, fake, json } from '../helpers/stand-ins.js'
import { closedPort } from '../helpers/upstream.js'

// details, ratings and reviews stand-ins against real servers on 127.0.0.1:0.

const DETAILS_0 = '{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}'

const REVIEWS_V1 = (pod: string): string => `{"id": "0","podname": "${pod}","clustername": "null","reviews": [{  "reviewer": "Reviewer1",  "text": "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},{  "reviewer": "Reviewer2",  "text": "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."}]}`
const REVIEWS_STARS = (pod: string, color: string): string => `{"id": "0","podname": "${pod}","clustername": "null","reviews": [{  "reviewer": "Reviewer1",  "text": "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!", "rating": {"stars": 5, "color": "${color}"}},{  "reviewer": "Reviewer2",  "text": "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.", "rating": {"stars": 4, "color": "${color}"}}]}`
const REVIEWS_RATING_ERROR = (pod: string): string => `{"id": "0","podname": "${pod}","clustername": "null","reviews": [{  "reviewer": "Reviewer1",  "text": "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!", "rating": {"error": "Ratings service is currently unavailable"}},{  "reviewer": "Reviewer2",  "text": "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.", "rating": {"error": "Ratings service is currently unavailable"}}]}`

t.test('details', async t => {
  const d = await startService('details', { port: 0 })
  t.teardown(d.close)

  const h = await call(d.port, '/health')
  t.equal(h.status, 200)
  t.equal(h.body, '{"status":"Details is healthy"}')
  t.equal(h.headers['content-type'], 'application/json')

  const r = await call(d.port, '/details/0')
  t.equal(r.status, 200)
  t.equal(r.body, DETAILS_0, 'exact Ruby to_json bytes')
  t.equal(r.headers['content-type'], 'application/json')

  t.equal((await call(d.port, '/details/7')).body, DETAILS_0.replace('"id":0', '"id":7'))
  t.equal((await call(d.port, '/details/1/2')).body, DETAILS_0.replace('"id":0', '"id":2'), 'id is the last path segment')
  t.equal((await call(d.port, '/details/0x1A')).body, DETAILS_0.replace('"id":0', '"id":26'), 'Ruby Integer() accepts 0x')
  t.equal((await call(d.port, '/details/0?x=1')).status, 200, 'query ignored')

  for (const bad of ['/details/abc', '/details', '/details/', '/details/08', '/details/1.5']) {
    const b = await call(d.port, bad)
    t.equal(b.status, 400, `${bad} -> 400`)
    t.equal(b.body, '{"error":"please provide numeric product id"}')
    t.equal(b.headers['content-type'], 'application/json')
  }
  t.equal((await call(d.port, '/detailsX')).status, 404)
  t.equal((await call(d.port, '/')).status, 404)
})

t.test('Ruby Integer() and Java parseInt', async t => {
  t.equal(rubyInteger('0'), 0n)
  t.equal(rubyInteger('-12'), -12n)
  t.equal(rubyInteger('1_000'), 1000n)
  t.equal(rubyInteger('010'), 8n)
  t.equal(rubyInteger('0b11'), 3n)
  t.equal(rubyInteger('99999999999999999999'), 99999999999999999999n)
  t.equal(rubyInteger(''), undefined)
  t.equal(rubyInteger('1x'), undefined)
  t.equal(javaParseInt('007'), 7)
  t.equal(javaParseInt('+5'), 5)
  t.equal(javaParseInt('-0'), 0)
  t.equal(javaParseInt('2147483647'), 2147483647)
  t.equal(javaParseInt('2147483648'), undefined)
  t.equal(javaParseInt('1.0'), undefined)
  t.equal(javaParseInt('abc'), undefined)
})

t.test('ratings v1', async t => {
  const r = await startService('ratings', { port: 0 })
  t.teardown(r.close)

  const h = await call(r.port, '/health')
  t.equal(h.status, 200)
  t.equal(h.body, '{"status":"Ratings is healthy"}')
  t.equal(h.headers['content-type'], 'application/json')

  const g = await call(r.port, '/ratings/0')
  t.equal(g.status, 200)
  t.equal(g.body, '{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}')
  t.equal(g.headers['content-type'], 'application/json')
  t.equal((await call(r.port, '/ratings/12abc')).body, '{"id":12,"ratings":{"Reviewer1":5,"Reviewer2":4}}', 'parseInt of the last segment')

  for (const bad of ['/ratings/abc', '/ratings/', '/ratings/1/x']) {
    const b = await call(r.port, bad)
    t.equal(b.status, 400, `${bad} -> 400`)
    t.equal(b.body, '{"error":"please provide numeric product ID"}')
  }
  const nf = await call(r.port, '/ratings')
  t.equal(nf.status, 404)
  t.equal(nf.body, '')

  const p = await call(r.port, '/ratings/3', { method: 'POST', body: '{"Reviewer1":1,"Reviewer2":2}' })
  t.equal(p.status, 200)
  t.equal(p.body, '{"id":3,"ratings":{"Reviewer1":1,"Reviewer2":2}}')
  t.equal((await call(r.port, '/ratings/3')).body, '{"id":3,"ratings":{"Reviewer1":1,"Reviewer2":2}}', 'POSTed ratings are kept in memory')
  t.equal((await call(r.port, '/ratings/0')).body, '{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}', 'other ids unaffected')

  const bj = await call(r.port, '/ratings/3', { method: 'POST', body: '{nope' })
  t.equal(bj.status, 400)
  t.equal(bj.body, '{"error":"please provide valid ratings JSON"}')
  const bi = await call(r.port, '/ratings/x', { method: 'POST', body: '{}' })
  t.equal(bi.status, 400)
  t.equal(bi.body, '{"error":"please provide numeric product ID"}')
})

t.test('ratings variants', async t => {
  let nextRandom = 0
  const faulty = await startService('ratings', { port: 0, version: 'v-faulty', random: () => nextRandom })
  t.teardown(faulty.close)
  nextRandom = 0.5
  let r = await call(faulty.port, '/ratings/0')
  t.equal(r.status, 503)
  t.equal(r.body, '{"error":"Service unavailable"}')
  nextRandom = 0.51
  r = await call(faulty.port, '/ratings/0')
  t.equal(r.status, 200)

  const delayed = await startService('ratings', { port: 0, version: 'v-delayed', random: () => nextRandom, delayMs: 300 })
  t.teardown(delayed.close)
  nextRandom = 0.1
  let start = Date.now()
  r = await call(delayed.port, '/ratings/0')
  t.equal(r.status, 200)
  t.ok(Date.now() - start >= 280, 'delayed answer')
  nextRandom = 0.9
  start = Date.now()
  r = await call(delayed.port, '/ratings/0')
  t.ok(Date.now() - start < 250, 'prompt answer')

  let clock = 0
  const unavailable = await startService('ratings', { port: 0, version: 'v-unavailable', now: () => clock })
  t.teardown(unavailable.close)
  t.equal((await call(unavailable.port, '/ratings/0')).status, 200, 'first minute available')
  clock = 60000
  t.equal((await call(unavailable.port, '/ratings/0')).status, 503, 'second minute unavailable')
  t.equal((await call(unavailable.port, '/health')).status, 200, 'v-unavailable stays healthy')
  clock = 120000
  t.equal((await call(unavailable.port, '/ratings/0')).status, 200)

  clock = 0
  const unhealthy = await startService('ratings', { port: 0, version: 'v-unhealthy', now: () => clock })
  t.teardown(unhealthy.close)
  t.equal((await call(unhealthy.port, '/health')).body, '{"status":"Ratings is healthy"}')
  clock = 900000
  const h = await call(unhealthy.port, '/health')
  t.equal(h.status, 500)
  t.equal(h.body, '{"status":"Ratings is not healthy"}')
  t.equal((await call(unhealthy.port, '/ratings/0')).status, 503)

  const v2 = await startService('ratings', { port: 0, version: 'v2' })
  t.teardown(v2.close)
  const p = await call(v2.port, '/ratings/0', { method: 'POST', body: '{"Reviewer1":1}' })
  t.equal(p.status, 501)
  t.equal(p.body, '{"error":"Post not implemented for database backed ratings"}')
})

t.test('reviews v1/v2/v3 exact bytes with a ratings server', async t => {
  const ratings = await startService('ratings', { port: 0 })
  t.teardown(ratings.close)
  const common = { port: 0, ratingsHostname: '127.0.0.1', ratingsPort: ratings.port }
  const v1 = await startService('reviews', { ...common, version: 'v1', enableRatings: false, podname: 'reviews-v1-POD' })
  const v2 = await startService('reviews', { ...common, version: 'v2', enableRatings: true, podname: 'reviews-v2-POD' })
  const v3 = await startService('reviews', { ...common, version: 'v3', enableRatings: true, starColor: 'red', podname: 'reviews-v3-POD' })
  t.teardown(async () => { await v1.close(); await v2.close(); await v3.close() })

  const h = await call(v1.port, '/health')
  t.equal(h.status, 200)
  t.equal(h.body, '{"status": "Reviews is healthy"}')
  t.match(h.headers['content-type'], /^application\/json/)

  const r1 = await call(v1.port, '/reviews/0')
  t.equal(r1.status, 200)
  t.equal(r1.body, REVIEWS_V1('reviews-v1-POD'))
  t.match(r1.headers['content-type'], /^application\/json/)
  t.equal((await call(v2.port, '/reviews/0')).body, REVIEWS_STARS('reviews-v2-POD', 'black'))
  t.equal((await call(v3.port, '/reviews/0')).body, REVIEWS_STARS('reviews-v3-POD', 'red'))
  t.equal(ratings.server.listening, true)

  t.equal((await call(v1.port, '/reviews/007')).body, REVIEWS_V1('reviews-v1-POD').replace('"id": "0"', '"id": "7"'), 'Integer.toString(productId)')
  t.equal((await call(v1.port, '/reviews/abc')).status, 404, 'non-int path parameter -> 404')
  t.equal((await call(v1.port, '/reviews/0', { method: 'POST' })).status, 405)
  t.equal((await call(v1.port, '/nope')).status, 404)

  // defaults derived from the version
  const d3 = await startService('reviews', { ...common, version: 'v3' })
  t.teardown(d3.close)
  t.equal((await call(d3.port, '/reviews/0')).body, REVIEWS_STARS('reviews-v3-local', 'red'), 'v3 defaults: ratings on, red, podname reviews-v3-local')

  const cl = await startService('reviews', { ...common, version: 'v1', clustername: 'cluster-1' })
  t.teardown(cl.close)
  t.match((await call(cl.port, '/reviews/0')).body, '"clustername": "cluster-1"')
})

t.test('reviews v2/v3 when ratings is down (connection refused)', async t => {
  const port = await closedPort()
  const v2 = await startService('reviews', { port: 0, version: 'v2', podname: 'p2', ratingsHostname: '127.0.0.1', ratingsPort: port })
  const v3 = await startService('reviews', { port: 0, version: 'v3', podname: 'p3', ratingsHostname: '127.0.0.1', ratingsPort: port })
  t.teardown(async () => { await v2.close(); await v3.close() })
  const r2 = await call(v2.port, '/reviews/0')
  t.equal(r2.status, 200, 'still 200')
  t.equal(r2.body, REVIEWS_RATING_ERROR('p2'))
  t.equal((await call(v3.port, '/reviews/0')).body, REVIEWS_RATING_ERROR('p3'))
})

t.test('reviews when ratings answers non-200 or partial data', async t => {
  let answer: [number, string] = [500, '{"error":"x"}']
  const ratings = await fake((_req, res) => json(res, answer[0], answer[1]))
  t.teardown(ratings.close)
  const v2 = await startService('reviews', { port: 0, version: 'v2', podname: 'p', ratingsHostname: '127.0.0.1', ratingsPort: ratings.port })
  t.teardown(v2.close)
  t.equal((await call(v2.port, '/reviews/0')).body, REVIEWS_RATING_ERROR('p'), '500 from ratings')

  answer = [200, '{"id":0,"ratings":{"Reviewer1":3}}']
  const partial = await call(v2.port, '/reviews/0')
  t.equal(partial.status, 200)
  t.match(partial.body, '"Reviewer1",  "text": "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!", "rating": {"stars": 3, "color": "black"}}')
  t.match(partial.body, '"rating": {"error": "Ratings service is currently unavailable"}}]}', 'missing reviewer key -> error for that review')

  answer = [200, '[1,2]']
  t.equal((await call(v2.port, '/reviews/0')).status, 500, 'non-object JSON fails in the Java code too')
})

t.test('reviews v3 gives up on a slow ratings after 2.5 s, v2 waits (10 s timeout)', async t => {
  const slow = await fake((_req, res) => {
    const timer = setTimeout(() => json(res, 200, '{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}'), 3200)
    res.on('close', () => clearTimeout(timer))
  })
  t.teardown(slow.close)
  const v2 = await startService('reviews', { port: 0, version: 'v2', podname: 'p2', ratingsHostname: '127.0.0.1', ratingsPort: slow.port })
  const v3 = await startService('reviews', { port: 0, version: 'v3', podname: 'p3', ratingsHostname: '127.0.0.1', ratingsPort: slow.port })
  t.teardown(async () => { await v2.close(); await v3.close() })

  const t0 = Date.now()
  const [r2, r3] = await Promise.all([
    call(v2.port, '/reviews/0').then(r => ({ r, ms: Date.now() - t0 })),
    call(v3.port, '/reviews/0').then(r => ({ r, ms: Date.now() - t0 }))
  ])
  t.equal(r3.r.body, REVIEWS_RATING_ERROR('p3'), 'v3: rating error')
  t.ok(r3.ms >= 2400 && r3.ms < 3100, `v3 answered after ~2.5 s (${r3.ms} ms)`)
  t.equal(r2.r.body, REVIEWS_STARS('p2', 'black'), 'v2: waited for the 3.2 s ratings answer')
  t.ok(r2.ms >= 3100, `v2 answered after the slow ratings (${r2.ms} ms)`)
})

t.test('reviews propagates its header list to ratings', async t => {
  const ratings = await fake((_req, res) => { res.writeHead(200); res.end('{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}') })
  t.teardown(ratings.close)
  const v2 = await startService('reviews', { port: 0, version: 'v2', ratingsHostname: '127.0.0.1', ratingsPort: ratings.port })
  t.teardown(v2.close)
  const sent: Record<string, string> = {}
  for (const h of REVIEWS_PROPAGATED_HEADERS) sent[h] = `val-${h}`
  sent['x-not-propagated'] = 'nope'
  await call(v2.port, '/reviews/0', { headers: sent })
  t.equal(ratings.seen.length, 1)
  const got = ratings.seen[0]
  t.equal(got.url, '/ratings/0')
  t.equal(got.headers.host, `127.0.0.1:${ratings.port}`)
  t.equal(got.headers.accept, 'application/json')
  for (const h of REVIEWS_PROPAGATED_HEADERS) t.equal(got.headers[h], `val-${h}`, `${h} propagated`)
  t.equal(got.headers['x-not-propagated'], undefined)
  t.equal(got.headers['end-user'], 'val-end-user', 'end-user copied from the incoming request')
  t.same([...REVIEWS_PROPAGATED_HEADERS].sort(), [
    'authorization', 'cookie', 'end-user', 'grpc-trace-bin', 'jwt', 'sw8', 'traceparent', 'tracestate', 'user-agent',
    'x-b3-flags', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-spanid', 'x-b3-traceid', 'x-cloud-trace-context',
    'x-datadog-parent-id', 'x-datadog-sampling-priority', 'x-datadog-trace-id', 'x-ot-span-context', 'x-request-id'
  ])
})

t.test('reviews -> ratings through an HTTP proxy uses absolute-form', async t => {
  const proxy = await fake((_req, res) => json(res, 200, '{"id":0,"ratings":{"Reviewer1":2,"Reviewer2":1}}'))
  t.teardown(proxy.close)
  const v3 = await startService('reviews', { port: 0, version: 'v3', podname: 'p', proxy: { host: '127.0.0.1', port: proxy.port } })
  t.teardown(v3.close)
  const r = await call(v3.port, '/reviews/0', { headers: { 'end-user': 'jason' } })
  t.match(r.body, '"rating": {"stars": 2, "color": "red"}')
  t.equal(proxy.seen.length, 1)
  t.equal(proxy.seen[0].url, 'http://ratings:9080/ratings/0', 'absolute-form request target')
  t.equal(proxy.seen[0].headers.host, 'ratings:9080')
  t.equal(proxy.seen[0].headers['end-user'], 'jason')
})
