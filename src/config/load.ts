// PROVISIONAL minimal loader (parse, group, reference warnings); replaced by the full
// schema-validating loader.
import { LineCounter, parseAllDocuments, isMap, isSeq, type Node } from 'yaml'
import { type Resource, type ResourceSet, KINDS, resourceId } from './model.js'
import { type Problem, Codes, formatPath, sortProblems } from './problem.js'
import { toFqdn } from './hosts.js'

export interface LoadInput { file: string; text: string }
export interface LoadOptions { strict?: boolean }
export interface LoadResult { set: ResourceSet; problems: Problem[]; ok: boolean }

export function loadConfig (inputs: LoadInput[], opts: LoadOptions = {}): LoadResult {
  const set: ResourceSet = { gateways: [], virtualServices: [], destinationRules: [], serviceEntries: [], workloadEntries: [] }
  const problems: Problem[] = []
  for (const { file, text } of inputs) {
    const lc = new LineCounter()
    const docs = parseAllDocuments(text, { lineCounter: lc })
    const list = Array.isArray(docs) ? docs : [docs]
    list.forEach((doc, di) => {
      for (const e of doc.errors) {
        const p = lc.linePos(e.pos[0])
        problems.push({ severity: 'Error', code: Codes.YamlSyntax, message: e.message.split('\n')[0], file, line: p.line, column: p.col })
      }
      if (doc.errors.length > 0) return
      const o = doc.toJS() as Record<string, any> | null
      if (o === null || o === undefined) return
      const start = lc.linePos(doc.contents?.range?.[0] ?? 0)
      const locate = (path: ReadonlyArray<string | number>): { line: number; column: number } => {
        let node: unknown = doc.contents
        let best = start
        for (const k of path) {
          if (isMap(node) || isSeq(node)) {
            const next = (node as any).get(k, true) as Node | undefined
            if (next === undefined) break
            const pair = isMap(node) ? (node as any).items.find((it: any) => it.key?.value === k) : undefined
            const r = pair?.key?.range ?? (next as any).range
            if (r !== undefined) { const p = lc.linePos(r[0]); best = { line: p.line, col: p.col } }
            node = next
          } else break
        }
        return { line: best.line, column: best.col }
      }
      if (!KINDS.includes(o.kind)) {
        problems.push({ severity: 'Warning', code: Codes.UnknownKind, message: `kind "${o.kind}" is not handled by meshgate; skipped`, file, line: start.line, column: start.col })
        return
      }
      o.metadata ??= {}
      o.metadata.namespace ??= 'default'
      const r = { ...o, source: { file, doc: di, line: start.line, column: start.col }, locate } as unknown as Resource
      addResource(set, r, problems)
    })
  }
  const hosts = new Set(set.serviceEntries.flatMap(se => se.spec.hosts.map(h => toFqdn(h, se.metadata.namespace))))
  const subsets = new Set(set.destinationRules.flatMap(dr => (dr.spec.subsets ?? []).map(s => `${toFqdn(dr.spec.host, dr.metadata.namespace)}+${s.name}`)))
  for (const vs of set.virtualServices) {
    (vs.spec.http ?? []).forEach((h, i) => (h.route ?? []).forEach((d, j) => {
      const check = (dest: { host: string; subset?: string }, path: Array<string | number>): void => {
        const fq = toFqdn(dest.host, vs.metadata.namespace)
        const sev = opts.strict === true ? 'Error' : 'Warning'
        const at = vs.locate(path)
        if (!hosts.has(fq)) problems.push({ severity: sev, code: Codes.ReferencedResourceNotFound, message: `Referenced host not found: "${dest.host}"`, file: vs.source.file, line: at.line, column: at.column, resource: resourceId(vs), path: formatPath(path) })
        else if (dest.subset !== undefined && !subsets.has(`${fq}+${dest.subset}`)) problems.push({ severity: sev, code: Codes.ReferencedResourceNotFound, message: `Referenced host+subset in destinationrule not found: "${dest.host}+${dest.subset}"`, file: vs.source.file, line: at.line, column: at.column, resource: resourceId(vs), path: formatPath([...path, 'subset']) })
      }
      check(d.destination, ['spec', 'http', i, 'route', j, 'destination'])
      if (d.fallback !== undefined) check(d.fallback.target, ['spec', 'http', i, 'route', j, 'fallback', 'target'])
    }))
  }
  const sorted = sortProblems(problems)
  return { set, problems: sorted, ok: !sorted.some(p => p.severity === 'Error') }
}

const LISTS = { Gateway: 'gateways', VirtualService: 'virtualServices', DestinationRule: 'destinationRules', ServiceEntry: 'serviceEntries', WorkloadEntry: 'workloadEntries' } as const

/**
 * Add a resource to its kind's list. A later resource with the same kind, namespace and name
 * replaces the earlier one in place, as `kubectl apply` of the later file would (so a scenario
 * file can redefine a base VirtualService); the replacement is reported as a warning.
 */
export function addResource (set: ResourceSet, r: Resource, problems: Problem[]): void {
  const list = set[LISTS[r.kind]] as Resource[]
  const i = list.findIndex(x => x.metadata.name === r.metadata.name && x.metadata.namespace === r.metadata.namespace)
  if (i < 0) { list.push(r); return }
  const prev = list[i]
  problems.push({
    severity: 'Warning',
    code: Codes.Duplicate,
    message: `replaces the ${r.kind} of the same name defined at ${prev.source.file}:${prev.source.line} (the later definition wins, as with kubectl apply)`,
    file: r.source.file,
    line: r.source.line,
    column: r.source.column,
    resource: resourceId(r)
  })
  list[i] = r
}
