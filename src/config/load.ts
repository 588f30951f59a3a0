import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { Value } from '@sinclair/typebox/value'
import jsyaml from 'js-yaml'
import { LineCounter, Schema as YamlSchema, parseAllDocuments, isMap, isSeq, isScalar, isPair, type Document } from 'yaml'
import { ISTIO_GROUPS, KIND_VERSIONS, KINDS, SET_LISTS, SKIPPED_ISTIO_KINDS, type Kind, type Resource, type ResourceSet, emptySet, resourceId } from './model.js'
import { type Problem, Codes, formatPath, sortProblems } from './problem.js'
import { ObjectMeta, SPEC_SCHEMAS } from './schema.js'
import { validateSet } from './validate.js'

export interface LoadInput { file: string; text: string }
export interface LoadOptions {
  /** Warnings (references that cannot work) become errors. */
  strict?: boolean
  /**
   * Istio resources meshgate cannot enforce (code MG0012: an unknown kind of an Istio API group,
   * CUSTOM authorization, a PeerAuthentication that needs mTLS) become warnings, and are skipped.
   */
  allowUnsupportedKinds?: boolean
}
export interface LoadResult { set: ResourceSet; problems: Problem[]; ok: boolean }

/**
 * Largest YAML text parsed per file (UTF-8 bytes), checked before the parser sees it: the YAML
 * parser's memory grows with its input, so an oversized file is refused in O(1).
 */
export const MAX_TEXT_BYTES = 8 * 1024 * 1024
/** Largest configuration in total (all files of one load, UTF-8 bytes). */
export const MAX_TOTAL_BYTES = 32 * 1024 * 1024
/**
 * Alias expansions allowed per document (yaml's `maxAliasCount`): a "billion laughs" bomb of
 * a few hundred bytes is refused before it expands. Real Istio YAML uses none or a handful.
 */
export const MAX_ALIASES = 100
const TOP_LEVEL = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status'])
/**
 * Deepest YAML nesting accepted (block levels, `- ` entries and flow brackets together). The
 * parser recurses per level: without a cap, `[[[[…` of a few hundred KB overflows the stack at
 * a depth that depends on the thread and its callers, so the problems would too. Istio
 * resources need about 15 levels.
 */
export const MAX_NESTING = 256

/**
 * The first place the text nests deeper than `max`, by a scan that needs no parse: indentation
 * levels, compact `- ` entries and flow brackets outside quotes and comments. An estimate (a
 * block scalar's indented lines count too), always cheap; the parser has the last word.
 */
export function tooDeep (text: string, max = MAX_NESTING): { line: number; column: number } | undefined {
  const indents: number[] = []
  let flow = 0
  let quote = ''
  let line = 1
  let i = 0
  const n = text.length
  while (i < n) {
    // Start of a line.
    let col = 0
    while (i + col < n && text[i + col] === ' ') col++
    let j = i + col
    if (flow === 0 && quote === '' && j < n && text[j] !== '\n' && text[j] !== '\r' && text[j] !== '#') {
      while (indents.length > 0 && indents[indents.length - 1] >= col) indents.pop()
      indents.push(col)
      let entries = 0
      while (text[j] === '-' && (text[j + 1] === ' ' || text[j + 1] === '\t')) {
        entries++
        j += 2
        while (text[j] === ' ') j++
      }
      if (indents.length + entries > max) return { line, column: j - i + 1 }
      for (let e = 0; e < entries; e++) indents.push(col + 2 * (e + 1))
    }
    // The rest of the line.
    let prev = ' '
    for (; j < n && text[j] !== '\n'; j++) {
      const c = text[j]
      if (quote !== '') {
        if (c === '\\' && quote === '"') j++
        else if (c === quote) quote = ''
      } else if (c === '#' && (prev === ' ' || prev === '\t')) {
        while (j < n && text[j] !== '\n') j++
        break
      } else if ((c === '"' || c === "'") && ' \t[{,:'.includes(prev)) quote = c
      else if (c === '[' || c === '{') {
        flow++
        if (indents.length + flow > max) return { line, column: j - i + 1 }
      } else if ((c === ']' || c === '}') && flow > 0) flow--
      prev = c
    }
    i = j + 1
    line++
  }
  return undefined
}

