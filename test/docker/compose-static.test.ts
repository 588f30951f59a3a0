import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join, posix } from 'node:path'
import t, { type Test } from 'tap'
import { parseAllDocuments } from 'yaml'
import { optionsFromEnv, SERVICE_NAMES, type ServiceName } from '../../demo/bookinfo/options.js'
import { parseArgs as standinArgs } from '../../demo/bookinfo/server.js'
import { readConfigInputs } from '../../plugins/config-files.js'
import { compile } from '../../src/compile/compile.js'
import { loadConfig } from '../../src/config/load.js'
import {
  ROOT, aliases, copies, dockerignored, durationMs, environment, execForm, interpolateDefaults,
  networkNames, readCompose, readDockerfile, type ComposeService, type Stage
} from './parse.js'

// No Docker engine runs on these machines, so the compose demo is checked statically: the
// files parse, and every name, port, path and image they share agrees with the others and
// with the code (meshgate's CLI and loader, the stand-ins' defaults, the Bookinfo API).

const compose = readCompose('docker-compose.yml')
const offline = readCompose('docker-compose.offline.yml')
const meshgate = compose.services.meshgate
const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n')

interface Endpoint { address: string; ports?: Record<string, number>; labels?: Record<string, string> }
interface SE { kind: string; metadata: { name: string }; spec: { hosts: string[]; ports: Array<{ number: number; name: string }>; resolution?: string; endpoints?: Endpoint[] } }

function serviceEntries (dir: string): SE[] {
  const out: SE[] = []
  for (const f of readdirSync(join(ROOT, dir)).filter(f => f.endsWith('.yaml')).sort()) {
    for (const d of parseAllDocuments(readFileSync(join(ROOT, dir, f), 'utf8'))) {
      const v = d.toJS() as SE | null
      if (v?.kind === 'ServiceEntry') out.push(v)
    }
  }
  return out
}

/** The value following `--flag` in a command list (last occurrence, as node's parseArgs takes). */
function flag (cmd: string[], name: string): string | undefined {
  let v: string | undefined
  cmd.forEach((a, i) => { if (a === name) v = cmd[i + 1]; else if (a.startsWith(name + '=')) v = a.slice(name.length + 1) })
  return v
}

const commandOf = (s: ComposeService): string[] => {
  if (s.command === undefined) return []
  if (!Array.isArray(s.command)) throw new Error('commands are written in exec (list) form')
  return s.command
}

const composeSes = serviceEntries('gateway-config/compose')
const localSes = serviceEntries('gateway-config/local')
// The six Bookinfo workloads, as the local demo registers them: `${app}-${version}`.
const workloads = localSes.flatMap(se => (se.spec.endpoints ?? []).map(e => `${e.labels?.app}-${e.labels?.version}`)).sort()

t.test('the compose files parse and name the Kubernetes deployments', async t => {
  t.same(workloads, ['details-v1', 'productpage-v1', 'ratings-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3'], 'the six Bookinfo workloads')
  t.same(Object.keys(compose.services).filter(n => (compose.services[n] as { profiles?: unknown }).profiles === undefined).sort(), ['meshgate', ...workloads].sort(), 'one compose service per workload, plus meshgate')
  for (const w of workloads) {
    t.equal(compose.services[w].hostname, w, `${w}: hostname is the workload name (reviews shows it as "Reviews served by")`)
    t.same(networkNames(compose.services[w]), networkNames(meshgate), `${w}: on meshgate's network`)
  }
  t.same(Object.keys(offline.services).sort(), [...workloads].sort(), 'the offline override replaces exactly the six workloads')
})

