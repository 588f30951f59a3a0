// Waiting in tests: a plain sleep, and polling until a condition holds or a deadline passes.

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Poll `check` every `everyMs` until it is true; throw naming `what` after `timeoutMs`. */
export async function until (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000, everyMs = 50): Promise<void> {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await sleep(everyMs)
  }
}

/** Wait until the access log has `n` lines (they are written when the response finishes). */
export async function waitForLogs (logs: unknown[], n: number, timeoutMs = 2000): Promise<void> {
  const start = Date.now()
  while (logs.length < n) {
    if (Date.now() - start > timeoutMs) throw new Error(`expected ${n} access-log lines, got ${logs.length}`)
    await sleep(5)
  }
}

/** Whether `cond` comes to hold within `ms` (polled every 5 ms): the test fails rather than hangs. */
export async function holdsWithin (cond: () => boolean, ms = 1000): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await sleep(5)
  }
  return true
}
