import { readFileSync } from 'node:fs'
import t from 'tap'
import { DEFAULT_LIMITS } from '../../plugins/listener/index.js'
import { TUNING_DOC_MARKERS, TUNING_FLAGS, tuningMarkdown, tuningUsage } from '../../bin/tuning.js'

// The tuning options come from one table: the usage text, the defaults and the docs page are
// derived from it, so none can drift.

t.test('docs/operations.md shows the table as generated', async t => {
  const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8')
  const [open, close] = TUNING_DOC_MARKERS
  const section = doc.slice(doc.indexOf(open) + open.length, doc.indexOf(close)).trim()
  t.equal(section, tuningMarkdown(), 'run `npm run docs:tuning` after changing bin/tuning.ts')
})

t.test('defaults are the running ones', async t => {
  const byFlag = new Map(TUNING_FLAGS.map(f => [f.flag, f]))
  t.equal(byFlag.get('max-header-bytes')?.default, String(DEFAULT_LIMITS.maxHeaderBytes))
  t.equal(byFlag.get('headers-timeout')?.default, String(DEFAULT_LIMITS.headersTimeoutMs / 1000))
  t.equal(byFlag.get('path-normalization')?.default, DEFAULT_LIMITS.pathNormalization)
  for (const f of TUNING_FLAGS) {
    t.equal(f.env, `MESHGATE_${f.flag.toUpperCase().replace(/-/g, '_')}`, `${f.flag}: its environment variable`)
    t.match(tuningUsage(), `--${f.flag}`, `${f.flag} is in the usage text`)
    t.match(tuningUsage(), `default ${f.default}`, `${f.flag}: the usage text shows its default`)
  }
})
