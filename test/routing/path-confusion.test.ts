import t from 'tap'
import { HOST, type PathGateway, startPathFixture } from '../helpers/path-fixture.js'
import { rawExchange, rawRequest } from '../helpers/raw-http.js'
import { waitForLogs } from '../helpers/wait.js'

// docs/testing.md#b-path-confusion, table B: one canonical path, matched on AND forwarded. Fixture: `/public/` →
// pub, `/admin` → adm (the guarded one), `/api` → pub with rewrite `/v1`, anything else 404 NR.
// Each case checks which upstream saw the request and the exact path it saw.

interface Outcome { status: number; location?: string; pub: string[]; adm: string[] }

async function send (gw: PathGateway, target: string, headers: Record<string, string | string[]> = { host: HOST }): Promise<Outcome> {
  const pubBefore = gw.pub.seen.length
  const admBefore = gw.adm.seen.length
  const r = await rawRequest(gw.ingress, target, { headers })
  return {
    status: r.status,
    ...(typeof r.headers.location === 'string' ? { location: r.headers.location } : {}),
    pub: gw.pub.seen.slice(pubBefore).map(s => s.url),
    adm: gw.adm.seen.slice(admBefore).map(s => s.url)
  }
}

t.test('B1 B2 B4: dot segments, encoded dots and backslashes are normalized before matching', async t => {
  const gw = await startPathFixture()
  t.teardown(() => gw.close())
  for (const target of ['/public/../admin', '/public/./../admin', '/public/%2e%2e/admin', '/public/%2E%2E/admin', '/public/.%2e/admin', '/public\\..\\admin', '/public/..\\admin']) {
    t.same(await send(gw, target), { status: 200, pub: [], adm: ['/admin'] }, `${target} → adm as /admin, never pub`)
  }
  t.same(await send(gw, '/public/%7Euser/%41'), { status: 200, pub: ['/public/~user/A'], adm: [] }, 'unreserved escapes are decoded in what is forwarded too')
  await waitForLogs(gw.logs, 8)
  t.equal(gw.logs[0].path, '/public/../admin', 'the access log keeps the path as received')
  t.equal(gw.logs[0].route_name, 'adm')
})

t.test('B3: escaped slashes and backslashes: REJECT by default, each alternative policy', async t => {
  const targets = ['/public%2F..%2Fadmin', '/public/..%2Fadmin', '/public%5C..%5Cadmin', '/public/..%2fadmin']
  const reject = await startPathFixture()
  t.teardown(() => reject.close())
  for (const target of targets) t.same(await send(reject, target), { status: 400, pub: [], adm: [] }, `${target} → 400 (REJECT)`)
  t.equal(reject.upstreamBytes(), 0, 'no upstream saw a byte')
  await waitForLogs(reject.logs, targets.length)
  t.ok(reject.logs.every(l => l.response_code === '400' && l.response_flags === 'DPE'), 'logged 400 DPE')

  const redirect = await startPathFixture({ escapedSlashes: 'UNESCAPE_AND_REDIRECT' })
  t.teardown(() => redirect.close())
  for (const target of targets) t.same(await send(redirect, target), { status: 307, location: '/admin', pub: [], adm: [] }, `${target} → 307 to the unescaped, normalized path`)
  t.same(await send(redirect, '/public/a'), { status: 200, pub: ['/public/a'], adm: [] }, 'paths without escaped slashes are not redirected')

  const forward = await startPathFixture({ escapedSlashes: 'UNESCAPE_AND_FORWARD' })
  t.teardown(() => forward.close())
  for (const target of targets) t.same(await send(forward, target), { status: 200, pub: [], adm: ['/admin'] }, `${target} → unescaped, then normalized: adm`)

  const keep = await startPathFixture({ escapedSlashes: 'KEEP_UNCHANGED' })
  t.teardown(() => keep.close())
  t.same(await send(keep, '/public/..%2Fadmin'), { status: 200, pub: ['/public/..%2Fadmin'], adm: [] }, 'KEEP_UNCHANGED: %2F is not a separator; matched and forwarded as the same string')
  t.same(await send(keep, '/public%2F..%2Fadmin'), { status: 404, pub: [], adm: [] }, 'KEEP_UNCHANGED: no route for /public%2F…')

  const decode = await startPathFixture({ pathNormalization: 'DECODE_AND_MERGE_SLASHES' })
  t.teardown(() => decode.close())
  t.same(await send(decode, '/public%2F..%2F%2Fadmin'), { status: 200, pub: [], adm: ['/admin'] }, 'DECODE_AND_MERGE_SLASHES decodes %2F, normalizes, merges')
})

