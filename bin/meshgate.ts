#!/usr/bin/env node
import cluster from 'node:cluster'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'
import pino from 'pino'
import { stringify as toYaml } from 'yaml'
import { Codes, formatProblem, hasErrors, sortProblems, type Problem } from '../src/config/problem.js'
import { loadConfig, type LoadInput } from '../src/config/load.js'
import { compile } from '../src/compile/compile.js'
import { MAX_CONFIG_FILE_BYTES, readConfigInputs } from '../plugins/config-files.js'
import { ConfigError, startGateway } from '../plugins/gateway.js'
import { startAdmin } from '../routes/admin.js'
import { credentialStore } from '../plugins/tls.js'
import { meshgateVersion } from '../plugins/version.js'
import { TRACING_ARG_OPTIONS, TRACING_USAGE, tracingOptions, tuningArgOptions, tuningOptions, tuningUsage } from './tuning.js'
import { isEtcdUrl, parseEtcdUrl } from '../src/config/etcd-layout.js'
import { ETCD_FLAGS, ETCD_FLAGS_USAGE, ctl, storeFromFlags } from '../plugins/config-source/cli.js'
import { displayUrl } from '../plugins/config-source/etcd.js'
import { RelayedStore, StoreRelay } from '../plugins/config-source/relay.js'
import { coordinatedConfig, parseWorkers, reportStopped, runPrimary, serveAsWorker, workerIndex } from '../plugins/workers.js'

const USAGE = `Usage:
  meshgate [run] --config PATH [--config PATH…] [options]
  meshgate validate [--strict] [--allow-unsupported-kinds] [--credentials-dir DIR] [-o text|json|yaml] PATH…|-
  meshgate apply|delete|get|register …   the configuration in etcd (meshgate apply --help)
  meshgate --version

Run options (each also read from the environment variable shown):
  -c, --config PATH        config file or directory of *.yaml (MESHGATE_CONFIG, comma-separated), or
                           etcd://HOST:PORT[,HOST:PORT…]/PREFIX to follow a configuration kept in etcd
                           (docs/scale-out.md; the etcd flags below)
      --host ADDR          address the listeners bind to (MESHGATE_HOST, default 0.0.0.0)
      --mesh-port N        mesh listener port, 'off' to disable (MESHGATE_MESH_PORT, default 15001)
      --port-map P=N       bind Gateway server port P on port N instead (MESHGATE_PORT_MAP, comma-separated)
      --mesh-namespace NS  namespace short Host names resolve in on the mesh (MESHGATE_MESH_NAMESPACE, default default)
      --access-log DEST    access log: a file, 'stdout', 'stderr' or 'off' (MESHGATE_ACCESS_LOG, default stdout)
      --log-level LEVEL    trace|debug|info|warn|error|fatal (MESHGATE_LOG_LEVEL, default info)
${TRACING_USAGE}
      --strict             treat warnings (references that cannot work) as errors (MESHGATE_STRICT=1)
      --allow-unsupported-kinds  skip, with a warning, Istio resources meshgate cannot enforce (a misspelt or
                           unread Istio kind, CUSTOM authorization, PeerAuthentication STRICT) instead of
                           refusing the configuration (MESHGATE_ALLOW_UNSUPPORTED_KINDS=1)
      --workload-labels K=V,…  the gateway's workload labels, as AuthorizationPolicy and RequestAuthentication
                           selectors see them (MESHGATE_WORKLOAD_LABELS, default app=istio-ingressgateway,istio=ingressgateway)
      --workload-namespace NS  the gateway's namespace for those policies (MESHGATE_WORKLOAD_NAMESPACE, default istio-system)
      --watch              reload when the config files change (MESHGATE_WATCH=1); not with etcd://, whose
                           changes are followed anyway
      --admin-port N       admin API port, 'off' to disable (MESHGATE_ADMIN_PORT, default 15000)
      --admin-host ADDR    admin API address (MESHGATE_ADMIN_HOST, default 127.0.0.1)
      --admin-token TOKEN  bearer token for the admin API (MESHGATE_ADMIN_TOKEN), needed by every call but
                           /ready and /live; required off loopback; when absent on loopback a random one is
                           generated and printed once on stderr (never into the JSON log)
      --admin-allowed-hosts NAME  extra Host header names the admin API answers, besides localhost, loopback
                           addresses and its bind address (MESHGATE_ADMIN_ALLOWED_HOSTS, comma-separated)
      --drain-timeout S    seconds to let requests in flight finish on SIGTERM (MESHGATE_DRAIN_TIMEOUT, default 10)
      --workers N          processes sharing the listening ports, 'auto' = one per core (MESHGATE_WORKERS,
                           default 1); config changes reach every worker; the admin API runs in worker 1;
                           with etcd:// the primary holds the one etcd watch and relays it to the workers

Etcd (with --config etcd://…):
${ETCD_FLAGS_USAGE}

Security, limits and TLS (docs/operations.md#security-defaults):
${tuningUsage()}

  -V, --version            print "meshgate <version>" and exit
  -h, --help               this text (meshgate validate --help: the validate options)

validate checks files like 'istioctl validate': exit 0 when valid, else exit 1 and every problem
with file, line, column, resource and field path.`

