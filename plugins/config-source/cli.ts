import { parseArgs } from 'node:util'
import { stringify as toYaml } from 'yaml'
import { compile } from '../../src/compile/compile.js'
import { type KeyChange, type StoredKey, desiredKeys, diffKeys, isEtcdUrl, parseResourceKey, resourceKey, splitResources } from '../../src/config/etcd-layout.js'
import { loadConfig, type LoadInput } from '../../src/config/load.js'
import { formatProblem, hasErrors, sortProblems, type Problem } from '../../src/config/problem.js'
import { ConflictError } from '../../src/config/source.js'
import { parseDurationMs } from '../../src/config/duration.js'
import { readConfigInputs } from '../config-files.js'
import { type EtcdAuthOptions, EtcdStore, type LagOptions } from './etcd.js'

// `meshgate apply|delete|get|register` against an etcd configuration (docs/scale-out.md), in
// the manner of kubectl: validate first, write in one transaction, print one line per resource.

/** The etcd flags every command takes, named after etcdctl's. */
export const ETCD_FLAGS = {
  config: { type: 'string', short: 'c' },
  'etcd-cacert': { type: 'string' },
  'etcd-cert': { type: 'string' },
  'etcd-key': { type: 'string' },
  'etcd-user': { type: 'string' }
} as const

export const ETCD_FLAGS_USAGE = `  -c, --config etcd://HOST:PORT[,HOST:PORT…]/PREFIX  the etcd configuration (MESHGATE_CONFIG)
      --etcd-cacert FILE   CA bundle of the etcd members' certificates (MESHGATE_ETCD_CACERT); implies TLS
      --etcd-cert FILE     client certificate (MESHGATE_ETCD_CERT)
      --etcd-key FILE      client certificate key (MESHGATE_ETCD_KEY)
      --etcd-user USER[:PASSWORD]  etcd user (MESHGATE_ETCD_USER); the password may come from MESHGATE_ETCD_PASSWORD`

export const CTL_USAGE = `Usage:
  meshgate apply -f FILE|DIR|- [-f …] [--if-revision N] [--strict] [--allow-unsupported-kinds] [etcd flags]
  meshgate delete -f FILE|DIR|- [-f …] [--if-revision N] [etcd flags]
  meshgate get [KIND [NAME]] [-n NAMESPACE] [-o text|yaml|json] [etcd flags]
  meshgate register --address ADDR [--labels K=V,…] [--ports NAME=N,…] [--name NAME] [-n NAMESPACE]
                    [--ttl 10s] [etcd flags]

apply and delete validate the configuration they lead to exactly as 'meshgate validate' does and
write nothing when it has errors (exit 1, each problem with file:line:column and field). The
change is one etcd transaction based on the revision read; when someone else wrote in between,
it is read and checked again (3 tries). With --if-revision N the change is based on revision N
(from an earlier 'meshgate get'): when the configuration moved past it, nothing is written and
the command exits 1 naming the current revision, with no retry. register keeps a WorkloadEntry under an etcd lease while
it runs; when it stops, the entry leaves every replica within the TTL.

Etcd flags:
${ETCD_FLAGS_USAGE}`

export interface CtlIo {
  out: (s: string) => void
  err: (s: string) => void
  env: NodeJS.ProcessEnv
  /** Reads `-` (stdin). */
  stdin?: () => Promise<string>
}

/** The store named by `--config` or MESHGATE_CONFIG, with the etcd flags; a string is a usage error. */
export function storeFromFlags (v: Record<string, unknown>, env: NodeJS.ProcessEnv, lag: LagOptions = {}): EtcdStore | string {
  const url = (v.config as string | undefined) ?? env.MESHGATE_CONFIG ?? ''
  if (!isEtcdUrl(url)) return `give the etcd configuration: --config etcd://HOST:PORT/PREFIX (or MESHGATE_CONFIG)${url !== '' ? `; "${url}" is not one` : ''}`
  try {
    return EtcdStore.connect(url, authFromFlags(v, env), lag)
  } catch (err) {
    return (err as Error).message
  }
}