type Path = ReadonlyArray<string | number>

type Pos = { line: number; col: number }

/** Position lookup in one YAML document: the node at a path, else its nearest ancestor. */
function locator (doc: Document, pos: (offset: number) => Pos, fallback: Pos) {
  return (path: Path): { line: number; column: number } => {
    let node: unknown = doc.contents
    let best = fallback
    for (const k of path) {
      let next: unknown
      let keyRange: [number, number, number] | undefined
      if (isMap(node)) {
        const pair = node.items.find(it => isPair(it) && isScalar(it.key) && String(it.key.value) === String(k))
        if (pair === undefined) break
        keyRange = (pair.key as { range?: [number, number, number] }).range
        next = pair.value
      } else if (isSeq(node) && typeof k === 'number') {
        next = node.items[k]
        keyRange = (next as { range?: [number, number, number] } | undefined)?.range
      } else break
      if (keyRange !== undefined) best = pos(keyRange[0])
      if (next === undefined || next === null) break
      node = next
    }
    return { line: best.line, column: best.col }
  }
}

// logLevel 'error': yaml's warnings (e.g. a collection used as a map key) would otherwise go to
// process.emitWarning, letting anyone who can send config write to stderr.
const YAML_OPTIONS = { uniqueKeys: true, prettyErrors: false, logLevel: 'error' } as const

/**
 * The plain scalars of YAML 1.2's core schema (null, bool, int, float) for js-yaml, made of the
 * `yaml` package's own tests and resolvers in its own order, so that both parsers give every
 * plain scalar the same value. Only `!!str`, `!!seq` and `!!map` are known as explicit tags:
 * any other tag makes js-yaml throw, and the document then goes through `yaml`, as before.
 */
const FAST_SCHEMA = jsyaml.FAILSAFE_SCHEMA.extend({
  implicit: new YamlSchema({ schema: 'core' }).tags.flatMap((t, i) => {
    const test = 'test' in t ? t.test : undefined
    if (test === undefined || !('resolve' in t)) return []
    const resolve = t.resolve as (s: string, onError: (m: string) => void, o: { intAsBigInt: boolean }) => unknown
    return [new jsyaml.Type(`tag:meshgate,core:${i}`, {
      kind: 'scalar',
      resolve: (s: string | null) => s !== null && test.test(s),
      construct: (s: string) => { const v = resolve(s, () => {}, { intAsBigInt: false }); return isScalar(v) ? v.value : v }
    })]
  })
})

/** A document js-yaml read: its value and where its content starts. */
interface FastDoc { value: unknown; start: number }

/**
 * Texts the two parsers could read differently, which go through `yaml` alone: a byte-order
 * mark or a lone CR (offsets and lines); a tab, a comment not after white space, text after
 * `...` or right after `---`, white-space lines at the start of a block scalar, an empty list
 * item (`yaml` refuses some uses of each where js-yaml does not); a tag or a directive; an
 * explicit `?` key or a flow collection used as a key (key strings). Anchors are caught while
 * parsing, null and over-long keys after it.
 */
