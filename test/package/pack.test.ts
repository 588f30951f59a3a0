// What `npm pack` puts into the product's tarball: the gateway only (docs/decisions/0009-packages.md).
// The package's real manifest is packed in a temp copy of the repository's layout, where every
// tracked file exists (empty) and dist/ holds the output of every TypeScript source of every
// folder, as if the product, the demo, the bench and the scripts had all been built; `files`
// must then pick the gateway's output, README, LICENSE and docs, and nothing else.
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import * as gateway from '../../index.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

interface Manifest {
  main: string
  types: string
  files: string[]
  bin: Record<string, string>
  exports: Record<string, string | Record<string, string>>
  scripts: Record<string, string>
}
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest

function repoFiles (): string[] {
  const r = spawnSync('git', ['-C', ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (r.status !== 0) throw new Error(`git ls-files failed: ${r.stderr}`)
  return [...new Set(r.stdout.split('\0').filter(f => f !== ''))].sort()
}

/** The tarball's file list for the manifest in `dir` (npm's own answer, scripts not run). */
function packList (dir: string): string[] {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (r.status !== 0) throw new Error(`npm pack failed (${r.status}): ${r.stderr}`)
  const out = JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>
  return out[0].files.map(f => f.path).sort()
}

const files = repoFiles()
const tsSources = files.filter(f => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith('test/'))
const built = (src: string): string[] => ['.js', '.d.ts', '.js.map'].map(ext => `dist/${src.replace(/\.ts$/, ext)}`)

t.test('npm pack of the product lists the gateway, README, LICENSE and docs only', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'meshgate-pack-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const f of [...files, ...tsSources.flatMap(built)]) {
    mkdirSync(dirname(join(dir, f)), { recursive: true })
    writeFileSync(join(dir, f), '')
  }
  for (const f of ['package.json', '.gitignore', 'README.md', 'LICENSE']) copyFileSync(join(ROOT, f), join(dir, f))

  const got = packList(dir)
  const gatewaySource = (f: string): boolean => /^(src|plugins|routes)\//.test(f) || ['index.ts', 'bin/meshgate.ts', 'bin/tuning.ts'].includes(f)
  const want = [
    'package.json', 'README.md', 'LICENSE',
    ...files.filter(f => f.startsWith('docs/') || f.startsWith('ui/')),
    ...tsSources.filter(gatewaySource).flatMap(src => built(src).filter(f => !f.endsWith('.map')))
  ].sort()
  t.same(got, want, 'exactly the gateway\'s compiled modules and declarations, README, LICENSE, docs/ and the dashboard\'s ui/')
  t.ok(got.includes('ui/index.html'), 'the dashboard page')
  t.ok(got.includes('dist/bin/meshgate.js'), 'the meshgate CLI')
  t.ok(got.includes('LICENSE') && files.includes('LICENSE'), 'the LICENSE file exists and is packed')
  const stray = got.filter(f => /(^|\/)(demo|bench|scripts|test|docker|gateway-config)\//.test(f) || /bookinfo|soak|\.test\.|\.map$/.test(f))
  t.same(stray, [], 'no stand-ins, demo, bench, soak, scripts, tests or source maps')
})

t.test('main, types, exports and bin name files the product build emits', async t => {
  const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[], compilerOptions: { declaration?: boolean } }
  t.equal(build.compilerOptions.declaration, true, 'the product build emits declarations')
  const root = pkg.exports['.'] as Record<string, string>
  t.same(Object.keys(pkg.exports).sort(), ['.', './package.json'], 'one entry point, plus the manifest')
  const targets = [pkg.main, pkg.types, root.types, root.default, ...Object.values(pkg.bin)]
  for (const target of targets) {
    const m = /^(?:\.\/)?dist\/(.+)\.(js|d\.ts)$/.exec(target)
    t.ok(m !== null, `${target} is under dist/`)
    const src = `${m?.[1]}.ts`
    t.ok(files.includes(src), `${target} is built from ${src}`)
    t.ok(build.include.some(i => src === i || src.startsWith(`${i}/`)), `${src} is in the product build (tsconfig.build.json)`)
  }
  t.equal(root.types, pkg.types, 'exports["."].types is the package\'s types')
  t.equal(root.default, pkg.main, 'exports["."] is the package\'s main')
})

t.test('the entry point exports what an embedding program runs', async t => {
  for (const name of ['startGateway', 'loadConfig', 'startAdmin', 'readConfigInputs', 'formatProblem'] as const) {
    t.type(gateway[name], 'function', `${name} is exported`)
  }
  const loaded = gateway.loadConfig([{ file: 'x.yaml', text: 'apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {servers: []}\n' }])
  t.equal(loaded.set.gateways.length, 1, 'loadConfig from the entry point loads a Gateway')
  t.ok(new gateway.ConfigError([]) instanceof Error, 'ConfigError is the error startGateway throws on bad config')
})
