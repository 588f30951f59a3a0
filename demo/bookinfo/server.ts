#!/usr/bin/env node
// CLI: run one Bookinfo stand-in.
//
//   node dist/demo/bookinfo/server.js <productpage|details|reviews|ratings> [--port N] [--host H]
//
// Port: --port, else env PORT, else 9080 (0 = any free port). Host: --host, else 127.0.0.1.
// Everything else comes from the upstream environment variables (see options.ts).
// Prints one line `<name> <version> listening on http://host:port`; exits 0 on SIGTERM/SIGINT.

import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { optionsFromEnv, SERVICE_NAMES, type ServiceName } from './options.js'
import { startService } from './index.js'

const USAGE = 'usage: server.js <productpage|details|reviews|ratings> [--port N] [--host H]'

export interface CliArgs { name: ServiceName; port: number; host: string }

export function parseArgs (argv: string[], env: NodeJS.ProcessEnv = process.env): CliArgs {
  let name: string | undefined
  let port: string | undefined
  let host: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const eq = a.indexOf('=')
    const key = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a
    const inline = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : undefined
    if (key === '--port' || key === '--host') {
      const value = inline ?? argv[++i]
      if (value === undefined) throw new Error(`${key} needs a value`)
      if (key === '--port') port = value
      else host = value
    } else if (a === '-h' || a === '--help') {
      throw new Error(USAGE)
    } else if (a.startsWith('-')) {
      throw new Error(`unknown option ${a}`)
    } else if (name === undefined) {
      name = a
    } else {
      throw new Error(`unexpected argument ${a}`)
    }
  }
  if (name === undefined || !(SERVICE_NAMES as readonly string[]).includes(name)) {
    throw new Error(name === undefined ? 'missing service name' : `unknown service ${name}`)
  }
  const portText = port ?? env.PORT ?? '9080'
  const portNum = Number(portText)
  if (!/^[0-9]+$/.test(portText) || portNum > 65535) throw new Error(`invalid port ${portText}`)
  return { name: name as ServiceName, port: portNum, host: host ?? '127.0.0.1' }
}

export async function main (argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let args: CliArgs
  try {
    args = parseArgs(argv, env)
  } catch (err) {
    const msg = (err as Error).message
    process.stderr.write(msg === USAGE ? `${USAGE}\n` : `${msg}\n${USAGE}\n`)
    process.exitCode = 2
    return
  }
  const opts = { ...optionsFromEnv(args.name, env), port: args.port, host: args.host }
  const svc = await startService(args.name, opts)
  process.stdout.write(`${svc.name} ${svc.version} listening on ${svc.url}\n`)
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    const force = setTimeout(() => process.exit(0), 5000)
    force.unref()
    svc.close().then(() => process.exit(0), () => process.exit(0))
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

function isEntryPoint (): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  main().catch(err => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
