import { parseAllDocuments } from 'yaml'
import type { LoadInput } from './load.js'

/** The identity of one resource, as kubectl names it: kind, namespace, name. */
export interface ResourceKey {
  kind: string
  namespace: string
  name: string
}

/** Does a parsed document describe the resource `key`? (Kind case-insensitive; namespace `default` when unset.) */
function isResource (doc: unknown, key: ResourceKey, defaultNamespace: string): boolean {
  const d = doc as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null
  if (d === null || typeof d !== 'object' || typeof d.kind !== 'string') return false
  const ns = typeof d.metadata?.namespace === 'string' ? d.metadata.namespace : defaultNamespace
  return d.kind.toLowerCase() === key.kind.toLowerCase() && d.metadata?.name === key.name && ns === key.namespace
}

/**
 * The inputs without the documents of resource `key` (`kubectl delete`): each input keeps its
 * other documents as written. Undefined when no document matches.
 */
export function removeResource (inputs: readonly LoadInput[], key: ResourceKey, defaultNamespace = 'default'): LoadInput[] | undefined {
  let found = false
  const out: LoadInput[] = []
  for (const input of inputs) {
    const docs = parseAllDocuments(input.text)
    const list = Array.isArray(docs) ? docs : [docs]
    const keep = list.filter(d => {
      const hit = isResource(d.toJS(), key, defaultNamespace)
      if (hit) found = true
      return !hit
    })
    if (keep.length === list.length) { out.push(input); continue }
    if (keep.length > 0) out.push({ file: input.file, text: keep.map(d => d.toString()).join('---\n') })
  }
  return found ? out : undefined
}

/** The single resource a text holds, or why it is not exactly one. */
export function singleResource (text: string, defaultNamespace = 'default'): ResourceKey | string {
  const docs = parseAllDocuments(text)
  const list = (Array.isArray(docs) ? docs : [docs]).filter(d => d.contents !== null)
  if (list.length !== 1) return `the body must hold exactly one resource (it holds ${list.length})`
  const d = list[0].toJS() as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null
  if (d === null || typeof d.kind !== 'string' || typeof d.metadata?.name !== 'string') return 'the resource needs kind and metadata.name'
  return { kind: d.kind, name: d.metadata.name, namespace: typeof d.metadata.namespace === 'string' ? d.metadata.namespace : defaultNamespace }
}
