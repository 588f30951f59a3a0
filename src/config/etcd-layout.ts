import { parseAllDocuments } from 'yaml'
import type { LoadInput } from './load.js'
import { Codes, type Problem } from './problem.js'
import type { ResourceKey } from './edit.js'

// The etcd layout of a configuration (docs/scale-out.md): one key per resource,
// `PREFIX/<kind>/<namespace>/<name>`, holding that resource's YAML. Pure: no client, no I/O.

/** Where an `etcd://` configuration lives: the client endpoints and the key prefix. */
export interface EtcdLocation {
  /** `host:port` of each member, in the order given. */
  hosts: string[]
  /** Key prefix without a trailing slash, always starting with `/` (e.g. `/meshgate`). */
  prefix: string
  /** `https` when the URL said `etcds://` (TLS to the members). */
  tls: boolean
}

/** Is this `--config` value an etcd URL rather than a path? */
export function isEtcdUrl (value: string): boolean {
  return /^etcds?:\/\//i.test(value)
}

/**
 * `etcd://HOST:PORT[,HOST:PORT…]/PREFIX` (or `etcds://` for TLS). The prefix is required and
 * kept as written, so that two configurations can share one cluster under different prefixes.
 * Returns the reason when the URL is not one.
 */
export function parseEtcdUrl (url: string): EtcdLocation | string {
  const m = /^(etcds?):\/\/([^/]*)(\/.*)?$/i.exec(url.trim())
  if (m === null) return `"${url}" is not an etcd URL: expected etcd://HOST:PORT[,HOST:PORT…]/PREFIX`
  const hosts = m[2].split(',').map(h => h.trim()).filter(h => h !== '')
  if (hosts.length === 0) return `"${url}": no etcd member given (etcd://HOST:PORT/PREFIX)`
  for (const h of hosts) {
    const hm = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(h)
    if (hm === null || Number(hm[2]) < 1 || Number(hm[2]) > 65535) return `"${url}": member "${h}" must be HOST:PORT`
  }
  const prefix = (m[3] ?? '').replace(/\/+$/, '')
  if (prefix === '') return `"${url}": a key prefix is required (etcd://HOST:PORT/PREFIX, e.g. /meshgate)`
  if (prefix.includes('//')) return `"${url}": the prefix must not contain an empty segment`
  return { hosts, prefix, tls: m[1].toLowerCase() === 'etcds' }
}

/** The key of one resource. The kind keeps Istio's spelling (`VirtualService`). */
export function resourceKey (prefix: string, r: ResourceKey): string {
  return `${prefix}/${r.kind}/${r.namespace}/${r.name}`
}

/** The resource a key names, or undefined for a key outside the layout (e.g. the head key). */
export function parseResourceKey (prefix: string, key: string): ResourceKey | undefined {
  if (!key.startsWith(prefix + '/')) return undefined
  const parts = key.slice(prefix.length + 1).split('/')
  if (parts.length !== 3 || parts.some(p => p === '')) return undefined
  return { kind: parts[0], namespace: parts[1], name: parts[2] }
}

/**
 * The key every meshgate write updates in the same transaction as the resources. Its
 * modification revision is the revision of the last write, which a writer compares with the
 * revision its change was based on: newer means someone else wrote in between (a conflict).
 * It has two segments after the prefix, so it is never taken for a resource.
 */
export function headKey (prefix: string): string {
  return `${prefix}/.meshgate/head`
}

/** One resource cut out of a file, ready to be stored under its key. */
export interface StoredResource extends ResourceKey {
  text: string
  /** Where it came from, for problems (`file:line`). */
  file: string
  line: number
}

/**
 * Cut inputs into one YAML text per resource (a document keeps its comments). A document that
 * names no kind or no metadata.name cannot be stored and is a problem at its line; empty
 * documents are skipped. Syntax errors are left to the loader, which reports them with the
 * same positions when the inputs are validated as a whole.
 */
export function splitResources (inputs: readonly LoadInput[], defaultNamespace = 'default'): { resources: StoredResource[]; problems: Problem[] } {
  const resources: StoredResource[] = []
  const problems: Problem[] = []
  for (const input of inputs) {
    const docs = parseAllDocuments(input.text, { prettyErrors: false, logLevel: 'silent' })
    const list = Array.isArray(docs) ? docs : [docs]
    for (const d of list) {
      if (d.contents === null || d.errors.length > 0) continue
      const line = lineOf(input.text, d.contents.range?.[0] ?? 0)
      let o: unknown
      try { o = d.toJS({ maxAliasCount: 100 }) } catch { continue }
      const r = o as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null
      if (r === null || typeof r !== 'object' || typeof r.kind !== 'string' || typeof r.metadata?.name !== 'string' || r.metadata.name === '') {
        problems.push({ severity: 'Error', code: Codes.SchemaValidationError, message: 'a resource stored in etcd needs kind and metadata.name', file: input.file, line, column: 1, path: 'metadata.name' })
        continue
      }
      const namespace = typeof r.metadata.namespace === 'string' && r.metadata.namespace !== '' ? r.metadata.namespace : defaultNamespace
      if ([r.kind, namespace, r.metadata.name].some(s => s.includes('/'))) {
        problems.push({ severity: 'Error', code: Codes.SchemaValidationError, message: 'kind, namespace and name must not contain "/"', file: input.file, line, column: 1, path: 'metadata' })
        continue
      }
      const text = d.toString()
      resources.push({ kind: r.kind, namespace, name: r.metadata.name, text, file: input.file, line })
    }
  }
  return { resources, problems }
}

function lineOf (text: string, offset: number): number {
  let line = 1
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++
  return line
}

/** A key as listed: its value and the lease it is attached to (`'0'` when none). */
export interface StoredKey { value: string; lease: string }

/** The writes that turn the stored keys into the desired ones. */
export interface KeyChange {
  puts: Array<[key: string, value: string]>
  deletes: string[]
}

/**
 * What to write so that `current` becomes `desired`. `replace`: keys not desired are deleted;
 * `merge`: only puts. Keys held under a lease belong to the process that registered them
 * (`meshgate register`) and are never deleted by a replace: they leave when their lease ends.
 * Unchanged values are not rewritten.
 */
export function diffKeys (current: ReadonlyMap<string, StoredKey>, desired: ReadonlyMap<string, string>, mode: 'replace' | 'merge'): KeyChange {
  const puts: Array<[string, string]> = []
  const deletes: string[] = []
  for (const [k, v] of desired) if (current.get(k)?.value !== v) puts.push([k, v])
  if (mode === 'replace') {
    for (const [k, cur] of current) if (!desired.has(k) && cur.lease === '0') deletes.push(k)
  }
  puts.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
  deletes.sort()
  return { puts, deletes }
}

/** The desired keys of resources (a later resource with the same key replaces an earlier one). */
export function desiredKeys (prefix: string, resources: readonly StoredResource[]): Map<string, string> {
  const out = new Map<string, string>()
  for (const r of resources) out.set(resourceKey(prefix, r), r.text)
  return out
}

/**
 * The stored keys as loader inputs, in key order (the load order: kind, namespace, name). Each
 * input is named by its key, so a problem reads `PREFIX/VirtualService/default/reviews:12:5`.
 * Keys outside the layout are left out.
 */
export function inputsOfKeys (prefix: string, keys: ReadonlyMap<string, StoredKey>): LoadInput[] {
  return [...keys.keys()].filter(k => parseResourceKey(prefix, k) !== undefined).sort().map(k => ({ file: k, text: keys.get(k)!.value }))
}