const NOT_FAST = /^\uFEFF|\r(?!\n)|\t|(?:^|[\s[{,])!|["'[\]{},]#|(?:^|[\s[{,])\?(?:[ \t]|$)|[\]}][ \t]*:(?:[\s,\]}]|$)|^\.\.\. *[^\s#]|^(?:---|\.\.\.)\S|^ *(?:- +)*- *$|^%|[|>][-+0-9]* *(?:#[^\n]*)?\n(?: *\n)* +\n/m

/**
 * Whether a quoted scalar or a flow collection (`[…]`, `{…}`) goes on past the end of its line.
 * `yaml` holds such continuation lines to indentation rules that js-yaml does not check, so
 * such a text goes through `yaml`. A quote or bracket counts where a node may start (after
 * indentation, the indicators `: `, `- ` and `? `, `,`, `[` or `{`); one inside a plain scalar (`it's`, `a[0]`) or a
 * comment does not.
 */
function spansLines (text: string): boolean {
  let quote = ''
  let flow = 0
  let start = true
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quote !== '') {
      if (c === '\n') return true
      if (quote === '"' && c === '\\') i++
      else if (c === quote) {
        if (quote === "'" && text[i + 1] === "'") i++
        else { quote = ''; start = false }
      }
    } else if (c === '#' && (i === 0 || text[i - 1] === ' ' || text[i - 1] === '\n')) {
      const end = text.indexOf('\n', i)
      if (end < 0) return false
      i = end - 1
    } else if (c === '\n') {
      if (flow > 0) return true
      start = true
    } else if (c === '"' || c === "'") {
      if (start) quote = c
      start = false
    } else if (c === '[' || c === '{') {
      start = start || flow > 0
      if (start) flow++
    } else if (c === ']' || c === '}') {
      if (flow > 0) flow--
      start = false
    } else if (c === ':' || c === '-' || c === '?') {
      // `- ` and `? ` are indicators only where a node starts; `: ` anywhere.
      start = (c === ':' || start) && (text[i + 1] === ' ' || text[i + 1] === '\n' || i + 1 === text.length)
    }
    else if (c === ',') start = flow > 0
    else if (c !== ' ') start = false
  }
  return false
}

/**
 * The documents of a text parsed by js-yaml, about ten times faster than `yaml` and with no
 * syntax tree, or undefined when `yaml` has to read it: js-yaml refused it (its error is then
 * reported by `yaml`, as before), or it uses a feature whose result the two could differ on
 * (anchors and aliases, which `yaml` limits; `%YAML` and `%TAG` directives; see NOT_FAST).
 */
function fastParse (text: string): FastDoc[] | undefined {
  if (NOT_FAST.test(text) || spansLines(text)) return undefined
  const starts: number[] = []
  let plain = true
  let values: unknown[]
  try {
    values = jsyaml.loadAll(text, null, {
      schema: FAST_SCHEMA,
      listener (event, state) {
        const st = state as typeof state & { depth: number; anchor: string | null; tagMap: object; version: string | null }
        if (event === 'open') {
          if (st.depth === 1) {
            starts.push(st.position)
            if (st.version !== null || Object.keys(st.tagMap).length > 0) plain = false
          }
        } else if (st.anchor !== null) plain = false
      }
    })
  } catch {
    return undefined
  }
  if (!plain || starts.length !== values.length || !values.every(plainKeys)) return undefined
  // Resources are mappings at the start of a line. Anything else at the top of a document (a
  // scalar, a list, content indented or on the `---` line) goes through `yaml`, which is
  // stricter about what may follow it there.
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    if (v === null || v === undefined) continue
    if (typeof v !== 'object' || Array.isArray(v) || (starts[i] > 0 && text[starts[i] - 1] !== '\n')) return undefined
  }
  return values.map((value, i) => ({ value, start: starts[i] }))
}

/** `yaml` reads a null key as "" (js-yaml: "null") and refuses implicit keys over 1024 characters. */
function plainKeys (v: unknown): boolean {
  if (v === null || typeof v !== 'object') return true
  if (Array.isArray(v)) return v.every(plainKeys)
  for (const k in v) {
    if (k === 'null' || k.length > 1024 || !plainKeys((v as Record<string, unknown>)[k])) return false
  }
  return true
}

/** Line and column of an offset, counting from a known line start. */
function lineAt (text: string, offset: number, from: { offset: number; line: number }): Pos {
  let line = from.line
  let start = from.offset
  for (let i = text.indexOf('\n', start); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) { line++; start = i + 1 }
  from.offset = start
  from.line = line
  return { line, col: offset - start + 1 }
}

/**
 * Positions inside one document js-yaml read, found when first asked: the document's lines
 * (from the start of its first line to the next document's) are parsed by `yaml` then, and
 * that tree is kept for later questions. Resources without problems never build one.
 */
function lazyLocator (text: string, from: number, to: number, firstLine: number, fallback: Pos) {
  let locate: ((path: Path) => { line: number; column: number }) | undefined
  return (path: Path): { line: number; column: number } => {
    if (locate === undefined) {
      const lc = new LineCounter()
      const docs = parseAllDocuments(text.slice(from, to), { lineCounter: lc, ...YAML_OPTIONS })
      const doc = Array.isArray(docs) ? docs[0] : docs
      locate = doc === undefined
        ? () => ({ line: fallback.line, column: fallback.col })
        : locator(doc, o => { const p = lc.linePos(o); return { line: p.line + firstLine - 1, col: p.col } }, fallback)
    }
    return locate(path)
  }
}