const VALIDATE_USAGE = `Usage:
  meshgate validate [--strict] [--allow-unsupported-kinds] [--credentials-dir DIR] [-o text|json|yaml] PATH…|-

Checks configuration files like 'istioctl validate' without starting anything: exit 0 when
valid, exit 1 when there are errors (every problem is printed, with file, line, column,
resource and field path), exit 2 on a usage mistake.

  PATH                     a file, or a directory of *.yaml / *.yml; '-' reads YAML from stdin
                           (its problems name the file <stdin>)
      --strict             treat warnings (references that cannot work) as errors
      --allow-unsupported-kinds  skip, with a warning, Istio resources meshgate cannot enforce (MG0012)
      --credentials-dir DIR  where TLS credentialName secrets are looked up
                           (MESHGATE_CREDENTIALS_DIR)
  -o, --output FORMAT      text (default): one line per problem and a summary;
                           json or yaml: one object { ok, problems: [{ severity, code, message,
                           file, line, column, resource, path }] } (resource and path only when known)
  -h, --help               this text`

/** The name problems give YAML read from stdin (`meshgate validate -`). */
export const STDIN_FILE = '<stdin>'

/** Entry point; returns the process exit code (or never returns while serving). */
export async function main (argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const args = argv[0] === 'run' ? argv.slice(1) : argv
  if (args[0] === 'validate') return validate(args.slice(1))
  if (args[0] === 'apply' || args[0] === 'delete' || args[0] === 'get' || args[0] === 'register') {
    return await ctl(args[0], args.slice(1), { out: s => process.stdout.write(s), err: s => process.stderr.write(s), env, stdin: async () => String(await readStdin(MAX_CONFIG_FILE_BYTES)) })
  }
  let parsed
  try {
    parsed = parseArgs({
      args,
      allowPositionals: false,
      options: {
        config: { type: 'string', short: 'c', multiple: true },
        host: { type: 'string' },
        'mesh-port': { type: 'string' },
        'port-map': { type: 'string', multiple: true },
        'mesh-namespace': { type: 'string' },
        'access-log': { type: 'string' },
        'log-level': { type: 'string' },
        strict: { type: 'boolean' },
        'allow-unsupported-kinds': { type: 'boolean' },
        'workload-labels': { type: 'string' },
        'workload-namespace': { type: 'string' },
        watch: { type: 'boolean' },
        'admin-port': { type: 'string' },
        'admin-host': { type: 'string' },
        'admin-token': { type: 'string' },
        'admin-allowed-hosts': { type: 'string', multiple: true },
        'drain-timeout': { type: 'string' },
        workers: { type: 'string' },
        'etcd-cacert': ETCD_FLAGS['etcd-cacert'],
        'etcd-cert': ETCD_FLAGS['etcd-cert'],
        'etcd-key': ETCD_FLAGS['etcd-key'],
        'etcd-user': ETCD_FLAGS['etcd-user'],
        ...tuningArgOptions(),
        ...TRACING_ARG_OPTIONS,
        version: { type: 'boolean', short: 'V' },
        help: { type: 'boolean', short: 'h' }
      }
    })
  } catch (err) {
    process.stderr.write(`meshgate: ${(err as Error).message}\n\n${USAGE}\n`)
    return 2
  }
  const v = parsed.values
  if (v.help === true) { process.stdout.write(USAGE + '\n'); return 0 }
  if (v.version === true) { process.stdout.write(`meshgate ${meshgateVersion()}\n`); return 0 }
  const config = v.config ?? splitList(env.MESHGATE_CONFIG)
  if (config.length === 0) {
    process.stderr.write(`meshgate: no configuration given: pass --config PATH (or set MESHGATE_CONFIG)\n\n${USAGE}\n`)
    return 2
  }
  let workers: number
  let tuning: ReturnType<typeof tuningOptions>
  let tracing: ReturnType<typeof tracingOptions>
  let workload: { workloadLabels?: Record<string, string>; workloadNamespace?: string }
  const allowUnsupportedKinds = v['allow-unsupported-kinds'] ?? env.MESHGATE_ALLOW_UNSUPPORTED_KINDS === '1'
  try {
    workers = parseWorkers(v.workers ?? env.MESHGATE_WORKERS)
    tuning = tuningOptions(v, env)
    tracing = tracingOptions(v, env)
    workload = workloadOptions(v['workload-labels'] ?? env.MESHGATE_WORKLOAD_LABELS, v['workload-namespace'] ?? env.MESHGATE_WORKLOAD_NAMESPACE)
  } catch (err) {
    process.stderr.write(`meshgate: ${(err as Error).message}\n`)
    return 2
  }
  // Several workers: this process becomes the primary; each worker re-runs this CLI (cluster.fork).
  const worker = workers > 1 ? workerIndex() : undefined
  const base = workers > 1 ? { name: 'meshgate', worker: worker ?? 'primary', pid: process.pid } : { name: 'meshgate' }
  const log = pino({ level: v['log-level'] ?? env.MESHGATE_LOG_LEVEL ?? 'info', base }, pino.destination(2))
  const watchFiles = v.watch ?? env.MESHGATE_WATCH === '1'
  const drainMs = Number(v['drain-timeout'] ?? env.MESHGATE_DRAIN_TIMEOUT ?? 10) * 1000
  // An etcd URL: this process is one replica following the configuration kept there.
  const etcd = config.some(isEtcdUrl)
  if (etcd && config.length !== 1) {
    process.stderr.write('meshgate: --config etcd://… is the only configuration source when given: drop the other --config values (put their resources into etcd with meshgate apply -f)\n')
    return 2
  }
  if (etcd && watchFiles) {
    process.stderr.write('meshgate: --watch reloads configuration files when they change; with --config etcd://… there are no files to watch, and every change written to etcd is applied already through its watch: drop --watch (and MESHGATE_WATCH)\n')
    return 2
  }
  let source: Parameters<typeof startGateway>[0]['config'] = config
  let relay: StoreRelay | undefined
  if (etcd && worker !== undefined) {
    // A worker follows etcd through the primary, which holds the one watch.
    const loc = parseEtcdUrl(config[0])
    if (typeof loc === 'string') { process.stderr.write(`meshgate: ${loc}\n`); return 2 }
    source = { store: new RelayedStore(displayUrl(loc), loc.prefix) }
  } else if (etcd) {
    const store = storeFromFlags({ ...v, config: config[0] }, env, { log })
    if (typeof store === 'string') { process.stderr.write(`meshgate: ${store}\n`); return 2 }
    if (workers > 1) relay = new StoreRelay(store, log)
    else source = { store }
  }
  if (workers > 1 && cluster.isPrimary) {
    return await runPrimary({
      ...(relay !== undefined ? { relay } : {}),
      count: workers,
      paths: config,
      strict: v.strict ?? env.MESHGATE_STRICT === '1',
      allowUnsupportedKinds,
      meshNamespace: v['mesh-namespace'] ?? env.MESHGATE_MESH_NAMESPACE ?? 'default',
      watch: watchFiles,
      log,
      drainMs
    })
  }
  const meshPortRaw = v['mesh-port'] ?? env.MESHGATE_MESH_PORT ?? '15001'
  let portMap: Record<number, number>
  try {
    portMap = parsePortMap([...(v['port-map'] ?? splitList(env.MESHGATE_PORT_MAP))])
  } catch (err) {
    process.stderr.write(`meshgate: ${(err as Error).message}\n`)
    return 2
  }
  try {
    const gw = await startGateway({
      ...tuning,
      ...(tracing !== undefined ? { tracing } : {}),
      config: source,
      strict: v.strict ?? env.MESHGATE_STRICT === '1',
      allowUnsupportedKinds,
      ...workload,
      host: v.host ?? env.MESHGATE_HOST ?? '0.0.0.0',
      meshPort: meshPortRaw === 'off' ? null : Number(meshPortRaw),
      portMap,
      meshNamespace: v['mesh-namespace'] ?? env.MESHGATE_MESH_NAMESPACE ?? 'default',
      accessLog: v['access-log'] ?? env.MESHGATE_ACCESS_LOG ?? 'stdout',
      // With workers the primary watches the files and sends the change to every worker.
      watch: worker === undefined && watchFiles,
      onProblems: problems => { for (const p of problems) log.warn(formatProblem(p)) },
      onReload: e => {
        if (e.ok) log.info({ generation: e.generation.generation, source: e.generation.source, revision: e.generation.revision }, 'configuration reloaded')
        else { log.error({ source: e.source }, 'configuration change rejected; the running configuration is unchanged'); for (const p of e.problems) log.error(formatProblem(p)) }
      }
    })
    for (const l of gw.listeners) log.info({ listener: l.name, url: l.url }, `${l.kind} listener ready`)
    // One admin API per worker set: worker 1's, whose config changes go through the primary.
    const adminPort = worker !== undefined && worker !== 1 ? 'off' : v['admin-port'] ?? env.MESHGATE_ADMIN_PORT ?? '15000'
    let admin: Awaited<ReturnType<typeof startAdmin>> | undefined
    if (adminPort !== 'off') {
      try {
        // In etcd mode every worker follows etcd and writes to it: no coordination needed.
        const gateway = worker === undefined || etcd ? gw : Object.create(gw, { config: { value: coordinatedConfig(gw.config) } }) as typeof gw
        const allowedHosts = v['admin-allowed-hosts'] !== undefined ? v['admin-allowed-hosts'].flatMap(splitList) : splitList(env.MESHGATE_ADMIN_ALLOWED_HOSTS)
        admin = await startAdmin({ gateway, port: Number(adminPort), host: v['admin-host'] ?? env.MESHGATE_ADMIN_HOST ?? '127.0.0.1', token: v['admin-token'] ?? env.MESHGATE_ADMIN_TOKEN, allowedHosts, logger: log })
      } catch (err) {
        await gw.close(0)
        throw err
      }
      log.info({ url: admin.url }, 'admin API ready')
      if (admin.generatedToken) {
        // Printed once, as plain text for the person at the terminal: JSON log lines are
        // collected and shipped, and a token has no place there.
        process.stderr.write(`meshgate: no admin token given; generated one for this run (not logged): ${admin.token}\n` +
          `meshgate: send it with every admin call but /ready and /live: curl -H "authorization: Bearer <token>" ${admin.url}/config\n`)
        log.warn('no admin token given; generated one for this run and printed it on stderr (not logged)')
      }
    }
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) { log.warn({ signal }, 'second signal: exiting now'); process.exit(1) }
      stopping = true
      log.info({ signal, inFlight: gw.inFlight, drainMs }, 'shutting down: not ready, finishing requests in flight')
      gw.close(drainMs).then(async () => {
        await admin?.close()
        if (worker !== undefined) log.info({ requests: await reportStopped(gw) }, 'worker stopped')
        process.exit(0)
      }, () => process.exit(1))
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    // A worker leaves Ctrl-C (sent to the whole process group) to the primary, which sends SIGTERM.
    process.on('SIGINT', () => { if (worker === undefined) stop('SIGINT') })
    if (worker !== undefined) serveAsWorker(gw)
    return await new Promise<number>(() => {})
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(formatProblem(p) + '\n')
      process.stderr.write(`meshgate: not started: ${err.message}\n`)
      return 1
    }
    process.stderr.write(`meshgate: ${(err as Error).message}\n`)
    return 1
  }
}

