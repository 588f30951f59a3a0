// details stand-in (upstream: Ruby WEBrick, samples/bookinfo/src/details/details.rb).
//
// GET /health            -> 200 {"status":"Details is healthy"}
// GET /details/<id>      -> 200 book JSON (id = last path segment, Ruby Integer())
// GET /details/<non-int> -> 400 {"error":"please provide numeric product id"}
// WEBrick mounts are prefix mounts (/details, /details/..., /health, /health/...).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { DetailsOptions } from './options.js'
import { escapeHtml, requestPath, safeDecode } from './util.js'

const HEALTH_BODY = '{"status":"Details is healthy"}'
const BAD_ID_BODY = '{"error":"please provide numeric product id"}'

/** Ruby's Integer(String): sign, 0x/0b/0o/0d prefixes, leading-0 octal, underscores, surrounding whitespace. */
export function rubyInteger (s: string): bigint | undefined {
  const m = /^[\t\n\v\f\r ]*([+-]?)(?:0[xX]([0-9a-fA-F]+(?:_[0-9a-fA-F]+)*)|0[bB]([01]+(?:_[01]+)*)|0[oO]([0-7]+(?:_[0-7]+)*)|0[dD]([0-9]+(?:_[0-9]+)*)|0_?([0-7]+(?:_[0-7]+)*)|([1-9][0-9]*(?:_[0-9]+)*|0))[\t\n\v\f\r ]*$/.exec(s)
  if (m === null) return undefined
  const [, sign, hex, bin, oct, dec, oct0, plain] = m
  let v: bigint
  if (hex !== undefined) v = BigInt('0x' + hex.replace(/_/g, ''))
  else if (bin !== undefined) v = BigInt('0b' + bin.replace(/_/g, ''))
  else if (oct !== undefined) v = BigInt('0o' + oct.replace(/_/g, ''))
  else if (oct0 !== undefined) v = BigInt('0o' + oct0.replace(/_/g, ''))
  else v = BigInt((dec ?? plain).replace(/_/g, ''))
  return sign === '-' ? -v : v
}

export function detailsBody (id: bigint | number): string {
  return `{"id":${id.toString()},"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`
}

function mounted (path: string, mount: string): boolean {
  return path === mount || path.startsWith(mount + '/')
}

function sendJson (req: IncomingMessage, res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
  res.end(req.method === 'HEAD' ? undefined : body)
}

function webrickError (req: IncomingMessage, res: ServerResponse, status: number, title: string, text: string): void {
  const body = `<HTML>\n  <HEAD><TITLE>${title}</TITLE></HEAD>\n  <BODY>\n    <H1>${title}</H1>\n    ${text}\n    <HR>\n  </BODY>\n</HTML>\n`
  res.writeHead(status, { 'Content-Type': 'text/html; charset=ISO-8859-1', 'Content-Length': Buffer.byteLength(body) })
  res.end(req.method === 'HEAD' ? undefined : body)
}

export function createDetails (_opts: DetailsOptions = {}): Server {
  return createServer((req, res) => {
    const path = safeDecode(requestPath(req.url))
    const method = req.method ?? 'GET'
    // drain any request body; WEBrick reads it before answering
    req.resume()
    if (!['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'].includes(method)) {
      webrickError(req, res, 405, 'Method Not Allowed', `unsupported method \`${escapeHtml(method)}'.`)
      return
    }
    if (mounted(path, '/health')) {
      sendJson(req, res, 200, HEALTH_BODY)
      return
    }
    if (mounted(path, '/details')) {
      // Ruby: req.path.split('/') drops trailing empty fields; id = last field
      const parts = path.split('/')
      while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop()
      const id = rubyInteger(parts[parts.length - 1] ?? '')
      if (id === undefined) sendJson(req, res, 400, BAD_ID_BODY)
      else sendJson(req, res, 200, detailsBody(id))
      return
    }
    webrickError(req, res, 404, 'Not Found', `\`${escapeHtml(path)}' not found.`)
  })
}
