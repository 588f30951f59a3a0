import { readFileSync, statSync } from 'node:fs'
import { createSecureContext, type SecureContext, type SecureVersion } from 'node:tls'
import type { ClientTLSSettings } from '../src/config/model.js'
import { hostMatches } from '../src/config/hosts.js'
import type { Snapshot, TlsServer } from '../src/compile/snapshot.js'
import { Codes, type Problem } from '../src/config/problem.js'
import { type CredentialStore, defaultCredentialsDir } from '../src/config/credentials.js'

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
 * With `current`, the contexts follow the running snapshot: after a reload the files are read
 * again at the next handshake (Istio rotates gateway certificates without a restart). If they
 * cannot be read then, the previous contexts stay in use (the reload itself checked the files).
 */
export function httpsServerOptions (servers: readonly TlsServer[], current?: () => readonly TlsServer[] | undefined): Record<string, unknown> {
  const build = (list: readonly TlsServer[]): Array<{ hosts: readonly string[]; ctx: SecureContext }> =>
    list.map(s => ({ hosts: s.hosts, ctx: createSecureContext(secureOptions(s)) }))
  let source = servers
  let contexts = build(servers)
  const first = servers[0]
  const mode = first.mode
  return {
    ...secureOptions(first),
    requestCert: mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL',
    rejectUnauthorized: mode === 'MUTUAL',
    SNICallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => {
      const now = current?.()
      if (now !== undefined && now !== source && now.length > 0) {
        source = now
        try { contexts = build(now) } catch { /* keep serving the previous certificates */ }
      }
      const name = servername.toLowerCase()
      const hit = contexts.find(c => c.hosts.some(h => hostMatches(h, name)))
      cb(null, (hit ?? contexts[0]).ctx)
    }
  }
}

function secureOptions (s: TlsServer): Record<string, unknown> {
  return {
    cert: readPem(s.serverCertificate, 'serverCertificate'),
    key: readPem(s.privateKey, 'privateKey'),
    ...(s.caCertificates !== undefined ? { ca: readPem(s.caCertificates, 'caCertificates') } : {}),
    minVersion: VERSIONS[s.minProtocolVersion ?? ''] ?? 'TLSv1.2',
    ...(VERSIONS[s.maxProtocolVersion ?? ''] !== undefined ? { maxVersion: VERSIONS[s.maxProtocolVersion!] } : {}),
    ...(s.cipherSuites !== undefined && s.cipherSuites.length > 0 ? { ciphers: s.cipherSuites.join(':') } : {})
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

/**
 * The credentials directory `credentialName` secrets are read from: the given one, else
 * `credentials` inside the first config directory (beside the first config file), else
 * `./credentials` for inline configuration. Existence is checked on disk at each load, so a
 * reload sees rotated or added secrets.
 */
export function credentialStore (config: readonly string[] | { inputs: unknown[] }, credentialsDir?: string): CredentialStore {
  let dir = credentialsDir
  if (dir === undefined) {
    const first = Array.isArray(config) ? (config as readonly string[])[0] : undefined
    dir = defaultCredentialsDir(first, first !== undefined && isDirectory(first))
  }
  return {
    dir,
    exists: path => {
      try { return statSync(path).isFile() } catch { return false }
    }
  }
}

function isDirectory (path: string): boolean {
  try { return statSync(path).isDirectory() } catch { return false }
}

/**
 * A reload may change certificates (they are re-read at the next handshake) but not whether a
 * port asks for client certificates: Node fixes that per listener when it starts. Changing a
 * port between SIMPLE and MUTUAL / OPTIONAL_MUTUAL is therefore refused until restart, rather
 * than applied half way.
 */
export function sameTlsModes (next: Snapshot, current: Snapshot | undefined): Problem[] {
  if (current === undefined) return []
  const out: Problem[] = []
  for (const l of next.gateways) {
    const before = current.gateways.find(g => g.port === l.port)?.tls?.[0]?.mode
    const after = l.tls?.[0]?.mode
    if (before !== undefined && after !== undefined && before !== after) {
      out.push({ severity: 'Error', code: Codes.FixedUntilRestart, message: `Gateway port ${l.port} changes tls.mode ${before} → ${after}; a listener's client-certificate setting is fixed until restart`, file: '-', line: 1, column: 1 })
    }
  }
  return out
}
