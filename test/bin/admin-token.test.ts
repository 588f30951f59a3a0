import { fork } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { rawRequest } from '../helpers/raw-http.js'
import { serviceEntry } from '../helpers/yaml.js'

// The CLI's admin token and Host options: a generated token is printed once on stderr as plain
// text and never written into the JSON log; --admin-allowed-hosts (or its environment
// variable) adds names the admin API answers.

const bin = fileURLToPath(new URL('../../bin/meshgate.ts', import.meta.url))

interface Started { stderr: () => string; admin: string; stop: () => Promise<number | null> }

function start (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = fork(bin, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { ...process.env, MESHGATE_ADMIN_TOKEN: '', MESHGATE_ADMIN_ALLOWED_HOSTS: '', ...env } })
    let stderr = ''
    const exited = new Promise<number | null>(res => child.once('exit', code => res(code)))
    const stop = async (): Promise<number | null> => { child.kill('SIGTERM'); return await exited }
    child.stderr!.on('data', c => {
      stderr += c
      const m = /"url":"(http:\/\/[^"]+)","msg":"admin API ready"/.exec(stderr)
      // Resolve once the lines written right after "admin API ready" are in.
      if (m !== null) setTimeout(() => resolve({ stderr: () => stderr, admin: m[1], stop }), 200)
    })
    child.once('exit', code => reject(new Error(`exited ${code}: ${stderr}`)))
    child.once('error', reject)
  })
}

function configFile (): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-admin-token-'))
  const file = join(dir, 'app.yaml')
  writeFileSync(file, serviceEntry('app', { v1: 9 }))
  return file
}

const base = (file: string): string[] => ['--config', file, '--host', '127.0.0.1', '--mesh-port', '0', '--admin-port', '0', '--access-log', 'off']

t.test('a generated admin token is printed once on stderr, in plain text, and never in the JSON log', async t => {
  const gw = await start(base(configFile()))
  const err = gw.stderr()
  const m = /^meshgate: no admin token given; generated one for this run \(not logged\): ([A-Za-z0-9_-]{20,})$/m.exec(err)
  t.ok(m !== null, 'the token line is on stderr')
  const token = m![1]
  t.equal(err.split(token).length - 1, 1, 'the token appears exactly once')
  const jsonLines = err.split('\n').filter(l => l.startsWith('{'))
  t.ok(jsonLines.length >= 2, 'JSON log lines are on stderr too')
  for (const l of jsonLines) JSON.parse(l)
  t.ok(jsonLines.every(l => !l.includes(token)), 'no JSON log line carries the token')
  t.ok(jsonLines.some(l => /generated one for this run and printed it on stderr \(not logged\)/.test(l)), 'the log says a token was generated, without it')
  t.ok(err.split('\n').filter(l => l.startsWith('meshgate: ')).every(l => !l.startsWith('{')), 'the token line is not JSON')

  t.equal((await rawRequest(gw.admin, '/config')).status, 401, 'reads need the token')
  t.equal((await rawRequest(gw.admin, '/config', { headers: { authorization: `Bearer ${token}` } })).status, 200, 'the printed token works')
  t.equal((await rawRequest(gw.admin, '/ready')).status, 200, '/ready needs none')
  t.equal(await gw.stop(), 0)
  t.equal(gw.stderr().split(token).length - 1, 1, 'still once after shutdown')
})

t.test('a given token is neither printed nor logged', async t => {
  const token = 'given-token-0123456789'
  const gw = await start([...base(configFile()), '--admin-token', token])
  t.notMatch(gw.stderr(), /generated/)
  t.notOk(gw.stderr().includes(token))
  t.equal((await rawRequest(gw.admin, '/config', { headers: { authorization: `Bearer ${token}` } })).status, 200)
  await gw.stop()
})

t.test('--admin-allowed-hosts and MESHGATE_ADMIN_ALLOWED_HOSTS add Host names', async t => {
  const token = 'hosts-token-0123456789'
  const auth = { authorization: `Bearer ${token}` }
  const flag = await start([...base(configFile()), '--admin-token', token, '--admin-allowed-hosts', 'admin.one,admin.two', '--admin-allowed-hosts', 'admin.three'])
  t.teardown(() => flag.stop())
  for (const host of ['admin.one', 'admin.two:15000', 'admin.three', 'localhost']) t.equal((await rawRequest(flag.admin, '/config', { headers: { ...auth, host } })).status, 200, `flag: ${host} allowed`)
  t.equal((await rawRequest(flag.admin, '/config', { headers: { ...auth, host: 'evil.example' } })).status, 403, 'flag: evil.example refused')
  const env = await start([...base(configFile()), '--admin-token', token], { MESHGATE_ADMIN_ALLOWED_HOSTS: 'ops.internal, admin.internal' })
  t.teardown(() => env.stop())
  t.equal((await rawRequest(env.admin, '/config', { headers: { ...auth, host: 'admin.internal' } })).status, 200, 'environment: admin.internal allowed')
  t.equal((await rawRequest(env.admin, '/config', { headers: { ...auth, host: 'admin.one' } })).status, 403, 'environment: others refused')
  const refusals = (): string[] => env.stderr().split('\n').filter(l => l.includes('"admin call refused"'))
  for (let i = 0; i < 100 && refusals().length === 0; i++) await new Promise(resolve => setTimeout(resolve, 20))
  const warn = refusals()
  t.equal(warn.length, 1, 'the refusal is an audit line in the JSON log')
  t.match(JSON.parse(warn[0]), { audit: 'admin', auth: 'bad-host', status: 403, host: 'admin.one' })
})

t.test('a malformed --admin-allowed-hosts entry stops the CLI with its name', async t => {
  const child = fork(bin, [...base(configFile()), '--admin-allowed-hosts', 'bad host'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  let err = ''
  child.stderr!.on('data', c => { err += c })
  const code = await new Promise<number | null>(resolve => child.once('exit', c => resolve(c)))
  t.equal(code, 1)
  t.match(err, /admin allowed host "bad host"/)
})
