import { ErrorReply } from './schemas.js'
import { addResponses, isMutating, serverWide } from './shared.js'

/** Content types a changing call may carry: JSON, or YAML (a configuration body). */
const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml']
const BODY_TYPES = new Set(['application/json', ...YAML_TYPES])

/**
 * What a changing call may send, after the token is checked: JSON, YAML or no body at all
 * (415 otherwise). A browser form or a cross-site fetch without a preflight can only send form
 * or `text/plain` bodies, so no page can make a change on an operator's behalf (CSRF); text/plain
 * is not a YAML type for that reason. Also YAML parsing, and the answers a body can get (400 when
 * it does not parse, 413 over the limit, 415) in every changing route's schema.
 */
export const adminBodyTypes = serverWide('meshgate-admin-body-types', async app => {
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string' }, (_req, body, done) => done(null, body))
  app.addHook('onRoute', route => {
    if (isMutating(route.method)) addResponses(route, { 400: ErrorReply, 413: ErrorReply, 415: ErrorReply })
  })
  app.addHook('onRequest', async (req, reply) => {
    if (!isMutating(req.method)) return
    const ct = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
    const hasBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined
    if (ct !== '' ? !BODY_TYPES.has(ct) : hasBody) {
      return reply.code(415).send({ error: 'only application/json or application/yaml bodies are accepted (no form posts, no text/plain)' })
    }
  })
})
