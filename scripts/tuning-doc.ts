// `npm run docs:tuning`: rewrite the tuning-flag table of docs/operations.md from bin/tuning.ts,
// the one table of the tuning options.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { TUNING_DOC_MARKERS, tuningMarkdown } from '../bin/tuning.js'

const file = fileURLToPath(new URL('../../docs/operations.md', import.meta.url))
const text = readFileSync(file, 'utf8')
const [open, close] = TUNING_DOC_MARKERS
const a = text.indexOf(open)
const b = text.indexOf(close)
if (a < 0 || b < a) throw new Error(`docs/operations.md has no ${open} … ${close} section`)
writeFileSync(file, text.slice(0, a + open.length) + '\n' + tuningMarkdown() + '\n' + text.slice(b))
process.stdout.write('docs/operations.md: tuning flags rewritten\n')
