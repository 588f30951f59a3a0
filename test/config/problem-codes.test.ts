import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { Codes } from '../../src/config/problem.js'

// Problem codes come from one table, each code with one meaning, all of them documented.

const root = fileURLToPath(new URL('../../', import.meta.url))

function sources (dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(join(root, dir))) {
    const rel = join(dir, name)
    if (statSync(join(root, rel)).isDirectory()) out.push(...sources(rel))
    else if (name.endsWith('.ts')) out.push(rel)
  }
  return out
}

t.test('one table, one meaning per code', async t => {
  const values = Object.values(Codes)
  t.equal(new Set(values).size, values.length, 'no code appears twice in the table')
  for (const file of ['src', 'plugins', 'routes', 'bin'].flatMap(sources)) {
    if (file.endsWith(join('config', 'problem.ts'))) continue
    const text = readFileSync(join(root, file), 'utf8')
    t.notMatch(text, /['"`](MG|IST)\d{4}['"`]/, `${file} mints no code of its own`)
  }
})

t.test('every code is documented', async t => {
  const doc = readFileSync(join(root, 'docs', 'configuration.md'), 'utf8')
  for (const [name, code] of Object.entries(Codes)) t.match(doc, new RegExp(`\\| \`${code}\` \\|`), `${name} (${code}) is in docs/configuration.md`)
})