export function authFromFlags (v: Record<string, unknown>, env: NodeJS.ProcessEnv): EtcdAuthOptions {
  const pick = (flag: string, name: string): string | undefined => (v[flag] as string | undefined) ?? (env[name] !== undefined && env[name] !== '' ? env[name] : undefined)
  const out: EtcdAuthOptions = {}
  const cacert = pick('etcd-cacert', 'MESHGATE_ETCD_CACERT')
  const cert = pick('etcd-cert', 'MESHGATE_ETCD_CERT')
  const key = pick('etcd-key', 'MESHGATE_ETCD_KEY')
  const user = pick('etcd-user', 'MESHGATE_ETCD_USER')
  if (cacert !== undefined) out.cacert = cacert
  if (cert !== undefined) out.cert = cert
  if (key !== undefined) out.key = key
  if (user !== undefined) out.user = user
  if (env.MESHGATE_ETCD_PASSWORD !== undefined) out.password = env.MESHGATE_ETCD_PASSWORD
  return out
}

/** loadConfig + compile, as `meshgate validate` and the config manager check a configuration. */
export function checkInputs (inputs: LoadInput[], o: { strict?: boolean; allowUnsupportedKinds?: boolean }): Problem[] {
  const loaded = loadConfig(inputs, { strict: o.strict, allowUnsupportedKinds: o.allowUnsupportedKinds })
  let problems = loaded.problems
  if (!hasErrors(problems)) {
    const c = compile(loaded.set, {})
    problems = [...problems, ...c.problems.map(p => o.strict === true && p.severity === 'Warning' ? { ...p, severity: 'Error' as const } : p)]
  }
  return sortProblems(problems)
}

async function readFiles (files: string[], io: CtlIo): Promise<{ inputs: LoadInput[]; problems: Problem[] }> {
  const inputs: LoadInput[] = []
  const problems: Problem[] = []
  for (const f of files) {
    if (f === '-') { inputs.push({ file: '<stdin>', text: await (io.stdin?.() ?? Promise.resolve('')) }); continue }
    const r = await readConfigInputs([f])
    inputs.push(...r.inputs)
    problems.push(...r.problems)
  }
  return { inputs, problems }
}

/** Entry point of apply, delete, get and register; returns the exit code. */
export async function ctl (command: 'apply' | 'delete' | 'get' | 'register', args: string[], io: CtlIo): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args,
      allowPositionals: command === 'get',
      options: {
        ...ETCD_FLAGS,
        filename: { type: 'string', short: 'f', multiple: true },
        namespace: { type: 'string', short: 'n' },
        output: { type: 'string', short: 'o' },
        strict: { type: 'boolean' },
        'if-revision': { type: 'string' },
        'allow-unsupported-kinds': { type: 'boolean' },
        address: { type: 'string' },
        labels: { type: 'string' },
        ports: { type: 'string' },
        name: { type: 'string' },
        ttl: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    })
  } catch (err) {
    io.err(`meshgate ${command}: ${(err as Error).message}\n\n${CTL_USAGE}\n`)
    return 2
  }
  const v = parsed.values
  if (v.help === true) { io.out(CTL_USAGE + '\n'); return 0 }
  if ((command === 'apply' || command === 'delete') && (v.filename ?? []).length === 0) { io.err(`meshgate ${command}: give -f FILE|DIR|-\n\n${CTL_USAGE}\n`); return 2 }
  if (command === 'register' && v.address === undefined) { io.err(`meshgate register: give --address\n\n${CTL_USAGE}\n`); return 2 }
  const store = storeFromFlags(v, io.env)
  if (typeof store === 'string') { io.err(`meshgate ${command}: ${store}\n`); return 2 }
  try {
    if (command === 'get') return await get(store, parsed.positionals, v.namespace, v.output ?? 'text', io)
    if (command === 'register') return await register(store, v, io)
    const ifRevision = v['if-revision'] === undefined ? undefined : Number(v['if-revision'])
    if (ifRevision !== undefined && (!Number.isInteger(ifRevision) || ifRevision < 1)) { io.err(`meshgate ${command}: --if-revision "${v['if-revision']}": expected a revision number (meshgate get prints it)\n`); return 2 }
    const { inputs, problems } = await readFiles(v.filename!, io)
    if (hasErrors(problems)) { for (const p of problems) io.err(formatProblem(p) + '\n'); return 1 }
    return await change(store, command, inputs, { strict: v.strict === true || io.env.MESHGATE_STRICT === '1', allowUnsupportedKinds: v['allow-unsupported-kinds'] === true || io.env.MESHGATE_ALLOW_UNSUPPORTED_KINDS === '1', ifRevision }, io)
  } catch (err) {
    io.err(`meshgate ${command}: ${(err as Error).message.split('\n')[0]}\n`)
    return 1
  } finally {
    if (command !== 'register') await store.close()
  }
}

