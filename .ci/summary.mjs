// Reads a TAP stream on stdin (tap --reporter=tap), echoes it, and prints one closing line
// `N passed, N failed` counting leaf assertions (a subtest's own summary line is not counted
// twice), plus the extra checks given as name=status pairs (typecheck=0, lint=1, ...).
import { Parser } from 'tap-parser'

let pass = 0
let fail = 0
const failures = []
for (const arg of process.argv.slice(2)) {
  const [name, status] = arg.split('=')
  if (status === '0') pass++
  else { fail++; failures.push(`${name} (exit ${status})`) }
}
let asserts = 0
let failed = 0
let children = 0
let failedChildren = 0
let crashed = 0
function attach (p, path) {
  p.on('assert', r => {
    asserts++
    if (!r.ok && !r.todo && !r.skip) { failed++; failures.push([...path, r.name].join(' > ')) }
  })
  p.on('child', c => {
    children++
    c.on('complete', res => {
      if (!res.ok) {
        failedChildren++
        // A subtest that failed without any failing assertion (crash, timeout, bail) still counts once.
        if (res.fail === 0) crashed++
      }
    })
    attach(c, [...path, c.name])
  })
}
const root = new Parser()
attach(root, [])
root.on('complete', () => {
  pass += asserts - children - (failed - failedChildren)
  fail += failed - failedChildren + crashed
  const leafFailures = failures.filter((f, i, all) => !all.some((g, j) => j !== i && g.startsWith(f + ' > ')))
  if (fail > 0) process.stdout.write('\nFailures:\n' + leafFailures.map(f => `  - ${f}`).join('\n') + '\n')
  process.stdout.write(`${pass} passed, ${fail} failed\n`)
  process.exitCode = fail > 0 ? 1 : 0
})
process.stdin.on('data', d => { process.stdout.write(d); root.write(d) })
process.stdin.on('end', () => root.end())
