import { join } from 'node:path'
import t from 'tap'
import type { Page } from 'playwright-core'
import { startDemo } from '../../demo/demo.js'
import { ARTIFACTS, chromiumPage } from '../helpers/browser.js'
import { waitForLogs } from '../helpers/upstream.js'
import { sleep } from '../helpers/wait.js'

// The product page in a real browser: Debian's Chromium, driven by playwright-core, opens the
// local demo's ingress, reads the reviews section as rendered (star colour as computed from
// the page's stylesheet, "Reviews served by:"), signs in as jason through the page's own
// dialog, and watches the ASM fallback take over when reviews-v3 is stopped.

// Computed colours of the filled stars: tailwind.css `.text-black-500 { color: #000 }` and
// `.text-red-500 { color: #ef4444 }`; v1 renders no stars.
const BLACK = 'rgb(0, 0, 0)'
const RED = 'rgb(239, 68, 68)'
const STARS: Record<string, string | undefined> = { 'reviews-v1-local': undefined, 'reviews-v2-local': BLACK, 'reviews-v3-local': RED }

interface ReviewsView {
  servedBy?: string
  /** Computed colour of the first filled star of each review that has stars. */
  starColors: string[]
  filledStars: number
  reviewsError: boolean
  ratingsError: boolean
  user?: string
}

// Runs in the page (a string, so this file needs no DOM typings).
const READ_REVIEWS = `(() => {
  const text = document.body.innerText
  const served = /Reviews served by:\\s*(\\S+)/.exec(text)
  const starDivs = [...document.querySelectorAll('div.flex.gap-x-1')]
  const user = document.querySelector('nav p.text-base')
  return {
    servedBy: served ? served[1] : undefined,
    starColors: starDivs.map(d => getComputedStyle(d.querySelector('svg[id="glyphicon glyphicon-star"]') ?? d).color),
    filledStars: document.querySelectorAll('svg[id="glyphicon glyphicon-star"]').length,
    reviewsError: text.includes('Error fetching product reviews'),
    ratingsError: text.includes('Ratings service is currently unavailable'),
    user: user ? user.textContent.trim() : undefined
  }
})()`

async function load (page: Page, url: string): Promise<ReviewsView> {
  const res = await page.goto(url, { waitUntil: 'load' })
  if (res?.status() !== 200) throw new Error(`${url}: status ${res?.status()}`)
  return await page.evaluate<ReviewsView>(READ_REVIEWS)
}

/** The version a page shows is consistent: its stars have the colour of the version serving it. */
function consistent (v: ReviewsView): boolean {
  if (v.servedBy === undefined || !(v.servedBy in STARS) || v.reviewsError || v.ratingsError) return false
  const want = STARS[v.servedBy]
  return want === undefined ? v.starColors.length === 0 : v.starColors.length === 2 && v.starColors.every(c => c === want)
}

