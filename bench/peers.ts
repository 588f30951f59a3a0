// The bench's peers (@fastify/reply-from, @fastify/http-proxy, fast-gateway, autocannon) are
// dependencies of the bench package (bench/package.json), installed into bench/node_modules by
// `npm run bench`, not of the gateway. The compiled bench runs from dist/bench, where a bare
// import would search only the gateway's node_modules, so they are resolved from bench/.
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const benchRequire = createRequire(new URL('../../bench/package.json', import.meta.url)) // dist/bench → bench/

/** Import one of the bench package's dependencies. */
export async function importPeer (name: '@fastify/reply-from' | '@fastify/http-proxy' | 'fast-gateway' | 'autocannon'): Promise<any> {
  return await import(pathToFileURL(benchRequire.resolve(name)).href)
}
