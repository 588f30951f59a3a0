import type { ClientTLSSettings, DestinationRule, ResourceSet, TrafficPolicy } from '../config/model.js'
import { resourceId } from '../config/model.js'
import { type Problem, Codes, formatPath } from '../config/problem.js'
import { type CredentialStore, resolveCredential } from '../config/credentials.js'
import type { ClusterSpec } from './snapshot.js'

/**
 * The credential ISTIO_MUTUAL reads its workload certificate from: `istio-mutual` in the
 * credentials directory, in either secret layout (`tls.crt`, `tls.key`, `ca.crt`, or `cert`,
 * `key`, `cacert`). docs/decisions/0011-tcp-tls-routes.md says why.
 */
export const ISTIO_MUTUAL_CREDENTIAL = 'istio-mutual'

/** The warning of an ISTIO_MUTUAL destination that goes out in plaintext (an error under --strict). */
export const ISTIO_MUTUAL_PLAINTEXT = 'tls.mode ISTIO_MUTUAL uses certificates issued by Istio\'s CA, which meshgate does not have; meshgate connects to this destination in plaintext, as with DISABLE'

/**
 * DestinationRule `tls.mode: ISTIO_MUTUAL`. Istio means mTLS with the workload certificates its
 * CA issues; meshgate has no CA, so:
 * - when the credentials directory holds `istio-mutual/` (a certificate, its key and the CA that
 *   signs the destinations' certificates), those clusters run as `MUTUAL` with it;
 * - otherwise they connect in plaintext, and each ISTIO_MUTUAL setting gets a warning that says
 *   so, at its own path; `--strict` turns that warning into an error, refusing the configuration.
 * Without a credentials store (a bare compile) nothing is looked up: plaintext, with the warning.
 */
export function applyIstioMutual (set: ResourceSet, clusters: Map<string, ClusterSpec>, store: CredentialStore | undefined, problems: Problem[]): void {
  const spots: Array<{ dr: DestinationRule; path: Array<string | number> }> = []
  for (const dr of set.destinationRules) {
    const policy = (path: Array<string | number>, p: TrafficPolicy | undefined): void => {
      if (p?.tls?.mode === 'ISTIO_MUTUAL') spots.push({ dr, path: [...path, 'tls', 'mode'] })
      ;(p?.portLevelSettings ?? []).forEach((pl, k) => { if (pl.tls?.mode === 'ISTIO_MUTUAL') spots.push({ dr, path: [...path, 'portLevelSettings', k, 'tls', 'mode'] }) })
    }
    policy(['spec', 'trafficPolicy'], dr.spec.trafficPolicy)
    ;(dr.spec.subsets ?? []).forEach((s, j) => policy(['spec', 'subsets', j, 'trafficPolicy'], s.trafficPolicy))
  }
  if (spots.length === 0) return
  const cred = store === undefined ? undefined : resolveCredential(store, ISTIO_MUTUAL_CREDENTIAL, { pair: true, ca: true })
  if (cred === undefined || typeof cred === 'string') {
    for (const { dr, path } of spots) {
      const { line, column } = dr.locate(path)
      problems.push({ severity: 'Warning', code: Codes.NoEffect, message: ISTIO_MUTUAL_PLAINTEXT, file: dr.source.file, line, column, resource: resourceId(dr), path: formatPath(path) })
    }
    return
  }
  for (const [name, c] of clusters) {
    const tls = c.policy.tls
    if (tls?.mode !== 'ISTIO_MUTUAL') continue
    const mutual: ClientTLSSettings = {
      mode: 'MUTUAL',
      clientCertificate: cred.cert!,
      privateKey: cred.key!,
      caCertificates: cred.ca!,
      ...(tls.sni !== undefined ? { sni: tls.sni } : {}),
      ...(tls.insecureSkipVerify !== undefined ? { insecureSkipVerify: tls.insecureSkipVerify } : {})
    }
    clusters.set(name, { ...c, policy: { ...c.policy, tls: mutual } })
  }
}
