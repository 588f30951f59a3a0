import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { optionsFromEnv, proxyFromEnv, parseProxyUrl, bypassesProxy, httpGet, HttpTimeoutError } from '../../demo/bookinfo/index.js'
import { parseArgs } from '../../demo/bookinfo/server.js'
import { call, fake } from '../helpers/stand-ins.js'

// Options from the environment, proxy parsing, the http client and the CLI entry point.

t.test('optionsFromEnv: upstream env vars and defaults', async t => {
  t.same(optionsFromEnv('productpage', {}), {
    version: 'v1',
    detailsHostname: 'details',
    detailsPort: '9080',
    reviewsHostname: 'reviews',
    reviewsPort: '9080',
    ratingsHostname: 'ratings',
    ratingsPort: '9080',
    servicesDomain: '',
    floodFactor: 0
  })
  const pp = optionsFromEnv('productpage', {
    DETAILS_HOSTNAME: 'd', DETAILS_SERVICE_PORT: '81', REVIEWS_HOSTNAME: 'r', REVIEWS_SERVICE_PORT: '82',
    RATINGS_HOSTNAME: 'ra', RATINGS_SERVICE_PORT: '83', SERVICES_DOMAIN: 'ns.svc', HTTP_PROXY: 'http://127.0.0.1:15001', FLOOD_FACTOR: '2'
  })
  t.match(pp, { detailsHostname: 'd', detailsPort: '81', reviewsHostname: 'r', reviewsPort: '82', ratingsHostname: 'ra', ratingsPort: '83', servicesDomain: 'ns.svc', floodFactor: 2, proxy: { host: '127.0.0.1', port: 15001 } })

  t.match(optionsFromEnv('reviews', {}), { version: 'v1', enableRatings: false, starColor: 'black', podname: 'reviews-v1-local', clustername: 'null', ratingsHostname: 'ratings', ratingsPort: '9080' })
  t.match(optionsFromEnv('reviews', { SERVICE_VERSION: 'v2' }), { version: 'v2', enableRatings: true, starColor: 'black', podname: 'reviews-v2-local' })
  t.match(optionsFromEnv('reviews', { SERVICE_VERSION: 'v3' }), { version: 'v3', enableRatings: true, starColor: 'red', podname: 'reviews-v3-local' })
  t.match(optionsFromEnv('reviews', { SERVICE_VERSION: 'v3', STAR_COLOR: 'blue', ENABLE_RATINGS: 'TRUE', HOSTNAME: 'reviews-v3-xyz', CLUSTER_NAME: 'c1' }),
    { starColor: 'blue', enableRatings: true, podname: 'reviews-v3-xyz', clustername: 'c1' })
  t.match(optionsFromEnv('reviews', { SERVICE_VERSION: 'v2', ENABLE_RATINGS: 'false' }), { enableRatings: false })
  t.match(optionsFromEnv('reviews', { SERVICE_VERSION: 'v2', ENABLE_RATINGS: 'yes' }), { enableRatings: false }, 'Boolean.valueOf')
  t.same(optionsFromEnv('ratings', { SERVICE_VERSION: 'v-faulty' }), { version: 'v-faulty' })
  t.same(optionsFromEnv('details', {}), { version: 'v1' })
})

t.test('proxy from the environment', async t => {
  t.equal(proxyFromEnv({}), undefined)
  t.same(proxyFromEnv({ HTTP_PROXY: 'http://127.0.0.1:15001' }), { host: '127.0.0.1', port: 15001 })
  t.same(proxyFromEnv({ http_proxy: 'localhost:3128' }), { host: 'localhost', port: 3128 }, 'scheme optional')
  t.same(proxyFromEnv({ http_proxy: 'http://a:1', HTTP_PROXY: 'http://b:2' }), { host: 'a', port: 1 }, 'lower case wins')
  t.equal(proxyFromEnv({ http_proxy: '', HTTP_PROXY: 'http://b:2' }), undefined, 'empty lower case disables')
  t.same(proxyFromEnv({ HTTP_PROXY: 'http://p', NO_PROXY: 'localhost, .internal' }), { host: 'p', port: 80, noProxy: ['localhost', '.internal'] })
  t.same(parseProxyUrl('http://[::1]:8080/'), { host: '::1', port: 8080 })
  t.throws(() => parseProxyUrl('https://p:1'))
  t.ok(bypassesProxy('a.internal', '9080', ['.internal']))
  t.ok(bypassesProxy('internal', '9080', ['.internal']))
  t.ok(bypassesProxy('reviews', '9080', ['reviews:9080']))
  t.notOk(bypassesProxy('reviews', '9080', ['ratings', 'reviews:9081']))
  t.ok(bypassesProxy('x', '1', ['*']))
})