/**
 * Parse one file's multi-document YAML into resources with positions. Never throws. `yamlOnly`
 * skips the js-yaml fast path (the tests compare both paths).
 */
export function parseDocuments (text: string, file: string, yamlOnly = false): { resources: Resource[]; problems: Problem[] } {
  const resources: Resource[] = []
  const problems: Problem[] = []
  const push = (line: number, column: number, message: string, code: string = Codes.SchemaValidationError, extra: Partial<Problem> = {}): void => {
    problems.push({ severity: 'Error', code, message, file, line, column, ...extra })
  }
  // `length` counts UTF-16 units, never more than the UTF-8 bytes: the cheap test goes first.
  if (typeof text !== 'string') { push(1, 1, 'configuration text must be a string', Codes.Io); return { resources, problems } }
  if (text.length > MAX_TEXT_BYTES || Buffer.byteLength(text, 'utf8') > MAX_TEXT_BYTES) {
    push(1, 1, `file is larger than ${MAX_TEXT_BYTES} bytes (the per-file limit); not parsed`, Codes.Io)
    return { resources, problems }
  }
  const deep = tooDeep(text)
  if (deep !== undefined) {
    push(deep.line, deep.column, `YAML nested deeper than ${MAX_NESTING} levels; not parsed`, Codes.YamlSyntax)
    return { resources, problems }
  }
  const add = (o: unknown, di: number, sp: Pos, locate: (path: Path) => { line: number; column: number }): void => {
    documentResource(o, di, sp, locate, file, problems, resources)
  }
  const fast = yamlOnly ? undefined : fastParse(text)
  if (fast !== undefined) {
    const cursor = { offset: 0, line: 1 }
    const lineStarts = fast.map(d => text.lastIndexOf('\n', d.start - 1) + 1)
    fast.forEach((d, di) => {
      const sp = lineAt(text, d.start, cursor)
      if (d.value === null || d.value === undefined) return
      add(d.value, di, sp, lazyLocator(text, lineStarts[di], lineStarts[di + 1] ?? text.length, sp.line, sp))
    })
    return { resources, problems }
  }
  const lc = new LineCounter()
  let docs: Document.Parsed[]
  try {
    docs = parseAllDocuments(text, { lineCounter: lc, ...YAML_OPTIONS }) as Document.Parsed[]
    if (!Array.isArray(docs)) docs = [docs]
  } catch (err) {
    push(1, 1, `YAML could not be parsed: ${(err as Error).message}`, Codes.YamlSyntax)
    return { resources, problems }
  }
  docs.forEach((doc, di) => {
    const errors = [...doc.errors]
    for (const e of errors) {
      const p = lc.linePos(e.pos[0])
      push(p.line, p.col, e.message.split('\n')[0], Codes.YamlSyntax)
    }
    if (errors.length > 0) return
    let o: unknown
    try {
      o = doc.toJS({ maxAliasCount: MAX_ALIASES })
    } catch (err) {
      const p = lc.linePos(doc.range[0])
      push(p.line, p.col, `YAML could not be expanded: ${(err as Error).message}`, Codes.YamlSyntax)
      return
    }
    if (o === null || o === undefined) return
    const sp = lc.linePos(doc.contents?.range?.[0] ?? doc.range[0])
    add(o, di, sp, locator(doc, o => lc.linePos(o), sp))
  })
  return { resources, problems }
}

