// A bare HTTP/2 upstream on 127.0.0.1, port 0 (node:http2: h2c unless a TLS server is given),
// whose streams a test answers itself: it records the request headers of every stream and the
// sessions that carried one (the gateway's TCP health probes open bare connections too).
import { createServer, type Http2SecureServer, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'

export interface H2Upstream {
  port: number
  server: Http2Server | Http2SecureServer
  /** The request headers of every stream, in arrival order. */
  seen: IncomingHttpHeaders[]
  /** The sessions that carried at least one stream. */
  sessions: Set<Http2Session>
  /** Destroys the open sessions and closes the server. */
  close: () => Promise<void>
}

/**
 * Listen with `server` (a plain h2c server unless given) and hand each stream to `onStream` with
 * its headers and its 0-based number. A stream's errors are ignored: the streams these tests
 * reset or refuse raise them by design.
 */
export async function startH2Upstream (
  onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, n: number) => void,
  server: Http2Server | Http2SecureServer = createServer()
): Promise<H2Upstream> {
  const seen: IncomingHttpHeaders[] = []
  const sessions = new Set<Http2Session>()
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const n = seen.length
    seen.push(headers)
    sessions.add(stream.session!)
    stream.on('error', () => {})
    onStream(stream, headers, n)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    server,
    seen,
    sessions,
    close: () => new Promise(resolve => { for (const s of sessions) s.destroy(); server.close(() => resolve()) })
  }
}
