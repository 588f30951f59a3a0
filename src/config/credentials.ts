import { dirname, join } from 'node:path'

/**
 * Istio `credentialName` without Kubernetes: a credential is a directory named after the secret
 * inside a credentials directory, holding the keys of the Kubernetes secret as files. Istio reads
 * three secret layouts (istio.io "Secure Gateways", Key formats), so meshgate looks for the same:
 *
 * - a TLS secret: `NAME/tls.crt`, `NAME/tls.key`, optional `NAME/ca.crt`;
 * - a generic secret: `NAME/cert`, `NAME/key`, optional `NAME/cacert`;
 * - the CA in a separate secret named `NAME-cacert` (key `cacert`, or `ca.crt`).
 *
 * Only paths are computed here; whether a file exists is asked through an injected function,
 * so the resolution stays pure and testable.
 */

/** Where credentials are looked up, and how existence is checked (injected by the plugin layer). */
export interface CredentialStore {
  /** The credentials directory. */
  dir: string
  /** Does a (readable) file exist at this path? */
  exists: (path: string) => boolean
}

/** What a credential must provide for its use. */
export interface CredentialNeeds {
  /** A certificate and key pair (Gateway servers; DestinationRule MUTUAL). */
  pair: boolean
  /** A CA bundle (Gateway MUTUAL / OPTIONAL_MUTUAL client verification). */
  ca: boolean
}

/** The files a credential resolved to. */
export interface ResolvedCredential {
  cert?: string
  key?: string
  ca?: string
}

/** Candidate paths per role, in lookup order; a cert and its key come from the same layout. */
export interface CredentialCandidates {
  pairs: Array<{ cert: string; key: string }>
  ca: string[]
}

/** Secret names are Kubernetes object names (DNS-1123 subdomains): never a path. */
const SECRET_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/

/** Istio also accepts `kubernetes://NAME` (a secret in the proxy's namespace). */
const K8S_PREFIX = 'kubernetes://'

/** The secret name inside a credentialName, or a string explaining why it cannot be one. */
export function secretName (credentialName: string): { name: string } | { error: string } {
  const name = credentialName.startsWith(K8S_PREFIX) ? credentialName.slice(K8S_PREFIX.length) : credentialName
  if (!SECRET_NAME.test(name) || name.includes('..') || name.length > 253) {
    return { error: `credentialName "${credentialName}" is not a Kubernetes secret name (lowercase letters, digits, '-' and '.')` }
  }
  return { name }
}

/** Every file meshgate looks for, for one secret name, in lookup order. */
export function credentialCandidates (dir: string, name: string): CredentialCandidates {
  const own = join(dir, name)
  const sep = join(dir, `${name}-cacert`)
  return {
    pairs: [
      { cert: join(own, 'tls.crt'), key: join(own, 'tls.key') },
      { cert: join(own, 'cert'), key: join(own, 'key') }
    ],
    ca: [join(own, 'ca.crt'), join(own, 'cacert'), join(sep, 'cacert'), join(sep, 'ca.crt')]
  }
}

/**
 * Resolve a credentialName to files. A string result is the problem: it names the files looked
 * for, so the user can see where to put them.
 */
export function resolveCredential (store: CredentialStore, credentialName: string, needs: CredentialNeeds): ResolvedCredential | string {
  const n = secretName(credentialName)
  if ('error' in n) return n.error
  const c = credentialCandidates(store.dir, n.name)
  const out: ResolvedCredential = {}
  const pair = c.pairs.find(p => store.exists(p.cert) && store.exists(p.key))
  if (pair !== undefined) { out.cert = pair.cert; out.key = pair.key }
  const ca = c.ca.find(p => store.exists(p))
  if (ca !== undefined) out.ca = ca
  const missing: string[] = []
  if (needs.pair && pair === undefined) missing.push(`a certificate and key (${c.pairs.map(p => `${p.cert} + ${p.key}`).join(', or ')})`)
  if (needs.ca && ca === undefined) missing.push(`a CA certificate (one of ${c.ca.join(', ')})`)
  if (missing.length > 0) return `credential "${credentialName}" not found in credentials directory ${store.dir}: missing ${missing.join(' and ')}`
  return out
}

/**
 * The default credentials directory: `credentials` beside the first configuration path (inside
 * it when it is a directory), else `./credentials`.
 */
export function defaultCredentialsDir (firstConfigPath: string | undefined, isDirectory: boolean): string {
  if (firstConfigPath === undefined) return 'credentials'
  return join(isDirectory ? firstConfigPath : dirname(firstConfigPath), 'credentials')
}