t.test('the product page in Chromium: versions, jason, fallback', async t => {
  const logs: Array<Record<string, string>> = []
  const demo = await startDemo({ freePorts: true, ingressPort: 0, meshPort: 0, accessLog: line => logs.push(JSON.parse(line)) })
  t.teardown(() => demo.close())

  const page = await chromiumPage(t, { width: 1280, height: 900 })
  page.setDefaultTimeout(30000)
  const url = `${demo.ingressUrl}/productpage`

  // 1. No reviews VirtualService: reloads rotate among v1, v2 and v3, each with its own stars.
  const seen = new Map<string, ReviewsView>()
  for (let i = 0; i < 40 && seen.size < 3; i++) {
    const v = await load(page, url)
    t.ok(consistent(v), `served by ${v.servedBy}: stars ${JSON.stringify(v.starColors)}`)
    if (v.servedBy !== undefined) seen.set(v.servedBy, v)
  }
  t.same([...seen.keys()].sort(), ['reviews-v1-local', 'reviews-v2-local', 'reviews-v3-local'], 'reloads show all three versions')
  t.same(seen.get('reviews-v1-local')?.starColors, [], 'v1: no stars')
  t.same(seen.get('reviews-v2-local')?.starColors, [BLACK, BLACK], 'v2: black stars')
  t.same(seen.get('reviews-v3-local')?.starColors, [RED, RED], 'v3: red stars')
  t.equal(seen.get('reviews-v2-local')?.filledStars, 9, 'ratings 5 and 4: nine filled stars')

  // 2. istio.io request routing: everyone on v1, jason on v2 by the end-user header rule.
  await demo.setScenarios(['all-v1', 'reviews-jason-v2'])
  const anon = await load(page, url)
  t.equal(anon.servedBy, 'reviews-v1-local', 'anonymous: v1')
  t.same(anon.starColors, [], 'anonymous: no stars')
  t.equal(anon.user, undefined, 'not signed in')

  // Sign in through the page's own dialog: the button opens it, the form posts to /login,
  // productpage redirects back and sends end-user: jason from the session.
  await page.click('#sign-in-button')
  const dialog = page.locator('dialog#dialog')
  await dialog.waitFor({ state: 'visible' })
  await dialog.locator('#username').fill('jason')
  await dialog.locator('#password').fill('jason')
  const loginResponse = page.waitForResponse(r => new URL(r.url()).pathname === '/login')
  await dialog.locator('button[type="submit"]').click()
  t.equal((await loginResponse).status(), 302, 'POST /login redirects back')
  await page.locator('nav p.text-base', { hasText: 'jason' }).waitFor({ state: 'visible' })
  await page.waitForLoadState('load')
  const jason = await page.evaluate<ReviewsView>(READ_REVIEWS)
  t.equal(jason.user, 'jason', 'signed in as jason')
  t.equal(jason.servedBy, 'reviews-v2-local', 'jason: v2')
  t.same(jason.starColors, [BLACK, BLACK], 'jason: black stars')
  for (let i = 0; i < 3; i++) t.equal((await load(page, url)).servedBy, 'reviews-v2-local', `jason, reload ${i + 1}: still v2`)
  await page.screenshot({ path: join(ARTIFACTS, 'productpage-jason-v2.png'), fullPage: true })

  // 3. ASM fallback sample 1: all traffic to v3 with fallback v2.
  await demo.setScenarios(['fallback-v3-to-v2'])
  const v3 = await load(page, url)
  t.equal(v3.servedBy, 'reviews-v3-local', 'fallback scenario: v3 serves')
  t.same(v3.starColors, [RED, RED], 'v3: red stars')
  await page.screenshot({ path: join(ARTIFACTS, 'productpage-v3.png'), fullPage: true })

  logs.length = 0
  await demo.stop('reviews-v3')
  // Within the probe interval (1 s, 2 failures) v2 takes over; no page load shows an error.
  const views: ReviewsView[] = []
  const started = Date.now()
  while (Date.now() - started < 20000) {
    const v = await load(page, url)
    views.push(v)
    if (v.servedBy === 'reviews-v2-local' && views.slice(-3).length === 3 && views.slice(-3).every(x => x.servedBy === 'reviews-v2-local')) break
    await sleep(200)
  }
  t.same(views.filter(v => v.reviewsError || v.ratingsError), [], `no page load showed an error (${views.length} loads after the stop)`)
  t.same(views.slice(-3).map(v => v.servedBy), ['reviews-v2-local', 'reviews-v2-local', 'reviews-v2-local'], 'v3 stopped: v2 serves')
  const last = views[views.length - 1]
  t.same(last.starColors, [BLACK, BLACK], 'fallback: black stars')
  await page.screenshot({ path: join(ARTIFACTS, 'productpage-fallback-v2.png'), fullPage: true })
  await waitForLogs(logs, 1)
  t.match(logs.find(l => l.fallback_result === 'fallback cluster is healthy'), {
    authority: 'reviews:9080',
    fallback_path: 'outbound|9080|v3|reviews.default.svc.cluster.local:outbound|9080|v2|reviews.default.svc.cluster.local',
    fallback_final_cluster_name: 'outbound|9080|v2|reviews.default.svc.cluster.local',
    upstream_cluster: 'outbound|9080|v2|reviews.default.svc.cluster.local',
    response_code: '200'
  }, 'the mesh access log records the fallback')

  // Starting v3 again brings the page back to red stars once the probe passes.
  await demo.start('reviews-v3')
  let back: ReviewsView | undefined
  for (const until = Date.now() + 20000; Date.now() < until;) {
    back = await load(page, url)
    if (back.servedBy === 'reviews-v3-local') break
    await sleep(200)
  }
  t.equal(back?.servedBy, 'reviews-v3-local', 'v3 started: v3 serves again')
  t.same(back?.starColors, [RED, RED], 'red stars again')
})
