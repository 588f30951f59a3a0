/** Marks a value removed from an admin dump. */
export const REDACTED = '[redacted]'

/**
 * Names whose values an admin dump never shows: TLS private keys (paths and inline PEM),
 * anything named like a secret, token, password or API key (labels, annotations, header names
 * in matches and header rewrites), Authorization and Cookie header values, and kubectl's
 * last-applied-configuration annotation (a full copy of the resource). `credentialName` only
 * names a secret directory and is shown.
 */
export const SECRET_NAME = /private[-_]?key|secret|token|passw(or)?d|api[-_]?key|^credentials?$|^authorization$|^proxy-authorization$|^cookie$|^set-cookie$|last-applied-configuration/i

/** A deep copy with the value of every key matching SECRET_NAME replaced by REDACTED. */
export function redact (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(v => redact(v))
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'function') continue
    out[k] = SECRET_NAME.test(k) && v !== undefined && v !== null ? REDACTED : redact(v)
  }
  return out
}

/** A resource as a dump shows it: redacted, without its locator, with its file and line. */
export function dumpResource (r: unknown): Record<string, unknown> {
  const { source, locate: _locate, ...rest } = r as Record<string, unknown> & { source: { file: string; line: number } }
  return { ...(redact(rest) as object), source: { file: source.file, line: source.line } }
}