t.test('ServiceEntry endpoints in gateway-config/compose name compose services, ports agree', async t => {
  t.ok(composeSes.length >= 4, 'compose registry has ServiceEntries')
  const byHost = (ses: SE[]): Record<string, SE> => Object.fromEntries(ses.map(se => [se.spec.hosts[0], se]))
  const c = byHost(composeSes)
  const l = byHost(localSes)
  t.same(Object.keys(c).sort(), Object.keys(l).sort(), 'same hosts as the local registry')
  const meshPort = Number(flag(commandOf(meshgate), '--mesh-port'))
  t.equal(meshPort, 9080, 'meshgate listens as the mesh on 9080')
  for (const [host, se] of Object.entries(c)) {
    t.equal(se.spec.resolution, 'DNS', `${host}: resolution DNS (compose service names)`)
    t.same(se.spec.ports, l[host].spec.ports, `${host}: same service ports as the local registry`)
    for (const p of se.spec.ports) t.equal(p.number, meshPort, `${host}: service port ${p.number} is the port meshgate's mesh listener takes`)
    const eps = se.spec.endpoints ?? []
    t.same(eps.map(e => e.labels), (l[host].spec.endpoints ?? []).map(e => e.labels), `${host}: same endpoint labels as the local registry`)
    for (const ep of eps) {
      const svc = compose.services[ep.address]
      t.ok(svc !== undefined, `${host}: endpoint ${ep.address} is a compose service`)
      t.equal(ep.address, `${ep.labels?.app}-${ep.labels?.version}`, `${ep.address}: named after its app/version labels`)
      t.equal(ep.labels?.app, host, `${ep.address}: app label is the service host`)
      const port = Object.values(ep.ports ?? {})[0]
      // The official images listen on 9080 (docs/architecture.md#bookinfo-stand-ins); the stand-ins' CLI defaults to it.
      const app = ep.labels?.app as ServiceName
      const off = offline.services[ep.address]
      const standin = standinArgs([...standinEntrypoint().slice(2), ...commandOf(off)], environment(off))
      t.equal(standin.port, port, `${ep.address}: the offline stand-in listens on the endpoint port ${port}`)
      t.equal(standin.name, app, `${ep.address}: the offline stand-in runs ${app}`)
      t.equal(port, 9080, `${ep.address}: the official image listens on 9080`)
    }
  }
})

t.test('meshgate owns the service names the workloads call, nobody else does', async t => {
  const pp = optionsFromEnv('productpage', {})
  const rv = optionsFromEnv('reviews', { SERVICE_VERSION: 'v2' })
  const called = new Set([pp.detailsHostname!, pp.reviewsHostname!, pp.ratingsHostname!, rv.ratingsHostname!])
  t.same([...called].sort(), ['details', 'ratings', 'reviews'], 'productpage and reviews call details, reviews, ratings')
  t.same(new Set([pp.detailsPort, pp.reviewsPort, pp.ratingsPort, rv.ratingsPort]), new Set(['9080']), 'at port 9080')
  const al = aliases(meshgate)
  for (const h of called) {
    t.ok(al.includes(h), `meshgate carries the alias ${h}`)
    t.notOk(h in compose.services, `no compose service is named ${h} (it would answer instead of meshgate)`)
    for (const [name, s] of Object.entries(compose.services)) if (name !== 'meshgate') t.notOk(aliases(s).includes(h), `${name} has no alias ${h}`)
    t.ok(composeSes.some(se => se.spec.hosts.includes(h)), `${h} is registered in gateway-config/compose`)
  }
  for (const name of Object.keys(compose.services)) t.notOk(al.includes(name), `meshgate does not shadow ${name}`)
})

