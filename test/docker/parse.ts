import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse, parseAllDocuments } from 'yaml'

// Small, strict readers for the Docker files the static compose tests check. No Docker engine
// runs on the test machines, so these stand in for `docker build` / `docker compose config`
// parsing: they cover exactly the instructions and keys our files use, and fail loudly on
// anything they do not understand rather than guessing.

/** The repository root (test/docker/ is two levels down). */
export const ROOT = join(import.meta.dirname, '..', '..')

/** One Dockerfile instruction, continuation lines joined. */
export interface Instruction { keyword: string; args: string; line: number }

/** One build stage: its FROM image (ARG defaults substituted), alias and instructions. */
export interface Stage { image: string; alias?: string; instructions: Instruction[] }

/** A parsed Dockerfile: the global ARG defaults and the stages in order. */
export interface Dockerfile { args: Record<string, string>; stages: Stage[] }

/** Parse a Dockerfile: comments dropped, `\` continuations joined, ARG defaults applied to FROM. */
export function parseDockerfile (text: string): Dockerfile {
  const instructions: Instruction[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]
    if (/^\s*(#.*)?$/.test(first)) continue
    const start = i + 1
    let joined = first
    while (/\\\s*$/.test(joined) && i + 1 < lines.length) {
      joined = joined.replace(/\\\s*$/, ' ')
      i++
      // Comment lines inside a continuation are ignored by Docker too.
      while (i + 1 < lines.length && /^\s*#/.test(lines[i])) i++
      joined += lines[i]
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(joined)
    if (m === null) throw new Error(`Dockerfile line ${start}: cannot parse "${joined}"`)
    instructions.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), line: start })
  }
  const args: Record<string, string> = {}
  const stages: Stage[] = []
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)
      if (m === null) throw new Error(`Dockerfile line ${ins.line}: cannot parse FROM ${ins.args}`)
      const image = m[1].replace(/\$\{(\w+)\}|\$(\w+)/g, (_s, a: string | undefined, b: string | undefined) => {
        const v = args[a ?? b ?? '']
        if (v === undefined) throw new Error(`Dockerfile line ${ins.line}: FROM uses ARG ${a ?? b} without a default`)
        return v
      })
      stages.push({ image, alias: m[2], instructions: [] })
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`Dockerfile line ${ins.line}: ${ins.keyword} before the first FROM`)
      const m = /^(\w+)(?:=(.*))?$/.exec(ins.args)
      if (m === null) throw new Error(`Dockerfile line ${ins.line}: cannot parse ARG ${ins.args}`)
      if (m[2] !== undefined) args[m[1]] = m[2]
    } else {
      stages[stages.length - 1].instructions.push(ins)
    }
  }
  return { args, stages }
}

/** Read and parse a Dockerfile relative to the repository root. */
export function readDockerfile (rel: string): Dockerfile {
  return parseDockerfile(readFileSync(join(ROOT, rel), 'utf8'))
}

/** The JSON array of an exec-form instruction (ENTRYPOINT, CMD, HEALTHCHECK CMD), or undefined for shell form. */
export function execForm (args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined
  const v = JSON.parse(args) as unknown
  if (!Array.isArray(v) || !v.every(x => typeof x === 'string')) throw new Error(`not a JSON string array: ${args}`)
  return v
}

/** A COPY instruction split into flags, sources and destination. */
export interface Copy { from?: string; sources: string[]; dest: string; line: number }

/** The COPY instructions of a stage. */
export function copies (stage: Stage): Copy[] {
  return stage.instructions.filter(i => i.keyword === 'COPY').map(i => {
    const words = i.args.split(/\s+/)
    let from: string | undefined
    while (words[0]?.startsWith('--')) {
      const w = words.shift()!
      if (w.startsWith('--from=')) from = w.slice(7)
    }
    if (words.length < 2) throw new Error(`Dockerfile line ${i.line}: COPY needs a source and a destination`)
    return { from, sources: words.slice(0, -1), dest: words[words.length - 1], line: i.line }
  })
}

