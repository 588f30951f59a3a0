import type { IncomingMessage } from 'node:http'
import { Transform, type Readable } from 'node:stream'
import type { AccessLogContext } from '../access-log.js'

/**
 * The request body as a try sends it. Bodyless requests replay freely; a small body with a
 * Content-Length is buffered (bounded) so that a retry can replay it; anything else streams
 * once and is never retried.
 */

/** Largest request body buffered so that a retry can replay it. Bigger bodies stream, and are not retried. */
export const RETRY_BUFFER_BYTES = 64 * 1024

/** Read a body of known, bounded size; undefined if the client aborted. */
export function readBody (req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise(resolve => {
    const chunks: Buffer[] = []
    let n = 0
    req.on('data', (c: Buffer) => { n += c.length; if (n <= limit) chunks.push(c) })
    req.once('end', () => resolve(Buffer.concat(chunks)))
    req.once('error', () => resolve(undefined))
    req.once('aborted', () => resolve(undefined))
  })
}

/**
 * Pass a body of unknown length through while counting it for the access log. With a limit,
 * the stream fails as soon as more than `limit` bytes went through (`onOverflow` is told first).
 */
export function countBody (src: Readable, ctx: AccessLogContext, limit = 0, onOverflow?: () => void): Transform {
  let n = 0
  let overflowed = false
  const t = new Transform({
    transform (chunk: Buffer, _enc, cb) {
      n += chunk.length
      ctx.bytesReceived += chunk.length
      if (limit > 0 && n > limit) {
        // The client's request stays open so it can still be answered 413 (then closed).
        overflowed = true
        src.unpipe(t)
        onOverflow?.()
        cb(Object.assign(new Error('request body over the limit'), { code: 'MG_BODY_TOO_LARGE' }))
        return
      }
      cb(null, chunk)
    }
  })
  src.on('error', err => t.destroy(err))
  t.on('close', () => { if (!src.destroyed && !overflowed) src.destroy() })
  return src.pipe(t)
}
