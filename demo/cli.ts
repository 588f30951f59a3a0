#!/usr/bin/env node
import { createServer, request } from 'node:http'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'
import { ConfigError, formatProblem, type RunningAdmin, startAdmin } from '../index.js'
import { startDemo } from './demo.js'

const USAGE = `Local Bookinfo demo through meshgate.

  npm start [-- --scenario NAME …]          run the demo (stand-ins + meshgate)
  npm run demo -- stop reviews-v3            stop one workload (like kubectl scale --replicas=0)
  npm run demo -- start reviews-v3           start it again (--replicas=1)
  npm run demo -- scenario NAME [NAME …]     switch the scenario files (none: base config)
  npm run demo -- status                     workloads and active scenarios

Options: --ingress-port N (8080), --mesh-port N (15001), --admin-port N|off (15000, the admin
API on 127.0.0.1), --workload-port-base N (the stand-ins on N, N+1, … instead of the ports in
gateway-config/local/services.yaml), --control-port N (15099, the port the commands above talk
to), --access-log DEST (stdout), --scenario NAME (repeatable; a file under
gateway-config/scenarios without .yaml, or a path).`

const COMMANDS = new Set(['stop', 'start', 'scenario', 'status'])

export async function main (argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      scenario: { type: 'string', multiple: true },
      'ingress-port': { type: 'string' },
      'mesh-port': { type: 'string' },
      'control-port': { type: 'string' },
      'admin-port': { type: 'string' },
      'workload-port-base': { type: 'string' },
      'access-log': { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) { process.stdout.write(USAGE + '\n'); return 0 }
  const controlPort = Number(values['control-port'] ?? process.env.MESHGATE_DEMO_CONTROL_PORT ?? 15099)
  if (positionals.length > 0) {
    const [cmd, ...rest] = positionals
    if (!COMMANDS.has(cmd)) { process.stderr.write(`unknown command "${cmd}"\n\n${USAGE}\n`); return 2 }
    return await control(controlPort, cmd, rest)
  }

  let demo
  try {
    demo = await startDemo({
      scenarios: values.scenario ?? [],
      ingressPort: Number(values['ingress-port'] ?? 8080),
      meshPort: Number(values['mesh-port'] ?? 15001),
      ...(values['workload-port-base'] !== undefined ? { workloadPortBase: Number(values['workload-port-base']) } : {}),
      accessLog: values['access-log'] ?? 'stdout',
      onProblems: ps => { for (const p of ps) process.stderr.write(formatProblem(p) + '\n') }
    })
  } catch (err) {
    if (err instanceof ConfigError) for (const p of err.problems) process.stderr.write(formatProblem(p) + '\n')
    process.stderr.write(`demo not started: ${(err as Error).message}\n`)
    if ((err as { code?: string }).code === 'EADDRINUSE') process.stderr.write('A port is in use: is the demo already running? Choose others with --ingress-port / --mesh-port.\n')
    return 1
  }
  // The admin API on loopback, so `npm start` users can explain routes and read clusters and
  // metrics; its token is generated for this run and printed below.
  let admin: RunningAdmin | undefined
  const adminPort = values['admin-port'] ?? '15000'
  if (adminPort !== 'off') {
    try {
      admin = await startAdmin({ gateway: demo.gateway, host: '127.0.0.1', port: Number(adminPort) })
    } catch (err) {
      process.stderr.write(`demo not started: admin port ${adminPort}: ${(err as Error).message}\n`)
      if ((err as { code?: string }).code === 'EADDRINUSE') process.stderr.write('A port is in use: is the demo already running? Choose another with --admin-port (or --admin-port off).\n')
      await demo.close()
      return 1
    }
  }
  const status = (): Record<string, unknown> => ({
    scenarios: demo.scenarios,
    workloads: Object.fromEntries([...demo.workloads.values()].map(w => [w.name, { running: w.running, address: `${w.address}:${w.port}` }]))
  })
  const server = createServer((req, res) => {
    const m = /^\/(stop|start|scenario|status)(?:\/(.*))?$/.exec(req.url ?? '')
    const reply = (code: number, body: unknown): void => { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(body) + '\n') }
    if (m === null) { reply(404, { error: 'unknown command' }); return }
    const arg = decodeURIComponent(m[2] ?? '')
    const run = async (): Promise<void> => {
      if (m[1] === 'stop') await demo.stop(arg)
      else if (m[1] === 'start') await demo.start(arg)
      else if (m[1] === 'scenario') await demo.setScenarios(arg === '' ? [] : arg.split(','))
    }
    run().then(() => {
      if (m[1] !== 'status') process.stderr.write(`demo: ${m[1]} ${arg}\n`)
      reply(200, status())
    }, err => {
      const problems = err instanceof ConfigError ? err.problems.map(formatProblem) : undefined
      reply(400, { error: (err as Error).message, ...(problems !== undefined ? { problems } : {}) })
    })
  })
  server.listen(controlPort, '127.0.0.1')
  server.on('error', err => process.stderr.write(`demo control port ${controlPort} unavailable (${err.message}); commands will not reach this demo\n`))

  process.stderr.write(`
meshgate Bookinfo demo is running.
  Product page:  ${demo.ingressUrl}/productpage
  Mesh listener: ${demo.meshUrl}   (the stand-ins call reviews, details and ratings through it)
  Workloads:     ${[...demo.workloads.keys()].join(', ')}
  Scenarios:     ${demo.scenarios.length > 0 ? demo.scenarios.join(', ') : 'none (reviews rotates among v1, v2, v3)'}
${admin !== undefined ? `  Admin API:     ${admin.url}   token: ${admin.token}
                 curl -s -H 'authorization: Bearer ${admin.token}' '${admin.url}/routes/explain?listener=mesh&authority=reviews:9080&path=/reviews/0'
` : ''}Try: curl -s ${demo.ingressUrl}/productpage | grep -A1 'Reviews served by'
     npm run demo -- scenario reviews-jason-v2     npm run demo -- stop reviews-v3
Access log lines follow on stdout. Ctrl-C stops.
`)
  const stop = (): void => {
    server.close()
    void admin?.close()
    demo.close().then(() => process.exit(0), () => process.exit(1))
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  return await new Promise<number>(() => {})
}

async function control (port: number, cmd: string, args: string[]): Promise<number> {
  const path = cmd === 'status' ? '/status' : `/${cmd}/${encodeURIComponent(args.join(','))}`
  return await new Promise(resolve => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST' }, res => {
      let body = ''
      res.on('data', c => { body += c })
      res.on('end', () => { process.stdout.write(body); resolve(res.statusCode === 200 ? 0 : 1) })
    })
    req.on('error', err => {
      process.stderr.write(`cannot reach the demo on 127.0.0.1:${port} (${err.message}); start it with: npm start\n`)
      resolve(1)
    })
    req.end()
  })
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // main returns only when the demo did not start or a command ended: exit then, even if some
  // stand-ins were already listening (a demo half up must not stay running).
  main(process.argv.slice(2)).then(code => process.exit(code), err => { process.stderr.write(String(err?.stack ?? err) + '\n'); process.exit(1) })
}
