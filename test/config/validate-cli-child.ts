// Runs `meshgate validate …` (bin/meshgate.ts main) once per argument list in this child process,
// capturing what it prints, and sends [{ args, code, stdout }] to the parent over IPC. Used by
// test/config/invalid-fixtures.test.ts: one process for every fixture instead of one each.
import { main } from '../../bin/meshgate.js'

const runs = JSON.parse(process.argv[2] ?? '[]') as string[][]
const results: Array<{ args: string[]; code: number; stdout: string }> = []
const write = process.stdout.write.bind(process.stdout)
for (const args of runs) {
  let stdout = ''
  process.stdout.write = ((chunk: string | Uint8Array) => { stdout += String(chunk); return true }) as typeof process.stdout.write
  try {
    const code = await main(['validate', ...args])
    results.push({ args, code, stdout })
  } finally {
    process.stdout.write = write
  }
}
process.send?.(results, () => process.exit(0))