t.test('published ports and the admin API', async t => {
  const env = environment(meshgate)
  const gw = parseAllDocuments(readFileSync(join(ROOT, 'gateway-config/bookinfo-gateway.yaml'), 'utf8'))
    .map(d => d.toJS() as { kind: string; spec: { servers: Array<{ port: { number: number } }> } })
    .find(r => r.kind === 'Gateway')!
  const serverPort = gw.spec.servers[0].port.number
  t.equal(serverPort, 8080, 'the Bookinfo Gateway listens on 8080')
  t.equal(flag(commandOf(meshgate), '--port-map'), undefined, 'no port map: the Gateway port is the container port')
  t.ok(meshgate.ports?.includes(`${serverPort}:${serverPort}`), 'ingress 8080 published')
  t.ok(meshgate.ports?.includes('127.0.0.1:15000:15000'), 'admin published on the host loopback only')
  t.notOk(meshgate.ports?.some(p => /^(\d+:)?9080$/.test(p) || p.endsWith(':9080')), 'the mesh port is not published')
  t.equal(env.MESHGATE_ADMIN_HOST, '0.0.0.0', 'admin reachable through the published port')
  t.equal(interpolateDefaults(env.MESHGATE_ADMIN_TOKEN ?? ''), 'change-me', 'token from the environment, documented default')
  t.match(env.MESHGATE_ADMIN_TOKEN, /^\$\{MESHGATE_ADMIN_TOKEN:-/, 'the user can set their own token')
  t.ok(durationMs(meshgate.stop_grace_period ?? '10s') > 10000, 'stop_grace_period exceeds the 10 s drain timeout')

  // Every flag and variable used exists in meshgate's CLI.
  const cli = readFileSync(join(ROOT, 'bin/meshgate.ts'), 'utf8')
  for (const a of commandOf(meshgate).filter(a => a.startsWith('--'))) t.ok(cli.includes(`'${a.slice(2)}': {`) || cli.includes(` ${a.slice(2)}: {`), `meshgate accepts ${a}`)
  for (const k of Object.keys(env)) t.ok(cli.includes(`env.${k}`), `meshgate reads ${k}`)
})

/** Map a container path under a compose bind mount to the repository path. */
function hostPath (s: ComposeService, containerPath: string): string | undefined {
  for (const v of s.volumes ?? []) {
    const [src, dst] = v.split(':')
    if (containerPath === dst || containerPath.startsWith(dst + '/')) return posix.join(src, containerPath.slice(dst.length))
  }
  return undefined
}

t.test('the mounted config loads with meshgate\'s loader, alone and with every scenario', async t => {
  const paths = environment(meshgate).MESHGATE_CONFIG.split(',')
  t.same(paths, ['/etc/meshgate', '/etc/meshgate/compose', '/etc/meshgate/compose/active'])
  const repoPaths = paths.map(p => hostPath(meshgate, p))
  t.same(repoPaths, ['gateway-config', 'gateway-config/compose', 'gateway-config/compose/active'], 'all under the ./gateway-config mount')
  t.ok(meshgate.volumes?.includes('./gateway-config:/etc/meshgate:ro'), 'mounted read-only')
  const scenarios = readdirSync(join(ROOT, 'gateway-config/scenarios')).filter(f => f.endsWith('.yaml')).sort()
  t.ok(scenarios.includes('fallback-v3-to-v2.yaml') && scenarios.includes('reviews-jason-v2.yaml'), 'the walkthrough scenarios are in the mount')
  for (const extra of [undefined, ...scenarios]) {
    const files = [...repoPaths.map(p => join(ROOT, p!)), ...(extra !== undefined ? [join(ROOT, 'gateway-config/scenarios', extra)] : [])]
    const { inputs, problems: io } = await readConfigInputs(files)
    t.same(io, [], `${extra ?? 'base'}: files readable`)
    const loaded = loadConfig(inputs)
    const errors = [...loaded.problems, ...compile(loaded.set).problems].filter(p => p.severity === 'Error')
    t.same(errors, [], `${extra ?? 'base'}: loads and compiles without errors`)
    if (extra === undefined) {
      t.same(loaded.set.serviceEntries.map(s => s.metadata.name).sort(), ['details', 'productpage', 'ratings', 'reviews'], 'compose registry loaded')
      t.equal(loaded.set.virtualServices.length, 1, 'base: only the bookinfo VirtualService (reviews rotates)')
    }
  }
})

t.test('images are pinned', async t => {
  for (const w of workloads) {
    const img = compose.services[w].image ?? ''
    t.equal(img, `docker.io/istio/examples-bookinfo-${w}:1.20.3`, `${w}: the official image, pinned`)
  }
  for (const [name, s] of [...Object.entries(compose.services), ...Object.entries(offline.services)]) {
    const img = s.image ?? ''
    const tag = /:([^/:]+)$/.exec(img)?.[1]
    t.ok(tag !== undefined, `${name}: ${img} has a tag`)
    t.not(tag, 'latest', `${name}: not latest`)
  }
  // The Node version CI runs (.ci/run reads .node-version) is the one the images run.
  const nodeVersion = readFileSync(join(ROOT, '.node-version'), 'utf8').trim()
  t.match(nodeVersion, /^24\.\d+\.\d+$/, '.node-version: an exact Node 24 release')
  for (const f of ['docker/Dockerfile', 'docker/bookinfo/Dockerfile']) {
    for (const st of readDockerfile(f).stages) {
      const tag = /:([^/:@]+)$/.exec(st.image)?.[1]
      t.ok(tag !== undefined && tag !== 'latest', `${f}: FROM ${st.image} has a tag, not latest`)
      t.equal(st.image, `node:${nodeVersion}-bookworm-slim`, `${f}: FROM the exact Node release of .node-version`)
    }
  }
})

/** Check a Dockerfile's COPY sources exist in the repository and are not excluded from the context. */
function checkCopies (t: Test, file: string, stages: Stage[]): void {
  const aliasesSeen = new Set<string>()
  for (const st of stages) {
    for (const c of copies(st)) {
      if (c.from !== undefined) {
        t.ok(aliasesSeen.has(c.from), `${file}:${c.line}: COPY --from=${c.from} names an earlier stage`)
        continue
      }
      for (const src of c.sources) {
        t.ok(existsSync(join(ROOT, src)), `${file}:${c.line}: COPY source ${src} exists`)
        t.notOk(dockerignored(ignore, src), `${file}:${c.line}: ${src} is not excluded by .dockerignore`)
      }
    }
    if (st.alias !== undefined) aliasesSeen.add(st.alias)
  }
}

t.test('.dockerignore matching', async t => {
  t.ok(dockerignored(ignore, 'node_modules'), 'node_modules excluded')
  t.ok(dockerignored(ignore, 'node_modules/re2/build/Release/re2.node'), 'paths under node_modules excluded')
  t.ok(dockerignored(ignore, 'dist/bin/meshgate.js'), 'host dist/ excluded')
  t.ok(dockerignored(ignore, '.git/HEAD'), '.git excluded')
  t.ok(dockerignored(ignore, 'gateway-config/compose/active/fallback-v3-to-v2.yaml'), 'local scenario copies excluded')
  t.notOk(dockerignored(ignore, 'gateway-config/compose/active/00-none.yaml'), 'the placeholder kept')
  t.notOk(dockerignored(ignore, 'src/config/load.ts'), 'sources kept')
  t.notOk(dockerignored(ignore, 'package-lock.json'), 'lockfile kept')
})

t.test('docker/Dockerfile: multi-stage build, non-root, healthcheck, exec-form entrypoint', async t => {
  const df = readDockerfile('docker/Dockerfile')
  t.equal(df.stages.length, 2, 'build and runtime stages')
  const [build, run] = df.stages
  t.match(run.image, /slim/, 'slim runtime image')
  const runs = build.instructions.filter(i => i.keyword === 'RUN').map(i => i.args).join('\n')
  t.match(runs, /npm ci\b/, 'npm ci from the lockfile')
  t.match(runs, /npm run build/, 'TypeScript build')
  t.match(runs, /npm prune --omit=dev/, 'dev dependencies dropped')
  t.match(runs, /python3.*make.*g\+\+/s, 're2 build tools in the build stage only')
  t.notMatch(run.instructions.filter(i => i.keyword === 'RUN').map(i => i.args).join('\n'), /g\+\+/, 'no compiler in the runtime image')
  checkCopies(t, 'docker/Dockerfile', df.stages)

  const user = run.instructions.filter(i => i.keyword === 'USER').map(i => i.args)
  t.same(user, ['node'], 'runs as the node user')
  const entry = run.instructions.filter(i => i.keyword === 'ENTRYPOINT').map(i => execForm(i.args))
  t.same(entry, [['node', 'dist/bin/meshgate.js']], 'ENTRYPOINT in exec form: node is PID 1 and gets SIGTERM')
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }
  t.equal(pkg.bin.meshgate, 'dist/bin/meshgate.js', 'the entrypoint is the package\'s bin')
  t.ok(existsSync(join(ROOT, 'bin/meshgate.ts')), 'its source exists')
  const env = run.instructions.filter(i => i.keyword === 'ENV').map(i => i.args).join(' ')
  t.match(env, /MESHGATE_CONFIG=\/etc\/meshgate\b/, 'config read from /etc/meshgate by default')
  const expose = run.instructions.filter(i => i.keyword === 'EXPOSE').flatMap(i => i.args.split(/\s+/))
  for (const p of ['8080', '9080', '15000']) t.ok(expose.includes(p), `EXPOSE ${p}`)

  const hc = run.instructions.filter(i => i.keyword === 'HEALTHCHECK')
  t.equal(hc.length, 1, 'one HEALTHCHECK')
  const cmd = execForm(hc[0].args.replace(/^(--\S+\s+)*CMD\s+/, ''))
  t.equal(cmd?.[0], 'node', 'healthcheck runs node (no curl in slim images)')
  t.match(cmd?.join(' '), /127\.0\.0\.1.*\/ready/, 'it asks the admin readiness endpoint')
})