/** apply (merge the files' resources in) or delete (remove them), validated, guarded, retried on conflict. */
async function change (store: EtcdStore, command: 'apply' | 'delete', inputs: LoadInput[], o: { strict: boolean; allowUnsupportedKinds: boolean; ifRevision?: number }, io: CtlIo): Promise<number> {
  const split = splitResources(inputs)
  if (split.problems.length > 0) { for (const p of split.problems) io.err(formatProblem(p) + '\n'); return 1 }
  for (let attempt = 1; ; attempt++) {
    const now = await store.list()
    // --if-revision: the change is based on that revision (read earlier), not on what was just
    // read; someone else's write since then refuses it, and it is not retried.
    const base = o.ifRevision ?? now.revision
    const desired = desiredKeys(store.prefix, split.resources)
    let plan: KeyChange
    let after: LoadInput[]
    if (command === 'apply') {
      plan = diffKeys(now.keys, desired, 'merge')
      // The stored resources it does not replace, then the files: problems name the files.
      after = [...[...now.keys].filter(([k]) => !desired.has(k)).map(([k, s]) => ({ file: k, text: s.value })), ...inputs]
    } else {
      plan = { puts: [], deletes: [...desired.keys()].filter(k => now.keys.has(k)) }
      after = [...now.keys].filter(([k]) => !desired.has(k)).map(([k, s]) => ({ file: k, text: s.value }))
    }
    const problems = checkInputs(after, o)
    for (const p of problems) io.err(formatProblem(p) + '\n')
    if (hasErrors(problems)) { io.err(`meshgate ${command}: not written: ${problems.filter(p => p.severity === 'Error').length} error(s)\n`); return 1 }
    let revision = now.revision
    if (plan.puts.length > 0 || plan.deletes.length > 0) {
      try {
        revision = await store.commit(base, plan)
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err
        if (o.ifRevision !== undefined) {
          io.err(`meshgate ${command}: not written: the configuration is at revision ${err.currentRevision}, not ${o.ifRevision} (someone else changed it): ` +
            `read it again (meshgate get) and retry with --if-revision ${err.currentRevision}, or without --if-revision to apply over the newest revision\n`)
          return 1
        }
        if (attempt < 3) {
          io.err(`meshgate ${command}: the configuration changed while this change was prepared (revision ${err.baseRevision} → ${err.currentRevision}); reading and validating it again (try ${attempt + 1} of 3)\n`)
          continue
        }
        io.err(`meshgate ${command}: not written: the configuration kept changing (now at revision ${err.currentRevision}; 3 tries): run the same command again to apply it over the newest revision\n`)
        return 1
      }
    }
    const put = new Set(plan.puts.map(([k]) => k))
    const del = new Set(plan.deletes)
    for (const r of split.resources) {
      const k = resourceKey(store.prefix, r)
      const what = command === 'delete' ? (del.has(k) ? 'deleted' : 'not found') : !put.has(k) ? 'unchanged' : now.keys.has(k) ? 'configured' : 'created'
      io.out(`${r.kind} ${r.namespace}/${r.name} ${what}\n`)
    }
    io.out(`revision ${revision}\n`)
    return 0
  }
}

async function get (store: EtcdStore, positionals: string[], namespace: string | undefined, output: string, io: CtlIo): Promise<number> {
  if (output !== 'text' && output !== 'yaml' && output !== 'json') { io.err(`meshgate get: -o "${output}": expected text, yaml or json\n`); return 2 }
  const [kind, name] = positionals
  const now = await store.list()
  const rows: Array<{ key: string; kind: string; namespace: string; name: string; stored: StoredKey }> = []
  for (const [key, stored] of now.keys) {
    const r = parseResourceKey(store.prefix, key)!
    if (kind !== undefined && r.kind.toLowerCase() !== kind.toLowerCase()) continue
    if (name !== undefined && r.name !== name) continue
    if (namespace !== undefined && r.namespace !== namespace) continue
    rows.push({ key, ...r, stored })
  }
  rows.sort((a, b) => a.key < b.key ? -1 : 1)
  if (name !== undefined && rows.length === 0) { io.err(`meshgate get: ${kind} "${name}" not found at revision ${now.revision}\n`); return 1 }
  if (output === 'yaml') { io.out(rows.map(r => r.stored.value.trimEnd() + '\n').join('---\n')); return 0 }
  if (output === 'json') {
    io.out(JSON.stringify({ revision: now.revision, resources: rows.map(r => ({ kind: r.kind, namespace: r.namespace, name: r.name, leased: r.stored.lease !== '0', yaml: r.stored.value })) }, null, 2) + '\n')
    return 0
  }
  const w = [4, 9, 4].map((n, i) => Math.max(n, ...rows.map(r => [r.kind, r.namespace, r.name][i].length)))
  const line = (c: string[]): string => c.map((x, i) => i < 3 ? x.padEnd(w[i]) : x).join('   ').trimEnd() + '\n'
  io.out(line(['KIND', 'NAMESPACE', 'NAME', 'LEASE']))
  for (const r of rows) io.out(line([r.kind, r.namespace, r.name, r.stored.lease === '0' ? '' : r.stored.lease]))
  io.out(`revision ${now.revision}\n`)
  return 0
}