/** `--workload-labels app=x,istio=y` and `--workload-namespace`; throws naming the flag on a bad pair. */
function workloadOptions (labels: string | undefined, namespace: string | undefined): { workloadLabels?: Record<string, string>; workloadNamespace?: string } {
  const out: { workloadLabels?: Record<string, string>; workloadNamespace?: string } = {}
  if (labels !== undefined) {
    const pairs = splitList(labels).map(p => p.split('='))
    const bad = pairs.find(p => p.length !== 2 || p[0] === '')
    if (bad !== undefined) throw new Error(`--workload-labels "${labels}": expected KEY=VALUE pairs separated by commas`)
    out.workloadLabels = Object.fromEntries(pairs)
  }
  if (namespace !== undefined && namespace !== '') out.workloadNamespace = namespace
  return out
}

/** `meshgate validate PATH…`: every problem, then exit 1 on errors. */
async function validate (args: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        strict: { type: 'boolean' },
        'allow-unsupported-kinds': { type: 'boolean' },
        'credentials-dir': { type: 'string' },
        output: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h' }
      }
    })
  } catch (err) {
    process.stderr.write(`meshgate validate: ${(err as Error).message}\n\n${VALIDATE_USAGE}\n`)
    return 2
  }
  const v = parsed.values
  if (v.help === true) { process.stdout.write(VALIDATE_USAGE + '\n'); return 0 }
  const output = v.output ?? 'text'
  if (output !== 'text' && output !== 'json' && output !== 'yaml') {
    process.stderr.write(`meshgate validate: -o "${output}": expected text, json or yaml\n`)
    return 2
  }
  const strict = v.strict === true
  const paths = parsed.positionals
  const credentialsDir = v['credentials-dir'] ?? (process.env.MESHGATE_CREDENTIALS_DIR || undefined)
  if (paths.length === 0) { process.stderr.write(`meshgate validate: give at least one file or directory, or - for stdin\n\n${VALIDATE_USAGE}\n`); return 2 }
  const { inputs, problems: io } = await readInputs(paths)
  const loaded = loadConfig(inputs, { strict, allowUnsupportedKinds: v['allow-unsupported-kinds'] === true || process.env.MESHGATE_ALLOW_UNSUPPORTED_KINDS === '1' })
  let problems = [...io, ...loaded.problems]
  if (!hasErrors(problems)) {
    const files = paths.filter(p => p !== '-')
    const c = compile(loaded.set, { credentials: credentialStore(files, credentialsDir) })
    problems = [...problems, ...c.problems.map(p => strict && p.severity === 'Warning' ? { ...p, severity: 'Error' as const } : p)]
  }
  problems = sortProblems(problems)
  const failed = hasErrors(problems)
  if (output !== 'text') {
    const report = { ok: !failed, problems: problems.map(problemRecord) }
    process.stdout.write(output === 'json' ? JSON.stringify(report, null, 2) + '\n' : toYaml(report))
    return failed ? 1 : 0
  }
  for (const p of problems) process.stdout.write(formatProblem(p) + '\n')
  const count = loaded.set.gateways.length + loaded.set.virtualServices.length + loaded.set.destinationRules.length +
    loaded.set.serviceEntries.length + loaded.set.workloadEntries.length
  if (failed) {
    process.stdout.write(`Error: ${problems.filter(p => p.severity === 'Error').length} error(s) in ${inputs.length} file(s)\n`)
    return 1
  }
  process.stdout.write(`✔ ${count} resource(s) in ${inputs.length} file(s) valid${problems.length > 0 ? ` (${problems.length} warning(s))` : ''}\n`)
  return 0
}

