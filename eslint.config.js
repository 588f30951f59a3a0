// Lint: TypeScript-aware recommended rules, kept light so they guard real mistakes
// (unused code, unsafe patterns) rather than formatting, plus the architecture's import
// boundaries (docs/architecture.md#invariants): src/ is pure and imports neither plugins/,
// routes/, bin/ nor I/O modules; plugins/ never imports routes/; the gateway never imports the
// demo, bench or scripts packages, and the demo uses the gateway through index.ts only; and no
// import cycles, type-only ones included.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import globals from 'globals'
import importX from 'eslint-plugin-import-x'
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript'

const IO_MODULES = ['fs', 'fs/promises', 'net', 'http', 'https', 'http2', 'tls', 'dgram', 'child_process', 'cluster', 'worker_threads', 'dns']
  .flatMap(m => [m, `node:${m}`])

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tap/**', 'test-artifacts/**', '.scratch/**', '.bench/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: { ...globals.node } } },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      'no-control-regex': 'off',
      'max-len': ['error', { code: 200, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true, ignoreComments: false }]
    }
  },
  {
    files: ['index.ts', 'src/**/*.ts', 'plugins/**/*.ts', 'routes/**/*.ts', 'bin/**/*.ts', 'demo/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })] },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': ['error', {
        zones: [
          { target: './src', from: './plugins', message: 'src/ is the pure core: it never imports plugins/' },
          { target: './src', from: './routes', message: 'src/ never imports routes/' },
          { target: './src', from: './bin', message: 'src/ never imports bin/' },
          { target: './plugins', from: './routes', message: 'plugins/ never imports routes/' },
          // The product (the gateway) never reaches into the packages beside it (docs/decisions/0009-packages.md).
          ...['./src', './plugins', './routes', './bin', './index.ts'].flatMap(target => [
            { target, from: './demo', message: 'the gateway never imports the demo package (demo/)' },
            { target, from: './bench', message: 'the gateway never imports the bench package (bench/)' },
            { target, from: './scripts', message: 'the gateway never imports the repository scripts (scripts/)' }
          ]),
          // The demo runs the gateway through its public entry point (index.ts, package.json `exports`) only.
          ...['./src', './plugins', './routes', './bin'].map(from => ({ target: './demo', from, message: 'demo/ uses the gateway through index.ts, its public entry point' }))
        ]
      }]
    }
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: [...IO_MODULES, 'fastify', 'undici', 'pino'].map(name => ({ name, message: 'src/ is pure: sockets, files and frameworks are wired in plugins/' })) }]
    }
  }
)