/** `K=V,K=V` → object; throws naming the flag. */
function pairs (flag: string, s: string | undefined, num = false): Record<string, string | number> {
  const out: Record<string, string | number> = {}
  for (const item of (s ?? '').split(',').map(x => x.trim()).filter(x => x !== '')) {
    const eq = item.indexOf('=')
    if (eq <= 0) throw new Error(`${flag} "${s}": expected NAME=VALUE pairs separated by commas`)
    const val = item.slice(eq + 1)
    if (num && !/^\d{1,5}$/.test(val)) throw new Error(`${flag} "${item}": the port must be a number`)
    out[item.slice(0, eq)] = num ? Number(val) : val
  }
  return out
}

/** The WorkloadEntry `register` keeps alive. */
export function workloadEntryYaml (o: { name: string; namespace: string; address: string; labels: Record<string, string>; ports: Record<string, number> }): string {
  return toYaml({
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name: o.name, namespace: o.namespace },
    spec: { address: o.address, ...(Object.keys(o.labels).length > 0 ? { labels: o.labels } : {}), ...(Object.keys(o.ports).length > 0 ? { ports: o.ports } : {}) }
  })
}

/**
 * Keep a WorkloadEntry under a lease until SIGTERM or SIGINT (then revoke it: the entry leaves
 * at once). A lease lost while etcd was unreachable is granted again and the entry put back.
 */
async function register (store: EtcdStore, v: Record<string, unknown>, io: CtlIo): Promise<number> {
  const labels = pairs('--labels', v.labels as string | undefined) as Record<string, string>
  const ports = pairs('--ports', v.ports as string | undefined, true) as Record<string, number>
  const ttlMs = parseDurationMs(String(v.ttl ?? '10s'))
  if (typeof ttlMs !== 'number' || ttlMs < 1000) { await store.close(); io.err(`meshgate register: --ttl "${String(v.ttl)}": expected a duration of at least 1s, e.g. 10s\n`); return 2 }
  const address = String(v.address)
  const namespace = (v.namespace as string | undefined) ?? 'default'
  const name = (v.name as string | undefined) ?? `${labels.app ?? 'workload'}-${address.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`.replace(/-+$/, '')
  const text = workloadEntryYaml({ name, namespace, address, labels, ports })
  const problems = checkInputs([{ file: '<register>', text }], {})
  if (hasErrors(problems)) { for (const p of problems) io.err(formatProblem(p) + '\n'); await store.close(); return 1 }
  const key = resourceKey(store.prefix, { kind: 'WorkloadEntry', namespace, name })
  const ttl = Math.ceil(ttlMs / 1000)
  let stopping = false
  let lease = store.client.lease(ttl)
  const keep = async (): Promise<void> => {
    for (let delay = 200; !stopping; delay = Math.min(delay * 2, 2000)) {
      try {
        await lease.put(key).value(text)
        io.out(`WorkloadEntry ${namespace}/${name} registered under lease ${await lease.grant()} (ttl ${ttl}s)\n`)
        return
      } catch (err) {
        io.err(`meshgate register: ${(err as Error).message.split('\n')[0]}; retrying\n`)
        lease.release()
        lease = store.client.lease(ttl)
        lease.on('lost', onLost)
        await new Promise(resolve => setTimeout(resolve, delay))
      }
    }
  }
  const onLost = (err: Error): void => {
    if (stopping) return
    io.err(`meshgate register: lease lost (${err.message.split('\n')[0]}); registering again\n`)
    lease.release()
    lease = store.client.lease(ttl)
    lease.on('lost', onLost)
    void keep()
  }
  lease.on('lost', onLost)
  await keep()
  return await new Promise<number>(resolve => {
    const stop = (): void => {
      if (stopping) return
      stopping = true
      void lease.revoke().catch(() => {}).finally(() => { void store.close().finally(() => resolve(0)) })
    }
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
  })
}
