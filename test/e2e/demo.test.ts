import t from 'tap'
import { startDemo } from '../../demo/demo.js'
import { rawRequest, waitForLogs } from '../helpers/upstream.js'

// End to end: the local demo on free ports, with the real gateway-config/ files and stand-ins.

function servedBy (html: string): string | undefined {
  return /Reviews served by:\s*(?:<[^>]*>\s*)*([a-z0-9-]+)/.exec(html)?.[1]
}

t.test('local Bookinfo demo through the ingress and the mesh', async t => {
  const logs: Array<Record<string, string>> = []
  const demo = await startDemo({ freePorts: true, ingressPort: 0, meshPort: 0, accessLog: line => logs.push(JSON.parse(line)) })
  t.teardown(() => demo.close())

  const page = await rawRequest(demo.ingressUrl, '/productpage')
  t.equal(page.status, 200, '/productpage through the ingress')
  t.match(page.body, '<title>Simple Bookstore App</title>')
  t.match(page.body, 'The Comedy of Errors')
  t.match(page.body, 'Book Details', 'details fetched through the mesh')
  t.match(page.body, 'Reviews served by:', 'reviews fetched through the mesh')
  t.notMatch(page.body, 'Error fetching product')

  const notRouted = await rawRequest(demo.ingressUrl, '/admin')
  t.equal(notRouted.status, 404, 'paths the bookinfo VirtualService does not route are 404 NR')
  const css = await rawRequest(demo.ingressUrl, '/static/tailwind/tailwind.css')
  t.equal(css.status, 200, 'prefix /static routed')
  const api = await rawRequest(demo.ingressUrl, '/api/v1/products')
  t.equal(JSON.parse(api.body)[0].title, 'The Comedy of Errors', 'prefix /api/v1/products routed')

  // With no reviews VirtualService, the default route balances over every version.
  const seen = new Set<string>()
  for (let i = 0; i < 30 && seen.size < 3; i++) {
    const p = await rawRequest(demo.ingressUrl, '/productpage')
    const pod = servedBy(p.body)
    if (pod !== undefined) seen.add(pod)
  }
  t.same([...seen].sort(), ['reviews-v1-local', 'reviews-v2-local', 'reviews-v3-local'], 'reloads rotate among v1, v2 and v3')

  // jason, routed by the header-match VirtualService of the istio.io request-routing task.
  await demo.setScenarios(['all-v1', 'reviews-jason-v2'])
  const anon = await rawRequest(demo.ingressUrl, '/productpage')
  t.equal(servedBy(anon.body), 'reviews-v1-local', 'anonymous users get v1')
  t.notMatch(anon.body, 'glyphicon glyphicon-star', 'v1 has no stars')
  const login = await rawRequest(demo.ingressUrl, '/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', referer: `${demo.ingressUrl}/productpage` },
    body: 'username=jason&passwd=jason'
  })
  t.equal(login.status, 302, 'login redirects back')
  const cookie = String(login.headers['set-cookie']?.[0] ?? '').split(';')[0]
  t.match(cookie, /^session=/, 'session cookie set')
  logs.length = 0
  const jason = await rawRequest(demo.ingressUrl, '/productpage', { headers: { cookie } })
  t.equal(servedBy(jason.body), 'reviews-v2-local', 'jason gets v2')
  t.match(jason.body, 'text-black-500', 'black stars')
  t.match(jason.body, '>jason<', 'signed in as jason')

  await waitForLogs(logs, 3)
  const meshHop = logs.find(l => l.authority === 'reviews:9080')
  t.ok(meshHop !== undefined, 'access-log line for the mesh hop to reviews')
  t.match(meshHop, {
    method: 'GET',
    path: '/reviews/0',
    response_code: '200',
    response_flags: '-',
    upstream_cluster: 'outbound|9080|v2|reviews.default.svc.cluster.local',
    fallback_path: '-'
  })
  const ingressLine = logs.find(l => l.path === '/productpage')
  t.equal(ingressLine?.upstream_cluster, 'outbound|9080||productpage.default.svc.cluster.local', 'ingress hop logged')
})
