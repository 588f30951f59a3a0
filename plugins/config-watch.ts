import { watch, type FSWatcher } from 'node:fs'
import type { LoadInput } from '../src/config/load.js'
import { Codes, type Problem } from '../src/config/problem.js'

/**
 * The one config watcher, used by single-process mode and by the workers' primary alike: file
 * events on the config paths are debounced into one reload, and a reload reads until the files
 * have settled, so an editor's or a deploy tool's several writes are applied once, whole.
 */

export type Read = () => Promise<{ inputs: LoadInput[]; problems: Problem[] }>

/** Rounds of `settleMs` a watch reload waits for the files to stop changing before it gives up. */
export const MAX_SETTLE_ROUNDS = 20

/** Watch `paths`; `fire` runs `debounceMs` after the last event. Returns the function that stops watching. */
export function watchPaths (paths: readonly string[], debounceMs: number, fire: () => void): () => void {
  let timer: NodeJS.Timeout | undefined
  const trigger = (): void => {
    if (timer !== undefined) clearTimeout(timer)
    timer = setTimeout(fire, debounceMs)
    timer.unref()
  }
  const watchers: FSWatcher[] = []
  for (const p of paths) {
    try { watchers.push(watch(p, { persistent: false }, trigger)) } catch { /* a missing path is reported by the load */ }
  }
  return () => {
    if (timer !== undefined) clearTimeout(timer)
    for (const w of watchers) w.close()
  }
}

/**
 * Re-read until two reads `settleMs` apart agree; after MAX_SETTLE_ROUNDS an error (MG0010), so
 * a file that never stops changing is never applied half-written.
 */
export async function readSettled (first: Awaited<ReturnType<Read>>, read: Read, settleMs: number): Promise<Awaited<ReturnType<Read>>> {
  let prev = first
  for (let i = 0; i < MAX_SETTLE_ROUNDS; i++) {
    await new Promise(resolve => setTimeout(resolve, settleMs))
    const next = await read()
    if (sameInputs(prev, next)) return next
    prev = next
  }
  return {
    inputs: prev.inputs,
    problems: [...prev.problems, { severity: 'Error', code: Codes.NotSettled, message: `the configuration files kept changing for ${(MAX_SETTLE_ROUNDS * settleMs) / 1000} s; not applied (write a new file and rename it over the old one)`, file: prev.inputs[0]?.file ?? '-', line: 1, column: 1 }]
  }
}

function sameInputs (a: Awaited<ReturnType<Read>>, b: Awaited<ReturnType<Read>>): boolean {
  if (a.inputs.length !== b.inputs.length || a.problems.length !== b.problems.length) return false
  for (let i = 0; i < a.inputs.length; i++) if (a.inputs[i].file !== b.inputs[i].file || a.inputs[i].text !== b.inputs[i].text) return false
  return true
}
