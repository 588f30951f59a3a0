import t from 'tap'
import { fork, spawn } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { loadConfig } from '../../src/config/load.js'
import { formatProblem } from '../../src/config/problem.js'

// Every file in test/fixtures/invalid has one mistake. Each is loaded in-process and validated by
// the real CLI (`meshgate validate FILE`), and the exact problem line is asserted: severity, code,
// resource, file:line:column, field path and message; exit code 1. Valid files exit 0.

const root = fileURLToPath(new URL('../../', import.meta.url))
const dir = 'test/fixtures/invalid'
const VS = 'VirtualService default/reviews'

const expected: Record<string, string> = {
  'bad-abort-status.yaml': `Error [IST0106] (${VS} ${dir}/bad-abort-status.yaml:12:9) spec.http[0].fault.abort.httpStatus: httpStatus 999 must be between 200 and 599`,
  'bad-api-version.yaml': `Error [IST0106] (${VS} ${dir}/bad-api-version.yaml:2:1) apiVersion: apiVersion "networking.istio.io/v2" is not one of networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3`,
  'bad-duration.yaml': `Error [IST0106] (${VS} ${dir}/bad-duration.yaml:10:5) spec.http[0].timeout: "10 seconds" is not a duration (e.g. 500ms, 7s, 1.5s, 3m, 1h)`,
  'bad-host.yaml': `Error [IST0106] (${VS} ${dir}/bad-host.yaml:8:5) spec.hosts[0]: host "reviews.*.example.com": a wildcard is only allowed as the whole leftmost label ("*.example.com")`,
  'bad-redirect-code.yaml': `Error [IST0106] (${VS} ${dir}/bad-redirect-code.yaml:12:7) spec.http[0].redirect.redirectCode: redirectCode 305 is invalid: use 301, 302, 303, 307 or 308`,
  'bad-regex.yaml': `Error [IST0106] (${VS} ${dir}/bad-regex.yaml:12:9) spec.http[0].match[0].uri.regex: regex "/api/(?!internal).*" is not valid RE2: invalid perl operator: (?!`,
  'duplicate-keys.yaml': `Error [MG0001] (${dir}/duplicate-keys.yaml:8:3) Map keys must be unique`,
  'missing-host.yaml': `Error [IST0106] (${VS} ${dir}/missing-host.yaml:11:7) spec.http[0].route[0].destination.host: required field "host" is missing`,
  'negative-weight.yaml': `Error [IST0106] (${VS} ${dir}/negative-weight.yaml:16:7) spec.http[0].route[1].weight: weight -10 must be >= 0`,
  'two-actions.yaml': `Error [IST0106] (${VS} ${dir}/two-actions.yaml:10:5) spec.http[0]: an HTTP route has exactly one of route, redirect, directResponse, delegate; found route, redirect`,
  'typo-field.yaml': `Error [IST0106] (${VS} ${dir}/typo-field.yaml:13:9) spec.http[0].route[0].destination.subst: unknown field "subst"`,
  'unknown-gateway.yaml': `Error [IST0101] (${VS} ${dir}/unknown-gateway.yaml:10:5) spec.gateways[0]: Referenced gateway not found: "bookinfo-gatewy"`,
  'uppercase-header.yaml': `Error [IST0106] (${VS} ${dir}/uppercase-header.yaml:12:9) spec.http[0].match[0].headers.End-User: header name "End-User" must be lowercase`,
  'wrong-type.yaml': `Error [IST0106] (${VS} ${dir}/wrong-type.yaml:13:7) spec.http[0].route[0].weight: Expected integer`,
  // The parser notices the unclosed `[` of line 8 where the next document starts.
  'yaml-syntax.yaml': `Error [MG0001] (${dir}/yaml-syntax.yaml:9:1) Flow sequence in block collection must be sufficiently indented and end with a ]`,
  'zero-weights.yaml': `Error [IST0106] (${VS} ${dir}/zero-weights.yaml:10:5) spec.http[0].route: total destination weight = 0: with several destinations, give at least one a positive weight`
}
const SUBSET_WARNING = `Warning [IST0101] (${VS} ${dir}/undefined-subset.yaml:13:9) spec.http[0].route[0].destination.subset: Referenced host+subset in destinationrule not found: "reviews+v2" (requests answer 503 NC)`

const files = readdirSync(new URL(`../../${dir}/`, import.meta.url)).filter(f => f.endsWith('.yaml')).sort()

t.test('every fixture has an expected problem (and only the known ones exist)', async t => {
  t.same(files, [...Object.keys(expected), 'undefined-subset.yaml'].sort())
})

