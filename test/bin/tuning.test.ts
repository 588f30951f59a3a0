import { fork } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { tuningOptions } from '../../bin/tuning.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { serviceEntry } from '../helpers/yaml.js'

// The CLI's hardening and TLS flags: parsed from flags or the environment (flag wins), bad
// values named, and really applied by a meshgate process started with them.

t.test('tuningOptions: flags and environment map to GatewayOptions', async t => {
  t.same(tuningOptions({}, {}), {}, 'nothing set: every default stays')
  t.same(tuningOptions({ 'path-normalization': 'merge_slashes', 'headers-timeout': '1.5', 'max-body-bytes': '1024' }, {}), {
    pathNormalization: 'MERGE_SLASHES', headersTimeoutMs: 1500, maxRequestBodyBytes: 1024
  })
  t.same(tuningOptions({ 'escaped-slashes': 'KEEP_UNCHANGED' }, { MESHGATE_ESCAPED_SLASHES: 'UNESCAPE_AND_FORWARD', MESHGATE_MAX_HEADERS_COUNT: '50' }), {
    escapedSlashes: 'KEEP_UNCHANGED', maxHeadersCount: 50
  }, 'a flag wins over its environment variable')
  t.same(tuningOptions({ overload: 'off', 'overload-max-event-loop-delay': '200' }, {}), { overload: false })
  t.same(tuningOptions({ 'overload-max-event-loop-delay': '200' }, {}), { overload: { maxEventLoopDelayMs: 200 } })
  t.same(tuningOptions({ 'credentials-dir': '/etc/meshgate/credentials' }, {}), { credentialsDir: '/etc/meshgate/credentials' })
  t.throws(() => tuningOptions({ 'headers-with-underscores': 'MAYBE' }, {}), /--headers-with-underscores \(MESHGATE_HEADERS_WITH_UNDERSCORES\) "MAYBE": expected one of REJECT, DROP, ALLOW/)
  t.throws(() => tuningOptions({}, { MESHGATE_MAX_HEADER_BYTES: '1.5k' }), /--max-header-bytes .*"1.5k": expected a non-negative integer/)
  t.throws(() => tuningOptions({ 'request-timeout': '-1' }, {}), /expected a number of seconds/)
})

const bin = fileURLToPath(new URL('../../bin/meshgate.ts', import.meta.url))

function run (args: string[]): Promise<{ code: number | null; stderr: string; mesh?: string; kill: () => Promise<number | null> }> {
  return new Promise((resolve, reject) => {
    const child = fork(bin, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
    let stderr = ''
    const exited = new Promise<number | null>(res => child.once('exit', code => res(code)))
    const kill = async (): Promise<number | null> => { child.kill('SIGTERM'); return await exited }
    child.stderr!.on('data', c => {
      stderr += c
      const m = /"url":"(http:\/\/[^"]+)","msg":"mesh listener ready"/.exec(stderr) ?? /"listener":"mesh","url":"(http:\/\/[^"]+)"/.exec(stderr)
      if (m !== null) resolve({ code: null, stderr, mesh: m[1], kill })
    })
    child.once('exit', code => resolve({ code, stderr, kill }))
    child.once('error', reject)
  })
}

t.test('a bad flag value stops the CLI with exit 2 and names the flag', async t => {
  const r = await run(['--config', 'gateway-config', '--escaped-slashes', 'sometimes'])
  t.equal(r.code, 2)
  t.match(r.stderr, '--escaped-slashes (MESHGATE_ESCAPED_SLASHES) "sometimes": expected one of REJECT, KEEP_UNCHANGED, UNESCAPE_AND_FORWARD, UNESCAPE_AND_REDIRECT')
})

t.test('flags given to the CLI take effect on the listeners', async t => {
  const up = await startUpstream('app')
  t.teardown(() => up.close())
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-tuning-'))
  const file = join(dir, 'app.yaml')
  writeFileSync(file, serviceEntry('app', { v1: up.port }))
  const base = ['--config', file, '--host', '127.0.0.1', '--mesh-port', '0', '--admin-port', 'off', '--access-log', 'off']

  const strict = await run(base)
  t.ok(strict.mesh, `started (${strict.mesh})`)
  t.equal((await rawRequest(strict.mesh!, '/a%2Fb', { headers: { host: 'app' } })).status, 400, 'default: escaped slash rejected')
  t.equal((await rawRequest(strict.mesh!, '/x', { headers: { host: 'app', x_user: 'admin' } })).status, 400, 'default: underscore header rejected')
  t.equal(await strict.kill(), 0)

  const relaxed = await run([...base, '--escaped-slashes', 'KEEP_UNCHANGED', '--headers-with-underscores', 'DROP', '--max-headers-count', '8'])
  t.ok(relaxed.mesh)
  const r = await rawRequest(relaxed.mesh!, '/a%2Fb', { headers: { host: 'app', x_user: 'admin' } })
  t.equal(r.status, 200, 'KEEP_UNCHANGED forwards the escaped slash')
  const seen = JSON.parse(r.body)
  t.equal(seen.url, '/a%2Fb')
  t.equal(seen.headers.x_user, undefined, 'DROP removed the underscore header')
  const many: Record<string, string> = { host: 'app' }
  for (let i = 0; i < 12; i++) many[`x-h${i}`] = 'v'
  t.equal((await rawRequest(relaxed.mesh!, '/', { headers: many })).status, 431, '--max-headers-count 8 applies')
  t.equal(await relaxed.kill(), 0)
})

t.test('validate --credentials-dir: a credentialName whose files are missing is an error naming them', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-validate-creds-'))
  const file = join(dir, 'gw.yaml')
  writeFileSync(file, `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  servers:
  - port: { number: 443, name: https, protocol: HTTPS }
    hosts: [shop.example.com]
    tls: { mode: SIMPLE, credentialName: shop-cert }
`)
  const creds = join(dir, 'secrets')
  const validate = (): Promise<{ code: number | null; out: string }> => new Promise((resolve, reject) => {
    const child = fork(bin, ['validate', '--credentials-dir', creds, file], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    let out = ''
    child.stdout!.on('data', c => { out += c })
    child.stderr!.on('data', c => { out += c })
    child.once('exit', code => resolve({ code, out }))
    child.once('error', reject)
  })
  let r = await validate()
  t.equal(r.code, 1, 'missing secret files: invalid')
  t.match(r.out, 'spec.servers[0].tls.credentialName')
  t.match(r.out, join(creds, 'shop-cert', 'tls.crt'), 'names the file looked for')
  const { mkdirSync } = await import('node:fs')
  mkdirSync(join(creds, 'shop-cert'), { recursive: true })
  writeFileSync(join(creds, 'shop-cert', 'tls.crt'), 'cert')
  writeFileSync(join(creds, 'shop-cert', 'tls.key'), 'key')
  r = await validate()
  t.equal(r.code, 0, `valid once the secret's files exist (${r.out.trim()})`)
})
