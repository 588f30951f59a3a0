import t from 'tap'
import { startDemo } from '../../demo/demo.js'
import { rawRequest } from '../helpers/upstream.js'

// The istio.io fault-injection task on the local demo, with the unchanged Bookinfo samples:
// all-v1 + reviews-test-v2 + ratings-test-{delay,abort}. Only jason is affected.

async function login (ingress: string, user: string): Promise<string> {
  const r = await rawRequest(ingress, '/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', referer: `${ingress}/productpage` },
    body: `username=${user}&passwd=x`
  })
  return String(r.headers['set-cookie']?.[0] ?? '').split(';')[0]
}

t.test('ratings abort: jason sees the ratings error, others are unaffected', async t => {
  const demo = await startDemo({ freePorts: true, ingressPort: 0, meshPort: 0, accessLog: 'off', scenarios: ['all-v1', 'reviews-jason-v2', 'ratings-test-abort'] })
  t.teardown(() => demo.close())
  const cookie = await login(demo.ingressUrl, 'jason')
  const jason = await rawRequest(demo.ingressUrl, '/productpage', { headers: { cookie } })
  t.equal(jason.status, 200)
  t.match(jason.body, 'Ratings service is currently unavailable', 'jason: ratings aborted with 500')
  t.match(jason.body, 'reviews-v2-local')
  const anon = await rawRequest(demo.ingressUrl, '/productpage')
  t.notMatch(anon.body, 'Ratings service is currently unavailable', 'others: v1, no ratings call')
  t.notMatch(anon.body, 'Error fetching product reviews')
})

t.test('ratings delay 7 s: jason\'s page shows the reviews error after productpage\'s two 3 s tries', async t => {
  const demo = await startDemo({ freePorts: true, ingressPort: 0, meshPort: 0, accessLog: 'off', scenarios: ['all-v1', 'reviews-jason-v2', 'ratings-test-delay'] })
  t.teardown(() => demo.close())
  const anonStart = Date.now()
  const anon = await rawRequest(demo.ingressUrl, '/productpage')
  t.ok(Date.now() - anonStart < 2000, 'others are not delayed')
  t.notMatch(anon.body, 'Error fetching product reviews')
  const cookie = await login(demo.ingressUrl, 'jason')
  const start = Date.now()
  const jason = await rawRequest(demo.ingressUrl, '/productpage', { headers: { cookie } })
  const took = Date.now() - start
  t.equal(jason.status, 200)
  t.match(jason.body, 'Error fetching product reviews', 'reviews unavailable for jason')
  t.ok(took >= 5800 && took < 8000, `page took ${took} ms (about 2 × 3 s)`)
})
