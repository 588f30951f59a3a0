/**
 * Host names the way Istio treats them (istio/istio pkg/config/host/name.go):
 * lowercased, short names expanded against the resource's namespace, wildcards prefix-only.
 */

/** The cluster domain suffix Istio appends to short names. */
export const DOMAIN_SUFFIX = 'svc.cluster.local'

/**
 * Expand a short name against a namespace: `reviews` in `default` → `reviews.default.svc.cluster.local`.
 * Names containing a dot, wildcards (`*`, `*.foo.com`) and IPs are left as written (lowercased),
 * as Istio's `ResolveShortnameToFQDN` does.
 */
export function toFqdn (host: string, namespace: string): string {
  const h = host.toLowerCase()
  if (h === '*' || h.startsWith('*') || h.includes('.') || h.includes(':')) return h
  return `${h}.${namespace}.${DOMAIN_SUFFIX}`
}

/**
 * The spellings a caller inside the mesh may put in Host for a service FQDN, as Kubernetes DNS
 * search paths allow: `reviews.default.svc.cluster.local` → also `reviews.default.svc`,
 * `reviews.default` and, for the mesh's own namespace, `reviews`.
 */
export function meshAliases (fqdn: string, meshNamespace: string): string[] {
  const out = [fqdn]
  const suffix = `.${DOMAIN_SUFFIX}`
  if (!fqdn.endsWith(suffix)) return out
  const nameNs = fqdn.slice(0, -suffix.length) // reviews.default
  const dot = nameNs.lastIndexOf('.')
  if (dot <= 0) return out
  out.push(`${nameNs}.svc`, nameNs)
  if (nameNs.slice(dot + 1) === meshNamespace) out.push(nameNs.slice(0, dot))
  return out
}

/** Does `pattern` (possibly `*` or `*.suffix`) match the concrete or wildcard `host`? */
export function hostMatches (pattern: string, host: string): boolean {
  if (pattern === '*') return true
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1) // `.foo.com`
    if (host.startsWith('*.')) return host.slice(1).endsWith(suffix)
    return host.length > suffix.length && host.endsWith(suffix)
  }
  return pattern === host
}

/**
 * Intersection of a VirtualService host and a Gateway server host, as Istio computes the
 * virtual host's domain: the more specific of the two when one covers the other, else none.
 */
export function intersectHosts (vsHost: string, serverHost: string): string | undefined {
  if (hostMatches(serverHost, vsHost)) return vsHost
  if (hostMatches(vsHost, serverHost)) return serverHost
  return undefined
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/
const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/

export function isIPv4 (s: string): boolean {
  return IPV4.test(s)
}

export function isIPv6 (s: string): boolean {
  // Good enough for config validation: hex groups and colons, at least two colons, optional zone-free.
  return /^[0-9a-fA-F:]+$/.test(s) && s.split(':').length >= 3 && s.length <= 39
}

export function isIP (s: string): boolean {
  return isIPv4(s) || isIPv6(s)
}

/**
 * Why a host is not well formed, or undefined when it is. DNS-1123 labels, a wildcard allowed
 * only as the whole leftmost label, total length ≤ 255 (Istio `ValidateWildcardDomain`).
 */
export function hostProblem (host: string, opts: { allowWildcard?: boolean; allowIP?: boolean } = {}): string | undefined {
  const allowWildcard = opts.allowWildcard ?? true
  if (host === '') return 'host must not be empty'
  if (host.length > 255) return `host "${host}" is longer than 255 characters`
  if (host === '*') return allowWildcard ? undefined : `wildcard host "*" is not allowed here`
  if (opts.allowIP === true && isIP(host)) return undefined
  let rest = host
  if (host.startsWith('*.')) {
    if (!allowWildcard) return `wildcard host "${host}" is not allowed here`
    rest = host.slice(2)
  } else if (host.includes('*')) {
    return `host "${host}": a wildcard is only allowed as the whole leftmost label ("*.example.com")`
  }
  if (rest.endsWith('.')) rest = rest.slice(0, -1)
  for (const label of rest.split('.')) {
    if (!LABEL.test(label.toLowerCase())) {
      return `host "${host}" is not a valid DNS name (label "${label}": lowercase letters, digits and '-', 1-63 characters, not starting or ending with '-')`
    }
  }
  return undefined
}