/** One parsed document's resource (schema-checked), or its problems. */
function documentResource (o: unknown, di: number, sp: Pos, locate: (path: Path) => { line: number; column: number }, file: string, problems: Problem[], resources: Resource[]): void {
  const at = (path: Path, message: string, extra: Partial<Problem> = {}): void => {
    const { line, column } = locate(path)
    problems.push({ severity: 'Error', code: Codes.SchemaValidationError, message, file, line, column, path: formatPath(path), ...extra })
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) { at([], 'a document must be a mapping with apiVersion, kind, metadata and spec'); return }
  const r = o as Record<string, unknown>
  if (typeof r.kind !== 'string') { at(['kind'], 'kind is required'); return }
  if (!(KINDS as readonly string[]).includes(r.kind)) {
    problems.push(unknownKind(r.kind, String(r.apiVersion ?? ''), file, sp.line, sp.col))
    return
  }
  const meta = (r.metadata ?? {}) as Record<string, unknown>
  const name = typeof meta.name === 'string' ? meta.name : '?'
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : 'default'
  const resource = `${r.kind} ${namespace}/${name}`
  const before = problems.length
  const versions = KIND_VERSIONS[r.kind as Kind]
  if (!versions.includes(String(r.apiVersion))) at(['apiVersion'], `apiVersion "${String(r.apiVersion)}" is not one of ${versions.join(', ')}`, { resource })
  for (const k of Object.keys(r)) if (!TOP_LEVEL.has(k)) at([k], `unknown field "${k}"`, { resource })
  if (r.metadata === undefined) at(['metadata'], 'metadata is required', { resource })
  else schemaErrors(ObjectMeta, r.metadata, ['metadata'], at, resource)
  if (typeof meta.name === 'string' && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(meta.name)) at(['metadata', 'name'], `name "${meta.name}" must be a lowercase DNS-1123 subdomain`, { resource })
  if (r.spec === undefined || r.spec === null) at(['spec'], 'spec is required', { resource })
  else schemaErrors(SPEC_SCHEMAS[r.kind], r.spec, ['spec'], at, resource)
  // Unknown fields leave the known ones well typed, so the resource is still cross-checked and
  // every problem is reported at once; any other schema error stops it here.
  if (problems.slice(before).some(p => !p.message.startsWith('unknown field'))) return
  ;(r.metadata as Record<string, unknown>).namespace = namespace
  delete r.status
  resources.push({ ...(r as object), source: { file, doc: di, line: sp.line, column: sp.col }, locate } as unknown as Resource)
}

/**
 * A kind meshgate does not read. In an Istio API group it is an error (MG0012) unless it is one
 * of the kinds that change no access decision: a misspelt `VirtualServce` or an unenforced
 * security kind must not leave the gateway more open than Istio would. Other groups' kinds
 * (a Kubernetes Service or Deployment in the same file) are skipped with a warning.
 */
function unknownKind (kind: string, apiVersion: string, file: string, line: number, column: number): Problem {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : ''
  if (!ISTIO_GROUPS.includes(group) || SKIPPED_ISTIO_KINDS.includes(kind)) {
    return { severity: 'Warning', code: Codes.UnknownKind, message: `kind "${kind}" is not handled by meshgate; skipped`, file, line, column }
  }
  const known = KINDS.filter(k => KIND_VERSIONS[k].some(v => v.startsWith(`${group}/`)))
  return {
    severity: 'Error',
    code: Codes.Unenforced,
    message: `kind "${kind}" of ${group} is not one meshgate reads (${known.join(', ')}); a resource Istio would act on is never skipped silently ` +
      '(--allow-unsupported-kinds skips it with a warning)',
    file,
    line,
    column
  }
}

/** Compiled checks of the schemas, made on first use: a valid value is checked in one call. */
const checks = new Map<TSchema, TypeCheck<TSchema>>()

function schemaErrors (
  schema: TSchema,
  value: unknown,
  base: Path,
  at: (path: Path, message: string, extra?: Partial<Problem>) => void,
  resource: string
): void {
  let check = checks.get(schema)
  if (check === undefined) { check = TypeCompiler.Compile(schema); checks.set(schema, check) }
  // Value.Errors walks the value again, slowly; it runs only for a value that has errors.
  if (check.Check(value)) return
  const seen = new Set<string>()
  for (const e of Value.Errors(schema, value)) {
    const rel = e.path === '' ? [] : e.path.slice(1).split('/').map(s => s.replace(/~1/g, '/').replace(/~0/g, '~')).map(s => (/^\d+$/.test(s) ? Number(s) : s))
    const path = [...base, ...rel]
    const key = formatPath(path)
    // One message per field: a union failure repeats itself for every member.
    if ([...seen].some(s => key.startsWith(s) && (key.length === s.length))) continue
    seen.add(key)
    const last = rel[rel.length - 1]
    const message = e.message === 'Unexpected property'
      ? `unknown field "${String(last)}"`
      : e.message === 'Expected required property' ? `required field "${String(last)}" is missing` : `${e.message}`
    at(path, message, { resource })
  }
}

