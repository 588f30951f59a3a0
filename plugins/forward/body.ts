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

/** A streamed body that keeps a copy of its first bytes, for a retry once it has ended. */
export type CountedBody = Transform & {
  /** The whole body, when it ended within the kept size; undefined otherwise. */
  replay?: () => Buffer | undefined
}

/**
 * Pass a body of unknown length through while counting it for the access log. With a limit,
 * the stream fails as soon as more than `limit` bytes went through (`onOverflow` is told first).
 * With `keep` > 0, a copy of up to `keep` bytes is kept while the body streams (as Envoy buffers
 * a request for retries): an HTTP/2 request without Content-Length (a gRPC call) that ended
 * within it can be sent again.
 */
export function countBody (src: Readable, ctx: AccessLogContext, limit = 0, onOverflow?: () => void, keep = 0): CountedBody {
  let n = 0
  let overflowed = false
  let kept: Buffer[] | undefined = keep > 0 ? [] : undefined
  let ended = false
  const t: CountedBody = new Transform({
    flush (cb) { ended = true; cb() },
    transform (chunk: Buffer, _enc, cb) {
      n += chunk.length
      ctx.bytesReceived += chunk.length
      if (kept !== undefined) { if (n <= keep) kept.push(chunk); else kept = undefined }
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
  if (keep > 0) t.replay = () => ended && kept !== undefined ? Buffer.concat(kept) : undefined
  return src.pipe(t)
}
