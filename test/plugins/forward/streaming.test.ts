import { createHash } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { Readable } from 'node:stream'
import t from 'tap'
import { gatewayChildFor } from '../../helpers/gateway.js'
import { startUpstream } from '../../helpers/upstream.js'
import { meshRoute, serviceEntry } from '../../helpers/yaml.js'

// 100 MB up and 100 MB down through the proxy: bodies stream, so memory stays bounded.
const SIZE = 100 * 1024 * 1024
const CHUNK = Buffer.alloc(64 * 1024, 'abcdefghijklmnopqrstuvwxyz0123456789')

function source (size: number): Readable {
  let sent = 0
  return new Readable({
    read () {
      if (sent >= size) { this.push(null); return }
      const n = Math.min(CHUNK.length, size - sent)
      sent += n
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))
    }
  })
}

function expectedHash (size: number): string {
  const h = createHash('sha256')
  let left = size
  while (left > 0) { const n = Math.min(CHUNK.length, left); h.update(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n)); left -= n }
  return h.digest('hex')
}

t.test('100 MB upload and download stream through in bounded memory', async t => {
  const up = await startUpstream('big', (req, res) => {
    if (req.method === 'POST') {
      const h = createHash('sha256')
      let n = 0
      // Slow reader: pause for 1 s, so a proxy without backpressure would buffer the upload.
      req.pause()
      setTimeout(() => req.resume(), 1000)
      req.on('data', c => { h.update(c); n += c.length })
      req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ bytes: n, sha: h.digest('hex') })) })
    } else {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      source(SIZE).pipe(res)
    }
  })
  // The proxy runs in its own process, so its memory is measured alone.
  const yaml = `
${meshRoute('big')}
---
${serviceEntry('big', { v1: up.port })}`
  t.teardown(() => up.close())
  const child = await gatewayChildFor(t, yaml)
  const mesh = child.mesh
  const rssBefore = child.rss

  // Upload: chunked (no content-length), so the proxy cannot know the size in advance.
  const upload = await new Promise<{ bytes: number; sha: string }>((resolve, reject) => {
    const req = httpRequest({ host: mesh.hostname, port: Number(mesh.port), method: 'POST', path: '/upload', headers: { host: 'big:9080', 'x-test-stream': '1' }, agent: false }, res => {
      const chunks: Buffer[] = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())))
    })
    req.on('error', reject)
    source(SIZE).pipe(req)
  })
  const { peak: uploadPeak, rss: afterUpload } = await child.peak()
  t.equal(upload.bytes, SIZE, 'upstream received every byte')
  t.equal(upload.sha, expectedHash(SIZE), 'upload body intact')

  const download = await new Promise<{ bytes: number; sha: string }>((resolve, reject) => {
    const req = httpRequest({ host: mesh.hostname, port: Number(mesh.port), path: '/download', headers: { host: 'big:9080', 'x-test-stream': '1' }, agent: false }, res => {
      const h = createHash('sha256')
      let n = 0
      // Slow reader: a proxy without backpressure would buffer the download meanwhile.
      res.pause()
      setTimeout(() => res.resume(), 1000)
      res.on('data', c => { h.update(c); n += c.length })
      res.on('end', () => resolve({ bytes: n, sha: h.digest('hex') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
  const downloadPeak = (await child.peak()).peak
  t.equal(download.bytes, SIZE, 'client received every byte')
  t.equal(download.sha, expectedHash(SIZE), 'download body intact')
  const mb = (n: number, base = rssBefore): string => ((n - base) / 1024 / 1024).toFixed(1)
  // Buffering either body would cost at least its 100 MB; streaming stays far below.
  t.ok(uploadPeak - rssBefore < 50 * 1024 * 1024, `upload behind a slow upstream: the proxy grew ${mb(uploadPeak)} MB`)
  t.ok(downloadPeak - afterUpload < 50 * 1024 * 1024, `download to a slow client: the proxy grew ${mb(downloadPeak, afterUpload)} MB`)
})
