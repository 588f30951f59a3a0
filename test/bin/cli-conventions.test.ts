import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import { rawRequest } from '../helpers/raw-http.js'
import { serviceEntry } from '../helpers/yaml.js'

// The CLI behaves as users of istioctl and kubectl expect: --version, validate --help, '-' for
// stdin, -o json|yaml for machine-readable problems, and a quiet exit when the reader of its
// output goes away (`meshgate validate … | head -1`). The version also shows in the admin API's
// GET /config and in the meshgate_build_info metric. Every check runs the real CLI.

const root = fileURLToPath(new URL('../../', import.meta.url))
const bin = fileURLToPath(new URL('../../bin/meshgate.ts', import.meta.url))
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
const typo = 'test/fixtures/invalid/typo-field.yaml'

interface Result { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** The CLI in a child process (this process's TypeScript loader included), optionally fed stdin. */
function run (args: string[], input?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, bin, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', c => { stdout += c })
    child.stderr.on('data', c => { stderr += c })
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
    child.stdin.end(input)
  })
}

t.test('--version and -V print "meshgate <version>" from package.json', async t => {
  const all = [['--version'], ['-V']]
  const results = await Promise.all(all.map(async args => await run(args)))
  for (const [i, args] of all.entries()) {
    const r = results[i]
    t.equal(r.stdout, `meshgate ${version}\n`, args.join(' '))
    t.equal(r.code, 0, `${args.join(' ')}: exit 0`)
    t.equal(r.stderr, '', `${args.join(' ')}: nothing on stderr`)
  }
})

t.test('validate --help prints the validate usage and exits 0', async t => {
  const [help, bad] = await Promise.all([run(['validate', '--help']), run(['validate', '--no-such-flag', typo])])
  t.equal(help.code, 0, 'validate --help: exit 0')
  t.match(help.stdout, /^Usage:\n {2}meshgate validate /, 'the validate usage')
  t.match(help.stdout, '-o, --output FORMAT')
  t.match(help.stdout, "'-' reads YAML from stdin")
  t.equal(help.stderr, '')
  t.equal(bad.code, 2, 'an unknown option is a usage mistake')
  t.match(bad.stderr, /meshgate validate: .*--no-such-flag/)
  t.match(bad.stderr, 'Usage:\n  meshgate validate ')
})

t.test('validate - reads YAML from stdin, named <stdin> in problems', async t => {
  const [bad, good, mixed] = await Promise.all([
    run(['validate', '-'], readFileSync(join(root, typo), 'utf8')),
    run(['validate', '-'], serviceEntry('app', { v1: 9 })),
    run(['validate', typo, '-'], serviceEntry('app', { v1: 9 }))
  ])
  t.equal(bad.code, 1)
  t.equal(bad.stdout, 'Error [IST0106] (VirtualService default/reviews <stdin>:13:9) spec.http[0].route[0].destination.subst: unknown field "subst"\n' +
    'Error: 1 error(s) in 1 file(s)\n')
  t.equal(good.code, 0, good.stdout)
  t.match(good.stdout, /^✔ 1 resource\(s\) in 1 file\(s\) valid\n$/)
  t.equal(mixed.code, 1, 'stdin and files together')
  t.match(mixed.stdout, 'in 2 file(s)')
})

