import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { formatProblem } from '../../src/config/problem.js'

// No Istio kind is dropped silently: what meshgate cannot enforce is an error (MG0012) unless the
// operator downgrades it on purpose; other API groups' kinds stay warnings.

const load = (text: string, opts = {}): ReturnType<typeof loadConfig> => loadConfig([{ file: 'in.yaml', text }], opts)
const codes = (r: ReturnType<typeof loadConfig>): string[] => r.problems.map(p => `${p.severity} ${p.code}`)

t.test('a misspelt networking kind is an error naming the kinds meshgate reads', async t => {
  const r = load('apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: { name: x }\nspec: {}\n')
  t.same(codes(r), ['Error MG0012'])
  t.match(r.problems[0].message, /"VirtualServce" of networking\.istio\.io .*VirtualService/)
  t.equal(r.problems[0].line, 1)
  t.equal(r.ok, false)
  const lenient = load('apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: { name: x }\nspec: {}\n', { allowUnsupportedKinds: true })
  t.same(codes(lenient), ['Warning MG0012'], '--allow-unsupported-kinds downgrades it')
  t.equal(lenient.ok, true)
})

t.test('other groups and Istio kinds that change no access decision stay warnings', async t => {
  t.same(codes(load('apiVersion: v1\nkind: Service\nmetadata: { name: x }\nspec: {}\n')), ['Warning MG0002'])
  t.same(codes(load('apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: { name: x }\nspec: {}\n')), ['Warning MG0002'])
  t.same(codes(load('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicyy\nmetadata: { name: x }\nspec: {}\n')), ['Error MG0012'])
})

t.test('CUSTOM authorization is refused; provider without CUSTOM is a schema error', async t => {
  const r = load('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: ext, namespace: foo }\nspec:\n  action: CUSTOM\n  provider: { name: opa }\n  rules:\n  - {}\n')
  t.same(codes(r), ['Error MG0012'])
  t.match(formatProblem(r.problems[0]), /AuthorizationPolicy foo\/ext in\.yaml:5:\d+\) spec\.action: CUSTOM authorization/)
  const p = load('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: x }\nspec:\n  provider: { name: opa }\n')
  t.same(codes(p), ['Error IST0106'])
})

t.test('PeerAuthentication: STRICT refused with the reason, PERMISSIVE and DISABLE accepted', async t => {
  const strict = load('apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: default, namespace: istio-system }\nspec:\n  mtls:\n    mode: STRICT\n')
  t.same(codes(strict), ['Error MG0012'])
  t.match(strict.problems[0].message, /mutual TLS between workloads.*plaintext/)
  t.equal(strict.problems[0].path, 'spec.mtls.mode')
  t.same(codes(load('apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: p }\nspec:\n  mtls:\n    mode: PERMISSIVE\n')), [])
  t.same(codes(load('apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: { name: p }\nspec:\n  selector: { matchLabels: { app: x } }\n  portLevelMtls:\n    "8080": { mode: STRICT }\n')), ['Error MG0012'])
})

t.test('field errors name the field: bad CIDR, port, path, condition key, jwks', async t => {
  const r = load(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: bad }
spec:
  rules:
  - from:
    - source: { ipBlocks: ["10.0.0.0/33"] }
    to:
    - operation: { ports: ["http"], paths: ["/a*b"] }
    when:
    - key: request.cookie[x]
      values: ["1"]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt }
spec:
  jwtRules:
  - issuer: me
    jwks: "not json"
`)
  t.same(r.problems.map(p => `${p.path} ${p.line}`), [
    'spec.rules[0].from[0].source.ipBlocks[0] 7',
    'spec.rules[0].to[0].operation.ports[0] 9',
    'spec.rules[0].to[0].operation.paths[0] 9',
    'spec.rules[0].when[0].key 11',
    'spec.jwtRules[0].jwks 20'
  ])
})

t.test('meshgate validate exits 1 on an unenforceable kind, 0 with --allow-unsupported-kinds', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'mg-kinds-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'pa.yaml')
  writeFileSync(file, 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: default }\nspec:\n  mtls: { mode: STRICT }\n')
  const run = (args: string[]): Promise<{ code: number; out: string }> => new Promise(resolve => {
    execFile(process.execPath, [...process.execArgv, join(import.meta.dirname, '..', '..', 'bin', 'meshgate.ts'), 'validate', ...args], (err, stdout) => {
      resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, out: stdout })
    })
  })
  const refused = await run([file])
  t.equal(refused.code, 1)
  t.match(refused.out, /Error \[MG0012\] \(PeerAuthentication default\/default .*pa\.yaml:5:\d+\) spec\.mtls\.mode/)
  const allowed = await run(['--allow-unsupported-kinds', file])
  t.equal(allowed.code, 0)
  t.match(allowed.out, /Warning \[MG0012\]/)
})