/** A problem with its fields in a fixed order, for `-o json|yaml` (resource and path only when known). */
function problemRecord (p: Problem): Problem {
  return {
    severity: p.severity,
    code: p.code,
    message: p.message,
    file: p.file,
    line: p.line,
    column: p.column,
    ...(p.resource !== undefined ? { resource: p.resource } : {}),
    ...(p.path !== undefined && p.path !== '' ? { path: p.path } : {})
  }
}

/** Config inputs in the order given; `-` is stdin (read once), named `<stdin>`. */
async function readInputs (paths: readonly string[]): Promise<{ inputs: LoadInput[]; problems: Problem[] }> {
  const inputs: LoadInput[] = []
  const problems: Problem[] = []
  let stdinRead = false
  for (const p of paths) {
    if (p === '-') {
      if (stdinRead) continue
      stdinRead = true
      const text = await readStdin(MAX_CONFIG_FILE_BYTES)
      if (typeof text === 'number') {
        problems.push({ severity: 'Error', code: Codes.Io, message: `stdin is ${text} bytes or more; the limit is ${MAX_CONFIG_FILE_BYTES}`, file: STDIN_FILE, line: 1, column: 1 })
      } else {
        inputs.push({ file: STDIN_FILE, text })
      }
      continue
    }
    const r = await readConfigInputs([p])
    inputs.push(...r.inputs)
    problems.push(...r.problems)
  }
  return { inputs, problems }
}

