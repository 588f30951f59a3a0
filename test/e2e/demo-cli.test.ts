import { spawn, type ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// The demo launcher as `npm start` runs it: workload ports that can be moved, the admin API on
// its own port with a printed token, and a non-zero exit (not a demo half up) when a port is taken.

const script = fileURLToPath(new URL('../../demo/cli.ts', import.meta.url))
const tsLoader = process.execArgv.filter(a => a.includes('@tapjs/typescript'))

async function freePorts (n: number): Promise<number[]> {
  const servers: Server[] = []
  const ports: number[] = []
  for (let i = 0; i < n; i++) {
    const s = createServer()
    await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
    servers.push(s)
    ports.push((s.address() as AddressInfo).port)
  }
  await Promise.all(servers.map(s => new Promise(resolve => s.close(resolve))))
  return ports
}

function get (port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers }, res => {
      let body = ''
      res.on('data', c => { body += String(c) })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    }).on('error', reject).end()
  })
}

function run (args: string[]): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [...tsLoader, script, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', c => { stderr += String(c) })
  const exit = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  return { child, stderr: () => stderr, exit }
}

t.test('workload ports move with --workload-port-base; the admin API answers with the printed token', async t => {
  // Eight consecutive free ports are not guaranteed; take a high base and check it is free.
  const [ingress, mesh, admin, control] = await freePorts(4)
  const base = 42000 + Math.floor(Math.random() * 2000)
  const demo = run(['--ingress-port', String(ingress), '--mesh-port', String(mesh), '--admin-port', String(admin), '--control-port', String(control), '--workload-port-base', String(base), '--access-log', 'off'])
  t.teardown(() => { demo.child.kill('SIGKILL') })
  const deadline = Date.now() + 60_000
  while (!demo.stderr().includes('demo is running') && Date.now() < deadline) {
    if (demo.child.exitCode !== null) break
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.match(demo.stderr(), 'demo is running', 'started')
  t.equal((await get(base, '/health')).status, 200, 'the first workload listens on the base port')
  t.equal((await get(ingress, '/productpage')).status, 200, 'and the product page works through the moved ports')
  const token = /token: (\S+)/.exec(demo.stderr())?.[1]
  t.ok(token !== undefined, 'the admin token is printed')
  const ex = await get(admin, '/routes/explain?listener=mesh&authority=reviews:9080&path=/reviews/0', { authorization: `Bearer ${token ?? ''}` })
  t.equal(ex.status, 200, 'explain answers on the admin port')
  t.match(JSON.parse(ex.body), { result: 'forward' })
  demo.child.kill('SIGTERM')
  t.equal(await demo.exit, 0, 'exits 0 on SIGTERM')
})

t.test('a port in use: the demo exits non-zero instead of staying up', async t => {
  const taken = createServer()
  await new Promise<void>(resolve => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => taken.close(resolve)))
  const busy = (taken.address() as AddressInfo).port
  const [ingress, mesh, control] = await freePorts(3)
  const demo = run(['--ingress-port', String(ingress), '--mesh-port', String(mesh), '--admin-port', String(busy), '--control-port', String(control), '--workload-port-base', String(43000 + Math.floor(Math.random() * 2000)), '--access-log', 'off'])
  const timer = setTimeout(() => demo.child.kill('SIGKILL'), 60_000)
  const code = await demo.exit
  clearTimeout(timer)
  t.equal(code, 1, 'exit 1')
  t.match(demo.stderr(), /port is in use/, 'and says which')
})
