// Headless Debian Chromium for the browser tests, driven by playwright-core: a fresh profile per
// test, the flags this machine needs (no background networking: the network is closed), and the
// profile removed when the test ends. Screenshots go to test-artifacts/ (not committed).
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Page } from 'playwright-core'
import { repoRoot } from '../../demo/demo.js'
import type { Teardown } from './gateway.js'

export const CHROMIUM = '/usr/bin/chromium'
export const ARTIFACTS = join(repoRoot(), 'test-artifacts')

/**
 * A page in a new headless Chromium, closed with its profile when the test ends. Throws a
 * message that says what to install when Chromium is missing or does not start.
 */
export async function chromiumPage (t: Teardown, viewport: { width: number; height: number }): Promise<Page> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: install the Debian package (apt-get install chromium); .ci/run installs it`)
  const profile = await mkdtemp(join(tmpdir(), 'meshgate-chromium-'))
  let ctx
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport,
      timeout: 60000
    })
  } catch (err) {
    await rm(profile, { recursive: true, force: true })
    throw new Error(`Chromium at ${CHROMIUM} did not start: ${(err as Error).message}`)
  }
  const c = ctx
  t.teardown(async () => {
    await c.close()
    await rm(profile, { recursive: true, force: true })
  })
  await mkdir(ARTIFACTS, { recursive: true })
  return c.pages()[0] ?? await c.newPage()
}
