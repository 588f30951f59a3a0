// scripts/check-self-contained.mjs (part of npm run lint) on small trees in a temp directory:
// a clean one passes, and each kind of finding fails with its file and line. The offending
// strings are assembled at run time so that this file itself stays clean for the checker.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const CHECKER = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'check-self-contained.mjs')
const D = 'docs'
const DOC = D + '/guide.md'
const TMP = '/t' + 'mp'
const HOME = '/ho' + 'me'

function tree (files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'self-contained-'))
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true })
    writeFileSync(join(dir, name), text)
  }
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function run (dir: string): { status: number | null, stderr: string, stdout: string } {
  const r = spawnSync(process.execPath, [CHECKER, dir], { encoding: 'utf8' })
  return { status: r.status, stderr: r.stderr, stdout: r.stdout }
}

/** A tree with every kind of legitimate reference the checker must accept. */
const CLEAN: Record<string, string> = {
  'README.md': `# Project\n\nSee [the guide](${DOC}) and [its setup](${DOC}#set-up--first-run).\n\n\`\`\`sh\ncat /etc/hosts > /dev/null\n\`\`\`\n`,
  [DOC]: '# Guide\n\n## Set up — first run\n\nRead /proc/self/stat; run /usr/bin/chromium.\n\n```\n# not a heading\n```\n',
  'src/core.ts': `// The rule is explained in ${DOC}#guide.\nexport const browser = '/usr/bin/chromium'\n`,
  'docker/Dockerfile': `FROM node:24\nWORKDIR /app\nRUN mkdir -p ${TMP}/build ${HOME}/node/.cache\n`,
  'docker-compose.yml': `services:\n  app:\n    volumes: ["./config:/etc/app:ro", "${TMP}/cache:/cache"]\n`,
  'logo.png': `\u0000PNG ${HOME}/binary/data`
}

t.test('a clean tree passes', async t => {
  const r = run(tree(CLEAN))
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /ok/)
})

const cases: Array<{ name: string, file: string, text: string, expect: RegExp }> = [
  { name: 'a design note outside the repository', file: 'src/a.ts', text: `// x\n// as ${'DESIGN'}.md says\n`, expect: /^src\/a\.ts:2: cites DESIGN\.md/m },
  { name: 'another outside note, in Markdown', file: `${D}/b.md`, text: `# B\n\nSee ${'hardening'}.md §2.\n`, expect: /^docs\/b\.md:3: cites hardening\.md/m },
  { name: 'the notes directory', file: 'test/c.test.ts', text: `// read ${'..'}/shared/notes\n`, expect: /^test\/c\.test\.ts:1: cites the notes directory/m },
  { name: 'a machine path', file: 'docker/bookinfo/d.ts', text: `// see ${'/ho'}me/alice/project/notes.txt\n`, expect: /^docker\/bookinfo\/d\.ts:1: holds an absolute path/m },
  { name: 'a temp path in code', file: 'bin/e.ts', text: `const f = '${'/tm'}p/meshgate.log'\n`, expect: /^bin\/e\.ts:1: holds an absolute path/m },
  { name: 'a machine path in a Dockerfile', file: 'docker/Dockerfile.dev', text: `COPY ${'/Us'}ers/bob/src /app\n`, expect: /^docker\/Dockerfile\.dev:1: holds an absolute path/m },
  { name: 'a docs page that does not exist', file: 'src/f.ts', text: `// ${'docs'}/missing.md\n`, expect: /^src\/f\.ts:1: points at docs\/missing\.md, which does not exist/m },
  { name: 'a heading the page does not have', file: 'src/g.ts', text: `// ${DOC}#nope\n`, expect: /^src\/g\.ts:1: points at docs\/guide\.md#nope, which has no such heading/m },
  { name: 'a broken relative Markdown link', file: `${D}/h.md`, text: '# H\n\n[x](other.md)\n', expect: /^docs\/h\.md:3: points at docs\/other\.md/m },
  { name: 'a Markdown link out of the repository', file: `${D}/i.md`, text: '# I\n\n[x](../../elsewhere.md)\n', expect: /^docs\/i\.md:3: links to \.\.\/\.\.\/elsewhere\.md, outside the repository/m },
  { name: 'a link to a missing heading of the same page', file: `${D}/j.md`, text: '# J\n\n[x](#k)\n', expect: /^docs\/j\.md:3: points at docs\/j\.md#k/m }
]

for (const c of cases) {
  t.test(`fails on ${c.name}`, async t => {
    const r = run(tree({ ...CLEAN, [c.file]: c.text }))
    t.equal(r.status, 1, 'exit code 1')
    t.match(r.stderr, c.expect, 'names the file and line')
    t.match(r.stderr, /1 finding\(s\)/, 'and nothing else in the clean part')
  })
}
