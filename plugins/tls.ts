import { readFileSync } from 'node:fs'
import { createSecureContext, type SecureContext, type SecureVersion } from 'node:tls'
import type { ClientTLSSettings } from '../src/config/model.js'
import { hostMatches } from '../src/config/hosts.js'
import type { TlsServer } from '../src/compile/snapshot.js'

const VERSIONS: Record<string, SecureVersion> = { TLSV1_0: 'TLSv1', TLSV1_1: 'TLSv1.1', TLSV1_2: 'TLSv1.2', TLSV1_3: 'TLSv1.3' }

/** Read a PEM file named in the configuration, with the path in the error. */
export function readPem (path: string, what: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new Error(`cannot read ${what} "${path}": ${(err as Error).message}`)
  }
}

/**
 * Node HTTPS server options for a Gateway port's TLS servers: one secure context per server,
 * chosen by SNI against the server's hosts (the first server is the default), Istio's default
 * minimum of TLS 1.2, client certificates requested for MUTUAL (required) and OPTIONAL_MUTUAL.
 */
export function httpsServerOptions (servers: readonly TlsServer[]): Record<string, unknown> {
  const contexts: Array<{ hosts: readonly string[]; ctx: SecureContext }> = []
  const optionsOf = (s: TlsServer): Record<string, unknown> => ({
    cert: readPem(s.serverCertificate, 'serverCertificate'),
    key: readPem(s.privateKey, 'privateKey'),
    ...(s.caCertificates !== undefined ? { ca: readPem(s.caCertificates, 'caCertificates') } : {}),
    minVersion: VERSIONS[s.minProtocolVersion ?? ''] ?? 'TLSv1.2',
    ...(VERSIONS[s.maxProtocolVersion ?? ''] !== undefined ? { maxVersion: VERSIONS[s.maxProtocolVersion!] } : {}),
    ...(s.cipherSuites !== undefined && s.cipherSuites.length > 0 ? { ciphers: s.cipherSuites.join(':') } : {})
  })
  for (const s of servers) contexts.push({ hosts: s.hosts, ctx: createSecureContext(optionsOf(s)) })
  const first = servers[0]
  const mode = first.mode
  return {
    ...optionsOf(first),
    requestCert: mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL',
    rejectUnauthorized: mode === 'MUTUAL',
    SNICallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => {
      const name = servername.toLowerCase()
      const hit = contexts.find(c => c.hosts.some(h => hostMatches(h, name)))
      cb(null, (hit ?? contexts[0]).ctx)
    }
  }
}

/** undici connect options for a DestinationRule's upstream TLS (SIMPLE or MUTUAL); undefined for plain. */
export function upstreamTlsOptions (tls: ClientTLSSettings | undefined): Record<string, unknown> | undefined {
  if (tls === undefined || (tls.mode !== 'SIMPLE' && tls.mode !== 'MUTUAL')) return undefined
  return {
    ...(tls.caCertificates !== undefined ? { ca: readPem(tls.caCertificates, 'caCertificates') } : {}),
    ...(tls.mode === 'MUTUAL' && tls.clientCertificate !== undefined ? { cert: readPem(tls.clientCertificate, 'clientCertificate') } : {}),
    ...(tls.mode === 'MUTUAL' && tls.privateKey !== undefined ? { key: readPem(tls.privateKey, 'privateKey') } : {}),
    ...(tls.sni !== undefined ? { servername: tls.sni } : {}),
    // Verification is on unless insecureSkipVerify is set (Istio's default).
    rejectUnauthorized: tls.insecureSkipVerify !== true
  }
}
