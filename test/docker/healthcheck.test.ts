import { spawn } from 'node:child_process'
import t from 'tap'
import { startService } from '../../demo/bookinfo/index.js'
import { startAdmin } from '../../routes/admin.js'
import { serviceEntry, startInlineGateway } from '../helpers/upstream.js'
import { execForm, readDockerfile } from './parse.js'

// The images' HEALTHCHECK commands, taken from the Dockerfiles and run as Docker would run
// them (the exec-form argv, the container's environment), against the real admin API and a
// real stand-in. This is the part of the images that can run without a Docker engine.

function healthcheck (file: string): string[] {
  const run = readDockerfile(file).stages.at(-1)!
  const hc = run.instructions.find(i => i.keyword === 'HEALTHCHECK')
  if (hc === undefined) throw new Error(`${file}: no HEALTHCHECK`)
  const argv = execForm(hc.args.replace(/^(--\S+\s+)*CMD\s+/, ''))
  if (argv === undefined) throw new Error(`${file}: HEALTHCHECK CMD is not in exec form`)
  return argv
}

/** Run an argv (argv[0] is `node`) with only the given environment; resolve its exit code. */
async function exitCode (argv: string[], env: Record<string, string>): Promise<number> {
  if (argv[0] !== 'node') throw new Error(`expected a node command, got ${argv[0]}`)
  return await new Promise((resolve, reject) => {
    const p = spawn(process.execPath, argv.slice(1), { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore' })
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error('healthcheck hung')) }, 20000)
    p.on('error', reject)
    p.on('exit', code => { clearTimeout(timer); resolve(code ?? -1) })
  })
}

t.test('meshgate HEALTHCHECK: GET /ready on the admin port, with the token when one is set', async t => {
  const argv = healthcheck('docker/Dockerfile')
  const gw = await startInlineGateway(serviceEntry('reviews', { v1: 9 }))
  let closed = false
  t.teardown(async () => { if (!closed) await gw.close(0) })

  // As in the compose file: admin on every interface, so every call needs the token.
  const token = 'healthcheck-test-token'
  const admin = await startAdmin({ gateway: gw, host: '0.0.0.0', port: 0, token })
  t.teardown(() => admin.close())
  const port = new URL(admin.url).port
  t.equal(await exitCode(argv, { MESHGATE_ADMIN_PORT: port, MESHGATE_ADMIN_TOKEN: token }), 0, 'healthy with the token from the environment')
  t.equal(await exitCode(argv, { MESHGATE_ADMIN_PORT: port, MESHGATE_ADMIN_TOKEN: 'wrong' }), 0, 'readiness needs no token, so a stale one does not matter')
  t.equal(await exitCode(argv, { MESHGATE_ADMIN_PORT: port }), 0, 'no token off loopback: the probe is still answered')

  // The image's default: admin on loopback, no token needed for GET.
  const local = await startAdmin({ gateway: gw, host: '127.0.0.1', port: 0 })
  t.teardown(() => local.close())
  t.equal(await exitCode(argv, { MESHGATE_ADMIN_PORT: new URL(local.url).port }), 0, 'healthy on loopback without a token')

  // Shutdown turns the gateway not-ready: the check fails before the process exits.
  await gw.close(0)
  closed = true
  t.equal(await exitCode(argv, { MESHGATE_ADMIN_PORT: port, MESHGATE_ADMIN_TOKEN: token }), 1, 'unhealthy once shutdown begins (503)')
  await admin.close()
  t.equal(await exitCode(argv, { MESHGATE_ADMIN_PORT: port, MESHGATE_ADMIN_TOKEN: token }), 1, 'unhealthy when nothing listens')
})

t.test('stand-in HEALTHCHECK: GET /health on PORT', async t => {
  const argv = healthcheck('docker/bookinfo/Dockerfile')
  for (const name of ['productpage', 'details', 'reviews', 'ratings'] as const) {
    const svc = await startService(name, { port: 0 })
    t.equal(await exitCode(argv, { PORT: String(svc.port) }), 0, `${name}: healthy`)
    await svc.close()
    t.equal(await exitCode(argv, { PORT: String(svc.port) }), 1, `${name}: unhealthy when stopped`)
  }
})