t.test('validate -o json|yaml prints { ok, problems } with every field; the exit code is unchanged', async t => {
  const expected = {
    ok: false,
    problems: [{
      severity: 'Error',
      code: 'IST0106',
      message: 'unknown field "subst"',
      file: typo,
      line: 13,
      column: 9,
      resource: 'VirtualService default/reviews',
      path: 'spec.http[0].route[0].destination.subst'
    }]
  }
  const subset = 'test/fixtures/invalid/undefined-subset.yaml'
  const [json, yaml, warn, stdin, other] = await Promise.all([
    run(['validate', '-o', 'json', typo]),
    run(['validate', '--output=yaml', typo]),
    run(['validate', '-o', 'json', subset]),
    run(['validate', '-o', 'yaml', '-'], serviceEntry('app', { v1: 9 })),
    run(['validate', '-o', 'xml', typo])
  ])
  t.equal(json.code, 1, 'json: exit 1 on errors')
  t.same(JSON.parse(json.stdout), expected)
  t.strictSame(Object.keys(JSON.parse(json.stdout).problems[0]), Object.keys(expected.problems[0]), 'fields in a fixed order')
  t.equal(yaml.code, 1, 'yaml: exit 1 on errors')
  t.same(parseYaml(yaml.stdout), expected)

  t.equal(warn.code, 0, 'a warning alone: exit 0')
  const w = JSON.parse(warn.stdout) as { ok: boolean; problems: Array<Record<string, unknown>> }
  t.equal(w.ok, true)
  t.equal(w.problems.length, 1)
  t.equal(w.problems[0].severity, 'Warning')

  t.equal(stdin.code, 0)
  t.same(parseYaml(stdin.stdout), { ok: true, problems: [] })

  t.equal(other.code, 2, 'an unknown format is a usage mistake')
  t.match(other.stderr, '-o "xml": expected text, json or yaml')
})

/** A config with `n` VirtualServices that each route to a subset no DestinationRule defines: n warnings. */
function manyWarnings (n: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-cli-conventions-'))
  const file = join(dir, 'many.yaml')
  const docs = [serviceEntry('reviews', { v1: 9 })]
  for (let i = 0; i < n; i++) {
    docs.push(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-${i}
spec:
  hosts:
  - reviews-${i}.example.com
  http:
  - route:
    - destination:
        host: reviews
        subset: missing-${i}
`)
  }
  writeFileSync(file, docs.map(d => d.trim()).join('\n---\n') + '\n')
  return file
}

t.test('validate exits quietly when its output pipe closes early (validate … | head -1)', async t => {
  const file = manyWarnings(1500)
  const closed = new Promise<Result>((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, bin, 'validate', file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    // Like `head -1`: read the first chunk, then close the pipe while the CLI is still writing.
    child.stdout.once('data', c => { stdout += c; child.stdout.destroy() })
    child.stderr.on('data', c => { stderr += c })
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
  // The same file read to the end: every warning printed, exit 0.
  const [r, full] = await Promise.all([closed, run(['validate', file])])
  t.ok(r.stdout.length > 0, 'some output was read')
  t.ok(r.code === 0 || r.signal !== null, `exit 0 (or ended by a signal), got code ${r.code} signal ${r.signal}`)
  t.equal(r.stderr, '', 'no stack trace, nothing on stderr')
  t.equal(full.code, 0)
  t.match(full.stdout, '(1500 warning(s))')
  t.ok(full.stdout.length > 256 * 1024, 'more output than a pipe buffers')
})

t.test('the version is in GET /config and in the meshgate_build_info metric', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-cli-conventions-'))
  const file = join(dir, 'app.yaml')
  writeFileSync(file, serviceEntry('app', { v1: 9 }))
  const token = 'cli-conventions-token'
  const child = spawn(process.execPath, [...process.execArgv, bin, '--config', file, '--host', '127.0.0.1', '--mesh-port', '0', '--admin-port', '0', '--access-log', 'off', '--admin-token', token],
    { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MESHGATE_ADMIN_ALLOWED_HOSTS: '' } })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const admin = await new Promise<string>((resolve, reject) => {
    let stderr = ''
    child.stderr.on('data', c => {
      stderr += c
      const m = /"url":"(http:\/\/[^"]+)","msg":"admin API ready"/.exec(stderr)
      if (m !== null) resolve(m[1])
    })
    child.once('exit', code => reject(new Error(`exited ${code}: ${stderr}`)))
  })
  const headers = { authorization: `Bearer ${token}` }
  const config = await rawRequest(admin, '/config', { headers })
  t.equal(config.status, 200)
  t.equal(JSON.parse(config.body).version, version, 'GET /config carries the version')
  const metrics = await rawRequest(admin, '/stats/prometheus', { headers })
  t.equal(metrics.status, 200)
  t.match(metrics.body, `\nmeshgate_build_info{version="${version}",node="${process.version}"} 1\n`)
  child.kill('SIGTERM')
  t.equal(await exited, 0)
})
