import { createHash } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { Readable } from 'node:stream'
import t from 'tap'
import { serviceEntry, startInlineGateway, startUpstream } from '../helpers/upstream.js'

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
      req.on('data', c => { h.update(c); n += c.length })
      req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ bytes: n, sha: h.digest('hex') })) })
    } else {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      source(SIZE).pipe(res)
    }
  })
  const gw = await startInlineGateway(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: big }
spec:
  hosts: [big]
  http:
  - route:
    - destination: { host: big }
---
${serviceEntry('big', { v1: up.port })}`, { gatewayPorts: [] })
  t.teardown(async () => { await gw.close(); await up.close() })
  const mesh = new URL(gw.mesh)
  global.gc?.()
  const rssBefore = process.memoryUsage().rss
  let peak = rssBefore
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 20)

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
  t.equal(upload.bytes, SIZE, 'upstream received every byte')
  t.equal(upload.sha, expectedHash(SIZE), 'upload body intact')

  const download = await new Promise<{ bytes: number; sha: string }>((resolve, reject) => {
    const req = httpRequest({ host: mesh.hostname, port: Number(mesh.port), path: '/download', headers: { host: 'big:9080', 'x-test-stream': '1' }, agent: false }, res => {
      const h = createHash('sha256')
      let n = 0
      res.on('data', c => { h.update(c); n += c.length })
      res.on('end', () => resolve({ bytes: n, sha: h.digest('hex') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
  clearInterval(sampler)
  t.equal(download.bytes, SIZE, 'client received every byte')
  t.equal(download.sha, expectedHash(SIZE), 'download body intact')
  const grownMb = (peak - rssBefore) / 1024 / 1024
  t.ok(grownMb < 80, `resident memory grew ${grownMb.toFixed(1)} MB while moving 200 MB (bounded, not buffered)`)
  const logs = gw.logs.filter(l => l.path === '/upload' || l.path === '/download')
  t.equal(logs.find(l => l.path === '/upload')?.bytes_received, String(SIZE), 'chunked upload counted in bytes_received')
  t.equal(logs.find(l => l.path === '/download')?.bytes_sent, String(SIZE), 'chunked download counted in bytes_sent')
})
