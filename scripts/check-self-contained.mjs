#!/usr/bin/env node
// The repository must explain itself: part of `npm run lint`.
//
//   node scripts/check-self-contained.mjs [ROOT]
//
// Fails (exit 1, one `file:line: reason` per finding) when a text file of ROOT
//  - names one of the design notes that were never part of the repository, or the notes
//    directory beside it;
//  - holds an absolute path of a development machine (under /work/, /home/, /Users/, /tmp/,
//    /root/). System paths (/usr/bin/chromium, /proc/, /dev/null, /etc/) are fine, and so are
//    container paths in Dockerfiles and compose files;
//  - points at a page docs/<page>.md (in a comment, or a Markdown link) that does not exist, or
//    at a heading docs/<page>.md#<heading> that the page does not have.
// In a git work tree the files are the tracked ones plus new files git does not ignore;
// elsewhere (the tests run it on a temp directory) every file below ROOT.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs'
import { basename, dirname, join, relative, resolve, sep } from 'node:path'

/** Design notes that lived outside the repository: no file may cite them (names split so this file does not). */
const OUTSIDE_NOTES = ['DESIGN', 'hardening', ['istio', 'semantics'].join('-'), 'bookinfo-api', 'style']
const OUTSIDE_NOTE = new RegExp(`(?<![\\w-])(${OUTSIDE_NOTES.join('|')})\\.md\\b|(?<![\\w-])${OUTSIDE_NOTES[2]}\\b`, 'g')
/** The notes' own directory, however it is reached. */
const OUTSIDE_DIR = /\.\.\/+shared\b|(?<![\w-])shared\/reference\b/
/** Absolute paths of a development machine (not preceded by a path or word character). */
const MACHINE_PATH = /(?<![\w.~/\\-])\/(work|home|Users|tmp|root)\/(?=[\w.$-])|(?<![\w])[A-Za-z]:\\Users\\/
/** In container files only paths that exist on no container are machine paths. */
const MACHINE_PATH_IN_CONTAINER_FILES = /(?<![\w.~/\\-])\/(work|Users)\/(?=[\w.$-])/
const isContainerFile = f => /(^|\/)Dockerfile[^/]*$/.test(f) || /(^|\/)docker-compose[^/]*\.ya?ml$/.test(f)

const SKIP_DIRS = new Set(['.git', 'node_modules', 'dist', 'coverage', '.tap', 'test-artifacts', '.bench', '.scratch'])
const BINARY = /\.(png|jpe?g|gif|ico|webp|woff2?|ttf|otf|eot|gz|tgz|zip|pdf|node|wasm)$/i

function listFiles (root) {
  try {
    const top = execFileSync('git', ['-C', root, 'rev-parse', '--show-toplevel'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    if (realpathSync(top) === realpathSync(root)) {
      const out = execFileSync('git', ['-C', root, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
      return [...new Set(out.split('\0').filter(f => f !== ''))].filter(f => existsSync(join(root, f)) && statSync(join(root, f)).isFile()).sort()
    }
  } catch { /* not a git work tree: walk it */ }
  const files = []
  const walk = dir => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = dir === '' ? e.name : `${dir}/${e.name}`
      if (e.isDirectory()) { if (!SKIP_DIRS.has(e.name)) walk(rel) } else if (e.isFile()) files.push(rel)
    }
  }
  walk('')
  return files.sort()
}

/** GitHub's anchor for a heading text. */
function slug (text) {
  return text.trim().toLowerCase()
    .replace(/<[^>]*>/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

const anchorCache = new Map()
/** The anchors of a Markdown file's headings (fenced code skipped; duplicates get -1, -2…). */
function anchorsOf (file) {
  if (anchorCache.has(file)) return anchorCache.get(file)
  const seen = new Map()
  const out = new Set()
  let fence = false
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) { fence = !fence; continue }
    if (fence) continue
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (m === null) continue
    const base = slug(m[1])
    const k = seen.get(base) ?? 0
    seen.set(base, k + 1)
    out.add(k === 0 ? base : `${base}-${k}`)
  }
  anchorCache.set(file, out)
  return out
}

/** Problem with a pointer to `target` (a path relative to the root, with an optional #anchor), or undefined. */
function checkTarget (root, target) {
  const [path, anchor] = target.split('#')
  const abs = join(root, path)
  if (!existsSync(abs)) return `points at ${path}, which does not exist`
  if (anchor !== undefined && anchor !== '' && path.endsWith('.md') && statSync(abs).isFile() && !anchorsOf(abs).has(anchor)) {
    return `points at ${path}#${anchor}, which has no such heading`
  }
  return undefined
}

export function check (rootArg) {
  const root = resolve(rootArg)
  const files = listFiles(root)
  const names = new Set(files.map(f => basename(f)))
  const findings = []
  const add = (file, line, reason) => findings.push({ file, line, reason })
  for (const file of files) {
    if (BINARY.test(file)) continue
    const buf = readFileSync(join(root, file))
    if (buf.subarray(0, 8192).includes(0)) continue
    const lines = buf.toString('utf8').split('\n')
    const container = isContainerFile(file)
    const markdown = file.endsWith('.md')
    let fence = false
    lines.forEach((text, i) => {
      const n = i + 1
      for (const m of text.matchAll(OUTSIDE_NOTE)) {
        // A file of that name inside the repository is a citation of the repository.
        if (m[1] !== undefined && names.has(`${m[1]}.md`)) continue
        add(file, n, `cites ${m[0]}, a document outside the repository (point at docs/ instead)`)
      }
      if (OUTSIDE_DIR.test(text)) add(file, n, 'cites the notes directory outside the repository (point at docs/ instead)')
      const machine = (container ? MACHINE_PATH_IN_CONTAINER_FILES : MACHINE_PATH).exec(text)
      if (machine !== null) add(file, n, `holds an absolute path of a development machine (${machine[0]}…)`)
      // Pointers into docs/ from anywhere: docs/<page>.md or docs/<page>.md#<heading>.
      for (const m of text.matchAll(/(?<![\w./-])docs\/[\w./-]*?\.md(?:#[\w-]+)?/g)) {
        const p = checkTarget(root, m[0])
        if (p !== undefined) add(file, n, p)
      }
      if (!markdown) return
      if (/^\s*(```|~~~)/.test(text)) { fence = !fence; return }
      if (fence) return
      // Relative Markdown links, resolved from the file's directory.
      for (const m of text.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const target = m[1]
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue
        if (target.startsWith('/')) { add(file, n, `links to ${target}, an absolute path`); continue }
        const [path, anchor] = target.split('#')
        const rel = path === '' ? file : relative(root, join(root, dirname(file), path)).split(sep).join('/')
        if (rel.startsWith('..')) { add(file, n, `links to ${target}, outside the repository`); continue }
        const p = checkTarget(root, anchor !== undefined ? `${rel}#${anchor}` : rel)
        if (p !== undefined) add(file, n, p)
      }
    })
  }
  return findings
}

const self = process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)
if (self) {
  const findings = check(process.argv[2] ?? process.cwd())
  for (const f of findings) process.stderr.write(`${f.file}:${f.line}: ${f.reason}\n`)
  if (findings.length > 0) {
    process.stderr.write(`check-self-contained: ${findings.length} finding(s); see docs/testing.md#repository-checks\n`)
    process.exitCode = 1
  } else {
    process.stdout.write('check-self-contained: ok\n')
  }
}
