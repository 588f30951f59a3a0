import { readdir, readFile, stat } from 'node:fs/promises'
import { extname, join } from 'node:path'
import type { LoadInput } from '../src/config/load.js'
import { Codes, type Problem } from '../src/config/problem.js'

/** Largest config file read (bytes): a guard against pointing meshgate at the wrong file. */
export const MAX_CONFIG_FILE_BYTES = 8 * 1024 * 1024

const YAML_EXT = new Set(['.yaml', '.yml'])

/**
 * Read configuration inputs from files and directories. A directory contributes its `*.yaml`
 * and `*.yml` files (not recursive), sorted by name so the load order is stable.
 * Unreadable paths become problems, never exceptions.
 */
export async function readConfigInputs (paths: readonly string[]): Promise<{ inputs: LoadInput[]; problems: Problem[] }> {
  const inputs: LoadInput[] = []
  const problems: Problem[] = []
  const ioProblem = (file: string, message: string): void => {
    problems.push({ severity: 'Error', code: Codes.Io, message, file, line: 1, column: 1 })
  }
  for (const p of paths) {
    let files: string[]
    try {
      const st = await stat(p)
      if (st.isDirectory()) {
        files = (await readdir(p)).filter(f => YAML_EXT.has(extname(f).toLowerCase())).sort().map(f => join(p, f))
        if (files.length === 0) ioProblem(p, 'directory has no .yaml or .yml files')
      } else {
        files = [p]
      }
    } catch (err) {
      ioProblem(p, `cannot read: ${(err as Error).message}`)
      continue
    }
    for (const f of files) {
      try {
        const st = await stat(f)
        if (st.size > MAX_CONFIG_FILE_BYTES) { ioProblem(f, `file is ${st.size} bytes; the limit is ${MAX_CONFIG_FILE_BYTES}`); continue }
        inputs.push({ file: f, text: await readFile(f, 'utf8') })
      } catch (err) {
        ioProblem(f, `cannot read: ${(err as Error).message}`)
      }
    }
  }
  return { inputs, problems }
}
