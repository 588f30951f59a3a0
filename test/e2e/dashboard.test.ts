import { join } from 'node:path'
import t from 'tap'
import { startDemo } from '../../demo/demo.js'
import { startAdmin } from '../../routes/admin.js'
import { ARTIFACTS, chromiumPage } from '../helpers/browser.js'
import { sleep } from '../helpers/wait.js'

// The dashboard in a real browser on the local demo: Debian's Chromium, driven by
// playwright-core, logs in with the admin token, sees the Bookinfo topology, watches the ASM
// fallback take over when reviews-v3 is stopped under the fallback scenario (the endpoint red,
// the v3 → v2 edge lit with its count) and v3 come back, explains jason's request (v2
// highlighted), reads the history and rolls back. A screenshot of each step goes to test-artifacts/.

const TOKEN = 'dashboard-test-token'
const C = (subset: string): string => `outbound|9080|${subset}|reviews.default.svc.cluster.local`

t.test('the dashboard in Chromium: topology, fallback live, recovery, explain, history', async t => {
  const demo = await startDemo({ freePorts: true, ingressPort: 0, meshPort: 0, accessLog: 'off' })
  t.teardown(() => demo.close())
  const admin = await startAdmin({ gateway: demo.gateway, port: 0, token: TOKEN })
  t.teardown(() => admin.close())

  const page = await chromiumPage(t, { width: 1800, height: 960 })
  page.setDefaultTimeout(15000)
  const pageErrors: string[] = []
  page.on('pageerror', err => pageErrors.push(err.message))
  const shot = async (name: string): Promise<void> => { await page.screenshot({ path: join(ARTIFACTS, `dashboard-${name}.png`) }) }
  const node = (id: string): ReturnType<typeof page.locator> => page.locator(`#graph g.node[data-id="${id}"]`)

  // 1. Log in: the page shows the form, a wrong token is refused, the right one opens the dashboard.
  await page.goto(`${admin.url}/ui`)
  await page.locator('#login-form').waitFor({ state: 'visible' })
  await page.fill('#token', 'wrong')
  await page.click('#login-form button[type="submit"]')
  await page.locator('#login-error', { hasText: 'Wrong token' }).waitFor()
  await shot('1-login')
  await page.fill('#token', TOKEN)
  await page.click('#login-form button[type="submit"]')
  await page.locator('#dashboard').waitFor({ state: 'visible' })
  const cookies = await page.context().cookies(admin.url)
  t.match(cookies.find(c => c.name === 'meshgate_session'), { httpOnly: true, sameSite: 'Strict', path: '/' }, 'an HttpOnly, SameSite=Strict session cookie')
  t.notOk(cookies.some(c => c.value === TOKEN), 'the cookie is not the token')

  // 2. The Bookinfo topology: both listeners, the reviews subsets' clusters with their endpoints.
  await page.locator('#stream:not([hidden])').waitFor()
  const v3 = demo.workloads.get('reviews-v3')!
  const v3Endpoint = `endpoint:${C('v3')} ${v3.address}:${v3.port}`
  await demo.setScenarios(['fallback-v3-to-v2'])
  await node(`cluster:${C('v3')}`).waitFor()
  const kinds = await page.$$eval('#graph g.node', els => els.map(e => e.getAttribute('class')!.split(' ')[1]))
  for (const k of ['node-listener', 'node-vhost', 'node-route', 'node-destination', 'node-cluster', 'node-endpoint']) t.ok(kinds.includes(k), `${k} nodes drawn`)
  const labels = await page.$$eval('#graph g.node .node-label', els => els.map(e => e.textContent))
  for (const name of ['productpage', 'reviews v2', 'reviews v3', 'ratings', 'details']) t.ok(labels.some(l => l?.includes(name)), `a node for ${name}`)
  await page.locator(`#graph g.node.healthy[data-id="${v3Endpoint}"]`).waitFor()
  const fallbackEdge = page.locator(`#graph path.edge-fallback[data-from="cluster:${C('v3')}"][data-to="cluster:${C('v2')}"]`)
  t.equal(await fallbackEdge.count(), 1, 'the v3 → v2 fallback is its own edge')

  // Traffic: the product page, which calls reviews through the mesh listener.
  let driving = true
  let sent = 0
  const driver = (async () => {
    while (driving) {
      try { await (await fetch(`${demo.ingressUrl}/productpage`)).arrayBuffer() } catch { /* counted by the gateway */ }
      sent++
      await sleep(50)
    }
  })()
  t.teardown(async () => { driving = false; await driver })
  await page.locator('#graph g.node.node-route.active').first().waitFor()
  await page.locator(`#graph g.node.node-cluster.active[data-id="cluster:${C('v3')}"]`).waitFor()
  t.match(await node(`cluster:${C('v3')}`).locator('.node-stats').textContent(), /\/s .* p50 \d/, 'cluster v3: rate, errors and percentiles')
  await shot('2-topology')

  // 3. Stop reviews-v3: within 2 s the endpoint is red and the fallback edge carries traffic.
  await demo.stop('reviews-v3')
  const stopped = Date.now()
  await page.locator(`#graph g.node.unhealthy[data-id="${v3Endpoint}"]`).waitFor({ timeout: 5000 })
  const unhealthyAfter = Date.now() - stopped
  await page.locator(`#graph path.edge-fallback.firing[data-from="cluster:${C('v3')}"][data-to="cluster:${C('v2')}"]`).waitFor({ timeout: 5000 })
  const firingAfter = Date.now() - stopped
  t.ok(unhealthyAfter <= 2000, `v3 endpoint shown unhealthy after ${unhealthyAfter} ms`)
  t.ok(firingAfter <= 2000, `fallback edge lit after ${firingAfter} ms`)
  t.ok(Number(await fallbackEdge.getAttribute('data-count')) > 0, `fallback count ${await fallbackEdge.getAttribute('data-count')}`)
  t.match(await page.locator(`#graph text.edge-label-fallback.firing`).first().textContent(), /fallback ×\d+fallback cluster is healthy/, 'the edge names the count and fallback_result')
  t.match(await node(v3Endpoint).locator('.node-stats').textContent(), /unhealthy .*FailedConnect|unhealthy .*FailedProbe/, 'with the flag that took it out')
  t.match(await page.locator('#fallback-traffic tbody').textContent(), /fallback cluster is healthy/, 'the fallback table')
  t.match(await page.locator('#health-log').textContent(), /reviews.*unhealthy/, 'the health change listed')
  await sleep(600)
  await shot('3-fallback')

  // 4. Start it again: the probe passes, the endpoint turns green, the fallback edge goes quiet.
  await demo.start('reviews-v3')
  await page.locator(`#graph g.node.healthy[data-id="${v3Endpoint}"]`).waitFor({ timeout: 10000 })
  await page.locator(`#graph path.edge-fallback:not(.firing)[data-from="cluster:${C('v3')}"]`).waitFor({ timeout: 5000 })
  t.pass('v3 recovered: healthy, no fallback')
  await shot('4-recovered')
  driving = false
  await driver
  t.ok(sent > 20, `${sent} product pages requested`)

  // 5. Explain jason's request under istio.io's request-routing rules: v2 highlighted.
  const gen = demo.gateway.config.current.generation
  await demo.setScenarios(['all-v1', 'reviews-jason-v2'])
  await page.locator('#generation', { hasText: `generation ${gen + 1}` }).waitFor()
  await page.click('nav button[data-tab="explain"]')
  await page.selectOption('#explain-listener', 'mesh')
  await page.fill('#explain-form input[name="authority"]', 'reviews:9080')
  await page.fill('#explain-form input[name="path"]', '/reviews/0')
  await page.fill('#explain-form textarea[name="headers"]', 'end-user: jason')
  await page.click('#explain-form button[type="submit"]')
  await page.locator('#explain-result[data-serves]').waitFor()
  t.equal(await page.getAttribute('#explain-result', 'data-serves'), C('v2'), 'explain: v2 serves jason')
  t.ok(await node(`cluster:${C('v2')}`).evaluate(e => e.classList.contains('highlight')), 'cluster v2 highlighted')
  t.notOk(await node(`cluster:${C('v1')}`).evaluate(e => e.classList.contains('highlight')), 'cluster v1 not highlighted')
  t.ok(await page.locator('#graph g.node.node-route.highlight').count() === 1, 'one route highlighted')
  const v2 = demo.workloads.get('reviews-v2')!
  t.ok(await node(`endpoint:${C('v2')} ${v2.address}:${v2.port}`).evaluate(e => e.classList.contains('highlight')), 'the v2 endpoint highlighted')
  await shot('5-explain')
  // Anyone else: v1.
  await page.fill('#explain-form textarea[name="headers"]', '')
  await page.click('#explain-form button[type="submit"]')
  await page.locator('#explain-result[data-serves*="|v1|"]').waitFor()
  t.pass('without the header: v1')

  // 6. Configuration: history with who and a diff, then a confirmed rollback through the session.
  await page.click('nav button[data-tab="config"]')
  const latest = page.locator(`#history details.generation[data-generation="${gen + 1}"]`)
  await latest.waitFor()
  t.match(await latest.locator('summary').textContent(), /inputs|files/, 'the generation and its source')
  await latest.locator('summary').click()
  const diffs = await latest.locator('pre.diff').allTextContents()
  t.ok(diffs.some(d => /^\+.*end-user/m.test(d)), 'a diff adds the jason rule', { diffs: diffs.map(d => d.slice(0, 200)) })
  page.once('dialog', d => { void d.accept() })
  await page.click('#rollback')
  await page.locator('#rollback-result', { hasText: `generation ${gen + 2} is running` }).waitFor()
  t.equal(demo.gateway.config.current.source, 'rollback', 'rolled back')
  await page.locator(`#history details.generation[data-generation="${gen + 2}"] summary`, { hasText: /rollback by session from/ }).waitFor()
  t.pass('the rollback is listed as made through the dashboard session')
  await shot('6-config')

  // 7. Log out: the session is gone, the API refuses the cookie.
  await page.click('#logout')
  await page.locator('#login-form').waitFor({ state: 'visible' })
  const after = await page.evaluate(async () => (await fetch('/graph')).status)
  t.equal(after, 401, 'after logout the cookie no longer works')
  t.same(pageErrors, [], 'no script error on the page')
})
