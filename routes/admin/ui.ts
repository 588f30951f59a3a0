import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, FastifySchema } from 'fastify'
import { Type } from '@sinclair/typebox'
import { SESSION_COOKIE, SESSION_TTL_MS, UI_HEADER, sameOriginChange, sessionOf } from './auth.js'
import type { AdminRouteOptions } from './shared.js'

// The dashboard (`/ui`): plain ES modules and CSS from the repository's `ui/` folder, read
// once at start and served from memory (no build step, nothing fetched from elsewhere: it
// works offline), plus the login and logout that trade the token for a session cookie.

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png'
}

/**
 * What every dashboard answer carries: scripts, styles and connections from this origin only,
 * never framed (clickjacking), no MIME sniffing, no Referer.
 */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer'
}

interface Asset { body: Buffer; type: string; etag: string }

/** The folder holding `index.html`: `ui/` at the package root, found from this module (sources and dist/ alike). */
export function uiFolder (): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'ui', 'index.html'))) return join(dir, 'ui')
    dir = dirname(dir)
  }
  return undefined
}

/** Every file of the folder (not its subfolders) whose type is served, by name. */
function loadAssets (folder: string): Map<string, Asset> {
  const assets = new Map<string, Asset>()
  for (const name of readdirSync(folder)) {
    const type = TYPES[extname(name)]
    if (type === undefined) continue
    const body = readFileSync(join(folder, name))
    assets.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` })
  }
  return assets
}

/** An asset with its type, revalidated on every use (`no-cache` + ETag: a new version shows at once, an unchanged one costs a 304). */
function sendAsset (req: FastifyRequest, reply: FastifyReply, a: Asset): FastifyReply {
  void reply.headers({ ...SECURITY_HEADERS, 'content-type': a.type, 'cache-control': 'no-cache', etag: a.etag })
  if (req.headers['if-none-match'] === a.etag) return reply.code(304).send()
  return reply.send(a.body)
}

function sessionCookie (req: FastifyRequest, value: string, maxAgeS: number): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${req.protocol === 'https' ? '; Secure' : ''}`
}

const LoginBody = Type.Object({ token: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false })
const Ok = Type.Object({ ok: Type.Boolean() })
const Err = Type.Object({ error: Type.String() })
/** Hidden from the OpenAPI document: the dashboard's own plumbing (docs/dashboard.md). */
const HIDDEN = { hide: true } as FastifySchema

/** `GET /ui` and its files, `POST /ui/login`, `POST /ui/logout`. */
export const uiRoutes: FastifyPluginAsync<AdminRouteOptions & { folder?: string }> = async (app, opts) => {
  // Without the files (a package installed without ui/), the API works and /ui says why not.
  const folder = opts.folder ?? uiFolder()
  const assets = folder === undefined ? new Map<string, Asset>() : loadAssets(folder)
  const anonymous = { anonymous: true }
  const serve = async (req: FastifyRequest, reply: FastifyReply, file: string): Promise<FastifyReply> => {
    const a = assets.get(file)
    if (a === undefined) return await reply.code(404).send({ error: folder === undefined ? 'the dashboard files (ui/) are not installed' : `no dashboard file "${file}"`, problems: [] })
    return sendAsset(req, reply, a)
  }
  app.get('/ui', { config: anonymous, schema: HIDDEN }, async (req, reply) => await serve(req, reply, 'index.html'))
  app.get<{ Params: { file: string } }>('/ui/:file', { config: anonymous, schema: HIDDEN }, async (req, reply) => await serve(req, reply, req.params.file === '' ? 'index.html' : req.params.file))
  // Login and logout take the dashboard's header too: no other page can log a browser in or out.
  app.post<{ Body: { token: string } }>('/ui/login', { config: anonymous, schema: { ...HIDDEN, body: LoginBody, response: { 200: Ok, 401: Err, 403: Err } } }, async (req, reply) => {
    if (!sameOriginChange(req)) return await reply.code(403).send({ error: `send ${UI_HEADER}: 1 from the dashboard's own origin` })
    const id = app.adminSessions.login(req.body.token)
    if (id === undefined) return await reply.code(401).send({ error: 'invalid token' })
    void reply.header('set-cookie', sessionCookie(req, id, SESSION_TTL_MS / 1000)).header('cache-control', 'no-store')
    return { ok: true }
  })
  app.post('/ui/logout', { config: anonymous, schema: { ...HIDDEN, response: { 200: Ok, 403: Err } } }, async (req, reply) => {
    if (!sameOriginChange(req)) return await reply.code(403).send({ error: `send ${UI_HEADER}: 1 from the dashboard's own origin` })
    app.adminSessions.logout(sessionOf(req))
    void reply.header('set-cookie', sessionCookie(req, '', 0))
    return { ok: true }
  })
}