/** ENTRYPOINT of the stand-in image. */
function standinEntrypoint (): string[] {
  const run = readDockerfile('docker/bookinfo/Dockerfile').stages.at(-1)!
  return execForm(run.instructions.find(i => i.keyword === 'ENTRYPOINT')!.args)!
}

t.test('docker/bookinfo/Dockerfile and the offline override', async t => {
  const df = readDockerfile('docker/bookinfo/Dockerfile')
  checkCopies(t, 'docker/bookinfo/Dockerfile', df.stages)
  const run = df.stages.at(-1)!
  t.same(run.instructions.filter(i => i.keyword === 'USER').map(i => i.args), ['node'], 'runs as the node user')
  t.ok(run.instructions.some(i => i.keyword === 'HEALTHCHECK' && /\/health/.test(i.args)), 'healthcheck on /health')
  const entry = standinEntrypoint()
  t.same(entry.slice(0, 2), ['node', 'dist/demo/bookinfo/server.js'], 'exec-form entrypoint: the stand-in CLI')
  t.ok(existsSync(join(ROOT, 'demo/bookinfo/server.ts')), 'its source exists')
  const defaultCmd = execForm(run.instructions.find(i => i.keyword === 'CMD')!.args)!
  t.equal(standinArgs([...entry.slice(2), ...defaultCmd], {}).host, '0.0.0.0', 'listens on every interface of the container, not loopback')

  for (const w of workloads) {
    const s = offline.services[w]
    t.match(s.build, { context: '.', dockerfile: 'docker/bookinfo/Dockerfile' }, `${w}: built from the stand-ins' Dockerfile`)
    const [app, version] = [w.slice(0, w.lastIndexOf('-')), w.slice(w.lastIndexOf('-') + 1)]
    t.ok((SERVICE_NAMES as readonly string[]).includes(app), `${w}: ${app} is a stand-in`)
    const env = environment(s)
    t.equal(env.SERVICE_VERSION, version, `${w}: SERVICE_VERSION ${version}`)
    t.equal(env.HTTP_PROXY ?? env.http_proxy, undefined, `${w}: no proxy: calls go to the meshgate aliases by name`)
    if (app === 'reviews') {
      // The stand-in derives what the official images bake in, with HOSTNAME from compose's hostname.
      const o = optionsFromEnv('reviews', { ...env, HOSTNAME: compose.services[w].hostname })
      t.same([o.enableRatings, o.starColor, o.podname], [version !== 'v1', version === 'v3' ? 'red' : 'black', w], `${w}: ratings, star colour and podname as the official image`)
    }
  }
})