t.test('B5: merged slashes; //admin is a path, never a network-path reference', async t => {
  const base = await startPathFixture()
  t.teardown(() => base.close())
  t.same(await send(base, '//admin'), { status: 404, pub: [], adm: [] }, 'BASE: //admin does not match /admin and goes nowhere else')
  t.same(await send(base, '/public//..//admin'), { status: 200, pub: ['/public//admin'], adm: [] }, 'BASE: dot segment removed as RFC 3986 does; matched and forwarded the same')
  t.same(await send(base, '///public'), { status: 404, pub: [], adm: [] })

  const merge = await startPathFixture({ pathNormalization: 'MERGE_SLASHES' })
  t.teardown(() => merge.close())
  t.same(await send(merge, '//admin'), { status: 200, pub: [], adm: ['/admin'] }, 'MERGE_SLASHES: //admin → /admin (adm), sent to the configured upstream')
  t.same(await send(merge, '/public//..//admin'), { status: 200, pub: ['/public/admin'], adm: [] })
  t.same(await send(merge, '///public//x'), { status: 200, pub: ['/public/x'], adm: [] })
  t.same(await send(merge, '//admin', { host: 'admin' }), { status: 404, pub: [], adm: [] }, 'the host comes from Host, never from the path')
})

t.test('B6 B7: fragments, encoded # and ;, queries, malformed escapes', async t => {
  const gw = await startPathFixture()
  t.teardown(() => gw.close())
  t.same(await send(gw, '/admin#x'), { status: 400, pub: [], adm: [] }, 'a fragment in the request target is refused (Envoy default)')
  t.same(await send(gw, '/public/a#/../../admin'), { status: 400, pub: [], adm: [] })
  t.same(await send(gw, '/admin%23x'), { status: 200, pub: [], adm: ['/admin%23x'] }, '%23 stays encoded: matched and forwarded alike')
  t.same(await send(gw, '/admin;x'), { status: 200, pub: [], adm: ['/admin;x'] }, '; is an ordinary path character')
  t.same(await send(gw, '/public/%3B..%2e/admin'), { status: 200, pub: ['/public/%3B.../admin'], adm: [] }, '%3B... is not a dot segment')
  t.same(await send(gw, '/admin?x'), { status: 200, pub: [], adm: ['/admin?x'] })
  t.same(await send(gw, '/public/../admin?a=%2F..%zz&b=/../'), { status: 200, pub: [], adm: ['/admin?a=%2F..%zz&b=/../'] }, 'the query is kept verbatim')
  for (const target of ['/public/%zz', '/public/%', '/public/%4', '/public/%g0/x']) {
    t.same(await send(gw, target), { status: 400, pub: [], adm: [] }, `${target} → 400, not 404`)
  }
  t.equal(gw.upstreamBytes() > 0, true)
})

t.test('B8 B9: prefix is a plain string prefix; rewrite replaces only the leading prefix', async t => {
  const gw = await startPathFixture()
  t.teardown(() => gw.close())
  t.same(await send(gw, '/administrator'), { status: 200, pub: [], adm: ['/administrator'] }, 'prefix /admin matches /administrator (Istio StringMatch semantics)')
  t.same(await send(gw, '/publicity'), { status: 404, pub: [], adm: [] }, 'prefix /public/ does not match /publicity')
  t.same(await send(gw, '/api/x/api/y'), { status: 200, pub: ['/v1/x/api/y'], adm: [] }, 'only the leading /api is replaced')
  t.same(await send(gw, '/api/../admin'), { status: 200, pub: [], adm: ['/admin'] }, 'the rewrite works on the canonical path')
})

t.test('B10: absolute-form targets, Host case, duplicate Host', async t => {
  const gw = await startPathFixture()
  t.teardown(() => gw.close())
  const port = new URL(gw.ingress).port
  const abs = await rawExchange(gw.ingress, `GET http://evil.internal/admin HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`)
  t.equal(abs.statuses[0], 400, 'Gateway listener: absolute-form is not origin-form → 400')
  t.same(await send(gw, '/admin', { host: 'APP.Example.COM' }), { status: 200, pub: [], adm: ['/admin'] }, 'Host is matched case-insensitively, as routing does')
  const dup = await rawExchange(gw.ingress, `GET /public/x HTTP/1.1\r\nHost: ${HOST}\r\nHost: evil.internal\r\n\r\n`)
  t.equal(dup.statuses[0], 400, 'two Host headers → 400')
  t.ok(dup.closed, 'connection closed')
  const dupSame = await rawExchange(gw.ingress, `GET /public/x HTTP/1.1\r\nHost: ${HOST}\r\nhost: ${HOST}:${port}\r\n\r\n`)
  t.equal(dupSame.statuses[0], 400, 'Host twice differing only in case and port → 400')
  t.equal(gw.upstreamBytes(), gw.adm.bytes(), 'pub never saw a byte')

  // The mesh listener takes absolute-form (forward-proxy clients): its authority replaces Host,
  // and the upstream still comes only from the configuration.
  const mesh = await rawExchange(gw.mesh, 'GET http://evil.internal/admin HTTP/1.1\r\nHost: app\r\n\r\n')
  t.equal(mesh.statuses[0], 404, 'absolute-form authority evil.internal has no route: 404 NR, never a connection to it')
  const meshOk = await rawExchange(gw.mesh, 'GET http://app/public/../admin HTTP/1.1\r\nHost: evil.internal\r\nConnection: close\r\n\r\n')
  t.equal(meshOk.statuses[0], 200, 'absolute-form authority app wins over a disagreeing Host (RFC 9112 §3.2.2)')
  t.match(meshOk.data, /"upstream":"adm"/, 'and its path is canonicalized like any other')
})
