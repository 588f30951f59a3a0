// The real meshgate CLI (bin/meshgate.ts) in a child process, run through tap's TypeScript
// loader, and a request that takes a connection of its own (the cluster deals connections out
// to the workers in turn, so each such request may reach another worker).
import { spawn, type ChildProcess } from 'node:child_process'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { fileURLToPath } from 'node:url'
import type { Teardown } from './gateway.js'

export const MESHGATE_CLI = fileURLToPath(new URL('../../bin/meshgate.ts', import.meta.url))
/** The loader flags tap started this test with; a child node needs them to run TypeScript. */
export const TS_LOADER = process.execArgv.filter(x => x.includes('@tapjs/typescript'))

export interface CliProcess {
  child: ChildProcess
  /** The exit code, once the process exited and its stderr (shared with any workers) is fully read. */
  exited: Promise<number | null>
  stderr: () => string
  /** The JSON log lines written to stderr so far. */
  lines: () => Array<Record<string, unknown>>
}

/**
 * Start `meshgate <args>` and wait until its stderr shows `ready` (90 s at most, or the process
 * exits: both reject with what it wrote). Killed when the test ends if it is still running.
 */
export async function startCli (t: Teardown, args: string[], ready: string): Promise<CliProcess> {
  const child = spawn(process.execPath, [...TS_LOADER, MESHGATE_CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  const exited = new Promise<number | null>(resolve => child.on('close', code => resolve(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in time: ${stderr}`)), 90_000)
    child.stderr!.on('data', c => {
      stderr += String(c)
      if (stderr.includes(ready)) { clearTimeout(timer); resolve() }
    })
    child.on('exit', code => { clearTimeout(timer); reject(new Error(`exited early (${code}): ${stderr}`)) })
  })
  return {
    child,
    exited,
    stderr: () => stderr,
    lines: () => stderr.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)
  }
}

/** One request to 127.0.0.1:`port` on its own connection (`connection: close`), 20 s at most. */
export function requestOnce (port: number, path = '/', method = 'GET', headers: Record<string, string> = {}, body?: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, agent: false, headers: { connection: 'close', ...headers } }, res => {
      let text = ''
      res.on('data', c => { text += String(c) })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
    })
    req.on('error', reject)
    req.setTimeout(20_000, () => req.destroy(new Error('timeout')))
    req.end(body)
  })
}