t.test('httpGet: proxy bypass, deadline covers the body', async t => {
  const server = await fake((req, res) => {
    if (req.url?.endsWith('/slow-body')) {
      res.writeHead(200)
      res.write('partial')
      return // body never ends
    }
    res.end('ok')
  })
  t.teardown(server.close)
  const { port, seen } = server

  const direct = await httpGet(`http://127.0.0.1:${port}/x?q=1`, { timeoutMs: 1000, proxy: { host: '127.0.0.1', port: 1, noProxy: ['127.0.0.1'] } })
  t.equal(direct.body, 'ok')
  t.equal(seen[0].url, '/x?q=1', 'no_proxy -> origin-form')
  t.equal(seen[0].headers.host, `127.0.0.1:${port}`)

  const t0 = Date.now()
  await t.rejects(httpGet(`http://127.0.0.1:${port}/slow-body`, { timeoutMs: 300 }), HttpTimeoutError)
  t.ok(Date.now() - t0 < 1000)
})

t.test('CLI argument parsing', async t => {
  t.same(parseArgs(['reviews'], {}), { name: 'reviews', port: 9080, host: '127.0.0.1' })
  t.same(parseArgs(['ratings', '--port', '0', '--host', '0.0.0.0'], {}), { name: 'ratings', port: 0, host: '0.0.0.0' })
  t.same(parseArgs(['details', '--port=1234'], {}), { name: 'details', port: 1234, host: '127.0.0.1' })
  t.same(parseArgs(['productpage'], { PORT: '8000' }), { name: 'productpage', port: 8000, host: '127.0.0.1' })
  t.throws(() => parseArgs([], {}))
  t.throws(() => parseArgs(['nope'], {}))
  t.throws(() => parseArgs(['details', '--port', 'x'], {}))
})

/** The stand-ins' CLI, run with tap's TypeScript loader. */
const script = fileURLToPath(new URL('../../demo/bookinfo/server.ts', import.meta.url))
const tsLoader = process.execArgv.filter(a => a.includes('@tapjs/typescript'))

t.test('CLI runs a service and exits 0 on SIGTERM', async t => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const child = spawn(process.execPath, [...tsLoader, script, 'reviews', '--port', '0'], {
      env: { ...process.env, SERVICE_VERSION: 'v1', HOSTNAME: 'reviews-v1-cli' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stderr.on('data', c => { stderr += String(c) })
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', c => {
        stdout += String(c)
        if (stdout.includes('\n')) resolve(stdout.split('\n')[0])
      })
      child.on('exit', code => reject(new Error(`exited early (${code}): ${stderr}`)))
    })
    const m = /^reviews v1 listening on http:\/\/127\.0\.0\.1:(\d+)$/.exec(line)
    t.ok(m, `listening line: ${line}`)
    const port = Number(m?.[1])
    const r = await call(port, '/reviews/0')
    t.equal(r.status, 200)
    t.match(r.body, '"podname": "reviews-v1-cli"')
    const exit = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
    child.kill(signal)
    t.equal(await exit, 0, `exit 0 on ${signal}`)
  }
})

t.test('CLI usage error', async t => {
  const child = spawn(process.execPath, [...tsLoader, script, 'bogus'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', c => { stderr += String(c) })
  const code = await new Promise<number | null>(resolve => child.on('exit', c => resolve(c)))
  t.equal(code, 2)
  t.match(stderr, 'usage: server.js')
})