/**
 * Whether `.dockerignore` excludes a context path, by Docker's rules: patterns are rooted at
 * the context, `*` stays within one path segment, `**` spans any, a leading `!` re-includes,
 * the last matching pattern decides, and a pattern matching a parent directory excludes it.
 */
export function dockerignored (patterns: string[], path: string): boolean {
  const rules = patterns.map(p => p.trim()).filter(p => p !== '' && !p.startsWith('#')).map(p => {
    const negate = p.startsWith('!')
    const body = (negate ? p.slice(1) : p).replace(/^\/+|\/+$/g, '')
    const re = new RegExp('^' + body.split('**').map(part =>
      part.split('*').map(s => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')).join('.*') + '$')
    return { negate, re }
  })
  const segments = path.replace(/^\.\/|\/+$/g, '').split('/')
  let excluded = false
  for (const { negate, re } of rules) {
    for (let n = 1; n <= segments.length; n++) {
      if (re.test(segments.slice(0, n).join('/'))) { excluded = !negate; break }
    }
  }
  return excluded
}

/** A compose file (the keys the tests read). */
export interface ComposeService {
  image?: string
  build?: { context?: string; dockerfile?: string }
  command?: string[] | string
  environment?: Record<string, string> | string[]
  volumes?: string[]
  ports?: string[]
  networks?: string[] | Record<string, { aliases?: string[] } | null>
  hostname?: string
  depends_on?: string[] | Record<string, unknown>
  stop_grace_period?: string
}
export interface ComposeFile { name?: string; services: Record<string, ComposeService>; networks?: Record<string, unknown> }

/** Parse a compose file: one YAML document, merge keys (`<<`) as Compose applies them, no errors. */
export function readCompose (rel: string): ComposeFile {
  const text = readFileSync(join(ROOT, rel), 'utf8')
  const docs = parseAllDocuments(text, { merge: true, uniqueKeys: true })
  if (docs.length !== 1) throw new Error(`${rel}: expected one YAML document, found ${docs.length}`)
  if (docs[0].errors.length > 0) throw new Error(`${rel}: ${docs[0].errors.map(e => e.message).join('; ')}`)
  const v = parse(text, { merge: true }) as ComposeFile
  if (v === null || typeof v !== 'object' || typeof v.services !== 'object') throw new Error(`${rel}: no services`)
  return v
}

/** Environment of a compose service as a map (both list and map forms). */
export function environment (s: ComposeService): Record<string, string> {
  if (s.environment === undefined) return {}
  if (!Array.isArray(s.environment)) return Object.fromEntries(Object.entries(s.environment).map(([k, v]) => [k, String(v)]))
  return Object.fromEntries(s.environment.map(e => { const i = e.indexOf('='); return [e.slice(0, i), e.slice(i + 1)] }))
}

/** Compose's `${VAR:-default}` interpolation with an empty environment: the defaults. */
export function interpolateDefaults (s: string): string {
  return s.replace(/\$\{(\w+)(?::?-([^}]*))?\}/g, (_m, _name: string, def: string | undefined) => def ?? '')
}

/** Network aliases of a compose service on every network. */
export function aliases (s: ComposeService): string[] {
  if (s.networks === undefined || Array.isArray(s.networks)) return []
  return Object.values(s.networks).flatMap(n => n?.aliases ?? [])
}

/** Network names a compose service joins. */
export function networkNames (s: ComposeService): string[] {
  if (s.networks === undefined) return ['default']
  return Array.isArray(s.networks) ? s.networks : Object.keys(s.networks)
}

/** Compose's duration strings (`15s`, `1m30s`) in milliseconds. */
export function durationMs (d: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|us|h|m|s)/g
  let total = 0
  let seen = ''
  for (let m = re.exec(d); m !== null; m = re.exec(d)) {
    seen += m[0]
    total += Number(m[1]) * ({ h: 3600000, m: 60000, s: 1000, ms: 1, us: 0.001 } as Record<string, number>)[m[2]]
  }
  if (seen !== d) throw new Error(`not a duration: ${d}`)
  return total
}