/**
 * Parse, schema-validate and cross-validate every input together. Never throws. Resources come
 * in load order (file order, then document order); a later resource with the same kind,
 * namespace and name replaces the earlier one, as a later `kubectl apply` would (a warning).
 */
export function loadConfig (inputs: LoadInput[], opts: LoadOptions = {}): LoadResult {
  const set = emptySet()
  const problems: Problem[] = []
  let total = 0
  for (const { file, text } of inputs) {
    // A file over the per-file cap is reported by parseDocuments and not counted here.
    const bytes = typeof text !== 'string' || text.length > MAX_TEXT_BYTES ? 0 : Buffer.byteLength(text, 'utf8')
    total += bytes > MAX_TEXT_BYTES ? 0 : bytes
    if (total > MAX_TOTAL_BYTES) {
      problems.push({ severity: 'Error', code: Codes.Io, message: `the configuration is larger than ${MAX_TOTAL_BYTES} bytes in total; not parsed`, file, line: 1, column: 1 })
      break
    }
    const r = parseDocuments(text, file)
    problems.push(...r.problems)
    for (const res of r.resources) addResource(set, res, problems)
  }
  problems.push(...validateSet(set, opts.strict === true))
  const out = sortProblems(adjustSeverity(problems, opts))
  return { set, problems: out, ok: !out.some(p => p.severity === 'Error') }
}

/** `strict` makes warnings errors; `allowUnsupportedKinds` then makes MG0012 errors warnings. */
export function adjustSeverity (problems: Problem[], opts: LoadOptions): Problem[] {
  if (opts.strict !== true && opts.allowUnsupportedKinds !== true) return problems
  return problems.map(p => {
    if (opts.allowUnsupportedKinds === true && p.code === Codes.Unenforced) return p.severity === 'Error' ? { ...p, severity: 'Warning' as const, message: `${p.message}; skipped` } : p
    return opts.strict === true && p.severity === 'Warning' ? { ...p, severity: 'Error' as const } : p
  })
}

/** Add a resource to its kind's list; a same-named later one replaces the earlier in place, with a warning. */
export function addResource (set: ResourceSet, r: Resource, problems: Problem[]): void {
  const list = set[SET_LISTS[r.kind]] as Resource[]
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

/**
 * Indices of the inputs to keep when merged API bodies are compacted: a body (a file named
 * `<…>`) whose every resource a later input redefines is dropped, since repeated merges would
 * otherwise keep every body ever sent and re-parse them all on each change. The kept inputs
 * load to the same set, since a later definition replaces an earlier one. Files read from disk
 * are always kept.
 */
export function compactIndices (inputs: readonly LoadInput[]): number[] {
  if (inputs.length < 2) return inputs.map((_, i) => i)
  const ids = inputs.map(i => i.file.startsWith('<') ? parseDocuments(i.text, i.file).resources.map(r => resourceId(r)) : undefined)
  const later = new Set<string>()
  const keep: boolean[] = new Array(inputs.length).fill(true)
  for (let i = inputs.length - 1; i >= 0; i--) {
    const own = ids[i]
    if (i < inputs.length - 1 && own !== undefined && own.every(id => later.has(id))) keep[i] = false
    if (own !== undefined) for (const id of own) later.add(id)
    else {
      for (const r of parseDocuments(inputs[i].text, inputs[i].file).resources) later.add(resourceId(r))
    }
  }
  return inputs.map((_, i) => i).filter(i => keep[i])
}

/** The inputs `compactIndices` keeps. */
export function compactInputs (inputs: LoadInput[]): LoadInput[] {
  if (inputs.length < 2) return inputs
  return compactIndices(inputs).map(i => inputs[i])
}