/** All of stdin as text, or the size reached when it is more than `limit` bytes. */
async function readStdin (limit: number): Promise<string | number> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) { process.stdin.destroy(); return size }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function splitList (s: string | undefined): string[] {
  return s === undefined || s === '' ? [] : s.split(',').map(x => x.trim()).filter(x => x !== '')
}

function parsePortMap (items: string[]): Record<number, number> {
  const out: Record<number, number> = {}
  for (const item of items) {
    const m = /^(\d+)=(\d+)$/.exec(item)
    if (m === null) throw new Error(`--port-map "${item}": expected SERVERPORT=BINDPORT, e.g. 8080=18080`)
    out[Number(m[1])] = Number(m[2])
  }
  return out
}

/**
 * A reader that goes away (`meshgate validate … | head -1`) is not an error: exit 0 quietly, as
 * Unix tools do on SIGPIPE, instead of a stack trace for EPIPE. Any other stdout error is
 * reported in one line.
 */
function onStdoutError (err: NodeJS.ErrnoException): void {
  if (err.code === 'EPIPE') process.exit(0)
  process.stderr.write(`meshgate: stdout: ${err.message}\n`)
  process.exit(1)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.stdout.on('error', onStdoutError)
  main(process.argv.slice(2)).then(code => { process.exitCode = code }, err => { process.stderr.write(String(err?.stack ?? err) + '\n'); process.exitCode = 1 })
}
