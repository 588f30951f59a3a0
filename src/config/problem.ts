/**
 * Config problems: collected, never thrown, and all reported at once.
 * Printed in the shape `istioctl analyze` uses:
 *   Error [IST0106] (VirtualService default/reviews gateway-config/reviews.yaml:12:9) spec.http[0].route[0].weight: must be >= 0
 */
export type Severity = 'Error' | 'Warning' | 'Info'

export interface Problem {
  severity: Severity
  /** Istio analyzer code where one exists (IST0101 referenced resource not found, IST0106 schema), else MG####. */
  code: string
  message: string
  file: string
  line: number
  column: number
  /** `Kind namespace/name`, when the problem belongs to a resource. */
  resource?: string
  /** Field path inside the resource, e.g. `spec.http[0].route[1].destination.subset`. */
  path?: string
}

/** Codes used by meshgate. Istio's analyzer codes where the meaning is the same. */
export const Codes = {
  /** Referenced resource not found (host, subset, gateway). Istio: IST0101. */
  ReferencedResourceNotFound: 'IST0101',
  /** Schema validation error. Istio: IST0106. */
  SchemaValidationError: 'IST0106',
  /** YAML syntax error. */
  YamlSyntax: 'MG0001',
  /** A kind of a non-Istio API group, or an Istio kind that changes no access decision: skipped (a warning). */
  UnknownKind: 'MG0002',
  /** A field Istio accepts but meshgate does not implement yet. */
  NotSupported: 'MG0003',
  /** A field accepted with no effect outside Kubernetes. */
  NoEffect: 'MG0004',
  /** Two resources with the same kind, namespace and name. */
  Duplicate: 'MG0005',
  /** Problem reading a file. */
  Io: 'MG0006',
  /** A change to something fixed until restart: the set of Gateway ports, a port's TLS client-certificate mode. */
  FixedUntilRestart: 'MG0007',
  /** A rollback with no earlier generation to return to. */
  NoRollback: 'MG0008',
  /** A route that can never match: an earlier route in the same VirtualService matches every request. */
  Shadowed: 'MG0009',
  /** The configuration files kept changing: the change was not applied. */
  NotSettled: 'MG0010',
  /** A worker process could not apply, or did not acknowledge, a change (`--workers`). */
  WorkerFailed: 'MG0011',
  /**
   * An Istio resource meshgate would have to drop: an unknown kind of an Istio API group (a
   * misspelt kind), `CUSTOM` authorization, a PeerAuthentication that needs mTLS. An error, so
   * that nothing Istio would deny is let through; `--allow-unsupported-kinds` makes it a warning.
   */
  Unenforced: 'MG0012'
} as const

/** Every code of the table once (codes are never reused for another meaning). */
export type ProblemCode = (typeof Codes)[keyof typeof Codes]

/** Field path array → `spec.http[0].route[1].destination.subset`. */
export function formatPath (path: ReadonlyArray<string | number>): string {
  let out = ''
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`
    else out += out === '' ? p : `.${p}`
  }
  return out
}

/** One line per problem, istioctl-analyze style. */
export function formatProblem (p: Problem): string {
  const where = `${p.file}:${p.line}:${p.column}`
  const scope = p.resource !== undefined ? `${p.resource} ${where}` : where
  const field = p.path !== undefined && p.path !== '' ? `${p.path}: ` : ''
  return `${p.severity} [${p.code}] (${scope}) ${field}${p.message}`
}

/** Problems sorted by file, line, column; errors and warnings kept in that order within a line. */
export function sortProblems (problems: Problem[]): Problem[] {
  return [...problems].sort((a, b) =>
    a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.column - b.column)
}

export function hasErrors (problems: readonly Problem[]): boolean {
  return problems.some(p => p.severity === 'Error')
}
