import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * meshgate's version, from its package.json. This module runs from its TypeScript source
 * (plugins/version.ts, under the tests) and compiled (dist/plugins/version.js), so the manifest
 * is found by walking up from this module's directory to the first package.json named
 * "meshgate". Read once; "0.0.0-unknown" when none is found.
 */
export function meshgateVersion (): string {
  cached ??= findVersion(dirname(fileURLToPath(import.meta.url)))
  return cached
}

let cached: string | undefined

function findVersion (start: string): string {
  let dir = start
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown }
      if (pkg.name === 'meshgate' && typeof pkg.version === 'string') return pkg.version
    } catch {
      // No (readable) package.json here: keep walking up.
    }
    const parent = dirname(dir)
    if (parent === dir) return '0.0.0-unknown'
    dir = parent
  }
}
