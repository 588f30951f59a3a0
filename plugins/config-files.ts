import { open, readdir, stat } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { MAX_TEXT_BYTES, type LoadInput } from '../src/config/load.js'
import { Codes, type Problem } from '../src/config/problem.js'

/**
 * Largest config file read (bytes), the loader's per-file cap: a guard against a wrong path
 * (a log, a disk image) and against a huge file exhausting memory before it is parsed.
 */
export const MAX_CONFIG_FILE_BYTES = MAX_TEXT_BYTES

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
        const text = await readBounded(f, MAX_CONFIG_FILE_BYTES)
        if (typeof text === 'number') { ioProblem(f, `file is ${text} bytes or more; the limit is ${MAX_CONFIG_FILE_BYTES}`); continue }
        inputs.push({ file: f, text })
      } catch (err) {
        ioProblem(f, `cannot read: ${(err as Error).message}`)
      }
    }
  }
  return { inputs, problems }
}

/**
 * Read a whole file through one descriptor, at most `limit` bytes: the text, or the size
 * reached when the file is larger. One open file is one inode, so a writer replacing the file
 * by rename (the atomic way to update config) never gives a mix of old and new bytes, and a
 * file that grows after the size check still cannot be read past the limit.
 */
async function readBounded (file: string, limit: number): Promise<string | number> {
  const fh = await open(file, 'r')
  try {
    const st = await fh.stat()
    if (st.size > limit) return st.size
    const chunks: Buffer[] = []
    let len = 0
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(limit + 1 - len, 1024 * 1024))
      if (buf.length === 0) return len
      const { bytesRead } = await fh.read(buf, 0, buf.length, len)
      if (bytesRead === 0) break
      chunks.push(buf.subarray(0, bytesRead))
      len += bytesRead
      if (len > limit) return len
    }
    return Buffer.concat(chunks, len).toString('utf8')
  } finally {
    await fh.close()
  }
}