t.test('loader: exactly the one expected problem per fixture', async t => {
  for (const f of Object.keys(expected)) {
    const r = loadConfig([{ file: `${dir}/${f}`, text: readFileSync(new URL(`../../${dir}/${f}`, import.meta.url), 'utf8') }])
    t.same(r.problems.map(formatProblem), [expected[f]], f)
    t.equal(r.ok, false, `${f} does not load`)
  }
  const text = readFileSync(new URL(`../../${dir}/undefined-subset.yaml`, import.meta.url), 'utf8')
  const warn = loadConfig([{ file: `${dir}/undefined-subset.yaml`, text }])
  t.same(warn.problems.map(formatProblem), [SUBSET_WARNING])
  t.equal(warn.ok, true, 'a warning alone loads')
  const strict = loadConfig([{ file: `${dir}/undefined-subset.yaml`, text }], { strict: true })
  t.same(strict.problems.map(formatProblem), [SUBSET_WARNING.replace(/^Warning/, 'Error')])
  t.equal(strict.ok, false)
})

interface Run { args: string[]; code: number; stdout: string }

t.test('CLI main: meshgate validate FILE prints the problem and exits 1', async t => {
  const runs: string[][] = [
    ...Object.keys(expected).map(f => [`${dir}/${f}`]),
    [`${dir}/undefined-subset.yaml`],
    ['--strict', `${dir}/undefined-subset.yaml`],
    ['gateway-config', 'gateway-config/local/services.yaml'],
    [`${dir}/typo-field.yaml`, `${dir}/bad-regex.yaml`]
  ]
  const child = fork(fileURLToPath(new URL('./validate-cli-child.ts', import.meta.url)), [JSON.stringify(runs)], { cwd: root, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const results = await new Promise<Run[]>((resolve, reject) => {
    child.once('message', m => resolve(m as Run[]))
    child.once('exit', code => reject(new Error(`validate child exited ${code} without results`)))
  })
  const byArgs = new Map(results.map(r => [r.args.join(' '), r]))
  for (const f of Object.keys(expected)) {
    const r = byArgs.get(`${dir}/${f}`)!
    t.equal(r.stdout, `${expected[f]}\nError: 1 error(s) in 1 file(s)\n`, f)
    t.equal(r.code, 1, `${f}: exit 1`)
  }
  const warn = byArgs.get(`${dir}/undefined-subset.yaml`)!
  t.equal(warn.stdout, `${SUBSET_WARNING}\n✔ 2 resource(s) in 1 file(s) valid (1 warning(s))\n`)
  t.equal(warn.code, 0, 'warnings only: exit 0')
  const strict = byArgs.get(`--strict ${dir}/undefined-subset.yaml`)!
  t.equal(strict.stdout, `${SUBSET_WARNING.replace(/^Warning/, 'Error')}\nError: 1 error(s) in 1 file(s)\n`)
  t.equal(strict.code, 1, '--strict: exit 1')
  const valid = byArgs.get('gateway-config gateway-config/local/services.yaml')!
  t.equal(valid.stdout, '✔ 10 resource(s) in 3 file(s) valid\n', 'the demo configuration is valid with no warnings')
  t.equal(valid.code, 0)
  const two = byArgs.get(`${dir}/typo-field.yaml ${dir}/bad-regex.yaml`)!
  // Both files define VirtualService and ServiceEntry default/reviews: the later file's replace the earlier's.
  t.equal(two.stdout, [
    `Warning [MG0005] (${VS} ${dir}/bad-regex.yaml:2:1) replaces the VirtualService of the same name defined at ${dir}/typo-field.yaml:2 (the later definition wins, as with kubectl apply)`,
    expected['bad-regex.yaml'],
    `Warning [MG0005] (ServiceEntry default/reviews ${dir}/bad-regex.yaml:17:1) replaces the ServiceEntry of the same name defined at ${dir}/typo-field.yaml:15 (the later definition wins, as with kubectl apply)`,
    expected['typo-field.yaml'],
    'Error: 2 error(s) in 2 file(s)',
    ''
  ].join('\n'), 'every problem at once, sorted by file')
  t.equal(two.code, 1)
})

function runCli (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const tsLoader = process.execArgv.filter(a => a.includes('@tapjs/typescript'))
  const child = spawn(process.execPath, [...tsLoader, 'bin/meshgate.ts', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', c => { stdout += String(c) })
  child.stderr.on('data', c => { stderr += String(c) })
  return new Promise(resolve => child.on('close', code => resolve({ code, stdout, stderr })))
}

// One real process proves the exit status reaches the shell; the child above covers the rest
// (each CLI start compiles the TypeScript sources, seconds on a loaded machine).
t.test('the real CLI process: output and exit status 1', async t => {
  const bad = await runCli(['validate', `${dir}/typo-field.yaml`])
  t.equal(bad.stdout, `${expected['typo-field.yaml']}\nError: 1 error(s) in 1 file(s)\n`)
  t.equal(bad.code, 1, bad.stderr)
})
