// Reads a TAP stream on stdin (tap --reporter=tap), echoes it, and prints one closing line
// `N passed, N failed` counting every assertion (subtest parents flattened away), plus the
// extra checks passed in argv as name=status pairs (typecheck=0, lint=1, ...).
import { Parser } from 'tap-parser'

let pass = 0
let fail = 0
for (const arg of process.argv.slice(2)) {
  const [name, status] = arg.split('=')
  if (status === '0') pass++
  else { fail++; process.stdout.write(`check failed: ${name} (exit ${status})\n`) }
}
const failures = []
const parser = new Parser({ flat: true }, results => {
  pass += results.pass
  fail += results.fail
  if (!results.ok && results.fail === 0) {
    // A file that crashed or bailed without a failing assertion still counts as a failure.
    fail++
    failures.push('test run did not complete cleanly' + (results.bailout ? `: ${results.bailout}` : ''))
  }
  for (const f of results.failures ?? []) failures.push(f.fullname || f.name)
  if (failures.length > 0) process.stdout.write('\nFailures:\n' + failures.map(f => `  - ${f}`).join('\n') + '\n')
  process.stdout.write(`${pass} passed, ${fail} failed\n`)
  process.exitCode = fail > 0 ? 1 : 0
})
process.stdin.on('data', d => { process.stdout.write(d); parser.write(d) })
process.stdin.on('end', () => parser.end())