/** Files reachable by relative imports from an entry file (.js specifiers map to .ts sources). */
function importClosure (entry: string): Set<string> {
  const seen = new Set<string>()
  const todo = [entry]
  while (todo.length > 0) {
    const file = todo.pop()!
    if (seen.has(file)) continue
    seen.add(file)
    const text = readFileSync(join(ROOT, file), 'utf8')
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.\.?\/[^']+)'/g)) {
      const target = posix.normalize(posix.join(posix.dirname(file), m[1])).replace(/\.js$/, '.ts')
      if (!existsSync(join(ROOT, target))) throw new Error(`${file}: import ${m[1]} does not resolve to ${target}`)
      todo.push(target)
    }
  }
  return seen
}

t.test('the image build copies every source the CLIs import', async t => {
  for (const [file, entries] of [['docker/Dockerfile', ['bin/meshgate.ts', 'index.ts']], ['docker/bookinfo/Dockerfile', ['demo/bookinfo/server.ts']]] as const) {
    const build = readDockerfile(file).stages[0]
    const copied = copies(build).filter(c => c.from === undefined).flatMap(c => c.sources)
    for (const entry of entries) {
      const files = importClosure(entry)
      t.ok(files.size > 1, `${entry}: ${files.size} source files`)
      const missing = [...files].filter(f => !copied.some(src => f === src || f.startsWith(src.replace(/\/$/, '') + '/')))
      t.same(missing, [], `${file}: the build stage copies everything ${entry} imports`)
    }
  }
})

t.test('the gateway image carries no demo files; the stand-ins image nothing of the gateway', async t => {
  const gateway = readDockerfile('docker/Dockerfile')
  const sources = gateway.stages.flatMap(st => copies(st).filter(c => c.from === undefined).flatMap(c => c.sources))
  t.same(sources.filter(src => /^(demo|bench|scripts|test)(\/|$)/.test(src)), [], 'docker/Dockerfile copies nothing from demo/, bench/, scripts/ or test/')
  for (const entry of ['bin/meshgate.ts', 'index.ts']) {
    t.same([...importClosure(entry)].filter(f => !/^(src|plugins|routes|bin)\/|^index\.ts$/.test(f)), [], `${entry} imports only the gateway's folders`)
  }
  const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] }
  t.same([...build.include].sort(), ['bin', 'index.ts', 'plugins', 'routes', 'src'], 'the product build (npm run build in the image) compiles the gateway only')
  t.notOk(existsSync(join(ROOT, 'bin/demo.ts')), 'no demo launcher among the gateway\'s CLIs')

  const standins = readDockerfile('docker/bookinfo/Dockerfile')
  const copied = standins.stages.flatMap(st => copies(st).filter(c => c.from === undefined).flatMap(c => c.sources))
  t.same(copied.filter(src => /^(src|plugins|routes|bin)(\/|$)|^index\.ts$/.test(src)), [], 'docker/bookinfo/Dockerfile copies none of the gateway\'s sources')
  t.same([...importClosure('demo/bookinfo/server.ts')].filter(f => !f.startsWith('demo/bookinfo/')), [], 'the stand-ins import only each other')
})
