import RE2 from 're2'
import type { AuthorizationPolicy, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource } from '../config/model.js'
import { type Cidr, inCidr, parseCidr, parseIp } from './cidr.js'
import type { AuthAttributes } from './jwt-rules.js'

/**
 * AuthorizationPolicy, compiled into matchers and evaluated as Istio documents it: CUSTOM is
 * refused at load; DENY policies first (any match denies), then ALLOW policies (when a workload
 * has any, a request must match one); AUDIT and dry-run policies are evaluated and reported but
 * change nothing. Pure: the request's attributes come in, a verdict goes out.
 */

/** The calling workload as far as it can be known (docs/security.md#identity-without-kubernetes-service-accounts). */
export interface PeerIdentity {
  /** `cluster.local/ns/<namespace>/sa/<serviceAccount>`. */
  principal?: string
  namespace?: string
  serviceAccount?: string
}

/** The attributes a policy reads, as Envoy's RBAC filter sees them. */
export interface AuthzRequest {
  method: string
  /** `:authority` as received, lowercased. */
  authority: string
  /** Path without the query string, after the listener's normalization. */
  path: string
  /** The destination port: the Gateway server port, or the service port the caller addressed. */
  port: number
  headers: Readonly<Record<string, string | string[] | undefined>>
  /** The direct peer (`source.ip`, `ipBlocks`). */
  sourceIp: string
  /** The original client by X-Forwarded-For and the trusted proxy count (`remote.ip`, `remoteIpBlocks`). */
  remoteIp: string
  peer: PeerIdentity
  /** The verified JWT, when the request carried one. */
  auth?: AuthAttributes
  destinationIp?: string
  sni?: string
}

type Pred = (r: AuthzRequest) => boolean

export interface CompiledRule {
  /** Envoy's policy id: `ns[<namespace>]-policy[<name>]-rule[<index>]`. */
  id: string
  match: Pred
}

/** The policies that apply to one workload, by action. */
export interface Authz {
  deny: readonly CompiledRule[]
  /** Undefined when no ALLOW policy applies (everything not denied is allowed). */
  allow?: readonly CompiledRule[]
  audit: readonly CompiledRule[]
  /** `istio.io/dry-run` policies: evaluated and reported, never enforced. */
  shadow: ReadonlyArray<CompiledRule & { action: 'ALLOW' | 'DENY' }>
}

export type AuthzVerdict =
  | { allowed: true; audit?: string; shadowDenied?: string }
  | { allowed: false; policy: string; shadowDenied?: string }

/** `rbac_access_denied_matched_policy[...]`: Envoy's response code details for a denial. */
export function rbacDetails (policy: string): string {
  return `rbac_access_denied_matched_policy[${policy}]`
}

export function evaluateAuthz (a: Authz, r: AuthzRequest): AuthzVerdict {
  const shadowDenied = a.shadow.length > 0 ? shadowVerdict(a.shadow, r) : undefined
  for (const rule of a.deny) if (rule.match(r)) return withShadow({ allowed: false, policy: rule.id }, shadowDenied)
  let audit: string | undefined
  for (const rule of a.audit) if (rule.match(r)) { audit = rule.id; break }
  if (a.allow !== undefined) {
    let ok = false
    for (const rule of a.allow) if (rule.match(r)) { ok = true; break }
    if (!ok) return withShadow({ allowed: false, policy: 'none' }, shadowDenied)
  }
  const v: AuthzVerdict = { allowed: true }
  if (audit !== undefined) v.audit = audit
  return withShadow(v, shadowDenied)
}

function withShadow<V extends AuthzVerdict> (v: V, shadowDenied: string | undefined): V {
  if (shadowDenied !== undefined) v.shadowDenied = shadowDenied
  return v
}

/** What the dry-run policies alone would decide: the policy id they would deny by, if any. */
function shadowVerdict (rules: Authz['shadow'], r: AuthzRequest): string | undefined {
  for (const rule of rules) if (rule.action === 'DENY' && rule.match(r)) return rule.id
  const allow = rules.filter(x => x.action === 'ALLOW')
  if (allow.length > 0 && !allow.some(x => x.match(r))) return 'none'
  return undefined
}

/** Policies (already selected for a workload) into its `Authz`; CUSTOM policies are left out (refused at load). */
export function compileAuthz (policies: readonly AuthorizationPolicy[]): Authz {
  const deny: CompiledRule[] = []
  const audit: CompiledRule[] = []
  const shadow: Array<CompiledRule & { action: 'ALLOW' | 'DENY' }> = []
  let allow: CompiledRule[] | undefined
  for (const p of policies) {
    const action = p.spec.action ?? 'ALLOW'
    if (action === 'CUSTOM') continue
    const rules = (p.spec.rules ?? []).map((rule, i) => ({ id: `ns[${p.metadata.namespace}]-policy[${p.metadata.name}]-rule[${i}]`, match: compileRule(rule, p.metadata.namespace) }))
    if (p.metadata.annotations?.['istio.io/dry-run'] === 'true') {
      if (action !== 'AUDIT') for (const r of rules) shadow.push({ ...r, action })
      // A dry-run ALLOW policy without rules would deny everything: keep it visible as such.
      if (action === 'ALLOW' && rules.length === 0) shadow.push({ id: `ns[${p.metadata.namespace}]-policy[${p.metadata.name}]-rule[none]`, match: () => false, action })
      continue
    }
    if (action === 'DENY') deny.push(...rules)
    else if (action === 'AUDIT') audit.push(...rules)
    else (allow ??= []).push(...rules)
  }
  return { deny, ...(allow !== undefined ? { allow } : {}), audit, shadow }
}

function compileRule (rule: AuthzRule, ns: string): Pred {
  const parts: Pred[] = []
  if (rule.from !== undefined && rule.from.length > 0) parts.push(any(rule.from.map(f => compileSource(f.source ?? {}, ns))))
  if (rule.to !== undefined && rule.to.length > 0) parts.push(any(rule.to.map(t => compileOperation(t.operation ?? {}))))
  for (const c of rule.when ?? []) parts.push(compileCondition(c, ns))
  return all(parts)
}

const any = (ps: Pred[]): Pred => ps.length === 1 ? ps[0] : r => ps.some(p => p(r))
const all = (ps: Pred[]): Pred => ps.length === 0 ? () => true : ps.length === 1 ? ps[0] : r => ps.every(p => p(r))

/** A field and its `not` form: the value (undefined when it cannot be known) must match one of `yes` and none of `no`. */
function field<T> (get: (r: AuthzRequest) => T | undefined, test: (values: readonly string[]) => (v: T) => boolean, yes?: readonly string[], no?: readonly string[]): Pred | undefined {
  const preds: Pred[] = []
  if (yes !== undefined && yes.length > 0) {
    const t = test(yes)
    preds.push(r => { const v = get(r); return v !== undefined && t(v) })
  }
  if (no !== undefined && no.length > 0) {
    const t = test(no)
    preds.push(r => { const v = get(r); return v === undefined || !t(v) })
  }
  return preds.length === 0 ? undefined : all(preds)
}

function compileSource (s: AuthzSource, ns: string): Pred {
  const sa = (values: readonly string[] | undefined): string[] | undefined => values?.map(v => qualifiedServiceAccount(v, ns))
  const ps = [
    field(r => r.peer.principal, wild, s.principals, s.notPrincipals),
    field(r => r.auth, requestPrincipal, s.requestPrincipals, s.notRequestPrincipals),
    field(r => r.peer.namespace, wild, s.namespaces, s.notNamespaces),
    field(peerServiceAccount, wild, sa(s.serviceAccounts), sa(s.notServiceAccounts)),
    field(r => r.sourceIp, ipIn, s.ipBlocks, s.notIpBlocks),
    field(r => r.remoteIp, ipIn, s.remoteIpBlocks, s.notRemoteIpBlocks)
  ].filter((p): p is Pred => p !== undefined)
  return all(ps)
}

function compileOperation (o: AuthzOperation): Pred {
  const ps = [
    field(r => r.authority, hostWild, o.hosts, o.notHosts),
    field(r => String(r.port), exact, o.ports, o.notPorts),
    field(r => r.method, wild, o.methods, o.notMethods),
    field(r => r.path, pathMatch, o.paths, o.notPaths)
  ].filter((p): p is Pred => p !== undefined)
  return all(ps)
}

/** The `when` keys meshgate evaluates; any other key is refused at load. */
export const CONDITION_KEYS = [
  'request.headers[<name>]', 'source.ip', 'remote.ip', 'source.namespace', 'source.principal', 'source.serviceAccount',
  'request.auth.principal', 'request.auth.audiences', 'request.auth.presenter', 'request.auth.claims[<claim>]…',
  'destination.ip', 'destination.port', 'connection.sni'
] as const

const HEADER_KEY = /^request\.headers\[([^\]]+)\]$/
const CLAIM_KEY = /^request\.auth\.claims((?:\[[^\]]+\])+)$/

/** Why a `when` key cannot be evaluated, or undefined when it can. */
export function conditionKeyProblem (key: string): string | undefined {
  if (HEADER_KEY.test(key) || CLAIM_KEY.test(key)) return undefined
  if (['source.ip', 'remote.ip', 'source.namespace', 'source.principal', 'source.serviceAccount', 'request.auth.principal', 'request.auth.audiences',
    'request.auth.presenter', 'destination.ip', 'destination.port', 'connection.sni'].includes(key)) return undefined
  return `condition key "${key}" is not one meshgate evaluates (${CONDITION_KEYS.join(', ')})`
}

function compileCondition (c: AuthzCondition, ns: string): Pred {
  if (c.key === 'request.auth.principal') return field(r => r.auth, requestPrincipal, c.values, c.notValues) ?? (() => true)
  if (c.key === 'source.serviceAccount') {
    const sa = (values: readonly string[] | undefined): string[] | undefined => values?.map(v => qualifiedServiceAccount(v, ns))
    return field(peerServiceAccount, wild, sa(c.values), sa(c.notValues)) ?? (() => true)
  }
  const get = conditionGetter(c.key)
  const ip = c.key === 'source.ip' || c.key === 'remote.ip' || c.key === 'destination.ip'
  const p = ip
    ? field(r => get(r) as string | undefined, ipIn, c.values, c.notValues)
    : field(get, listTest(c.key === 'destination.port' ? exact : wild), c.values, c.notValues)
  return p ?? (() => true)
}

/** A test over one value or a list of values (list-typed claims and audiences match by any element). */
function listTest (t: (values: readonly string[]) => (v: string) => boolean): (values: readonly string[]) => (v: string | readonly string[]) => boolean {
  return values => {
    const one = t(values)
    return v => typeof v === 'string' ? one(v) : v.some(one)
  }
}

function conditionGetter (key: string): (r: AuthzRequest) => string | readonly string[] | undefined {
  const h = HEADER_KEY.exec(key)
  if (h !== null) {
    const name = h[1].toLowerCase()
    return r => { const v = r.headers[name]; return Array.isArray(v) ? v.join(',') : v }
  }
  const c = CLAIM_KEY.exec(key)
  if (c !== null) {
    const path = c[1].slice(1, -1).split('][')
    return r => {
      let v: unknown = r.auth?.claims
      for (const k of path) v = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>)[k] : undefined
      if (typeof v === 'string') return v
      if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string')
      return undefined
    }
  }
  switch (key) {
    case 'source.ip': return r => r.sourceIp
    case 'remote.ip': return r => r.remoteIp
    case 'source.namespace': return r => r.peer.namespace
    case 'source.principal': return r => r.peer.principal
    case 'request.auth.audiences': return r => r.auth?.audiences
    case 'request.auth.presenter': return r => r.auth?.presenter
    case 'destination.ip': return r => r.destinationIp
    case 'destination.port': return r => String(r.port)
    case 'connection.sni': return r => r.sni
    default: return () => undefined
  }
}

// ---------------------------------------------------------------- value matchers

/** The caller's `namespace/serviceAccount`, when both are known. */
function peerServiceAccount (r: AuthzRequest): string | undefined {
  return r.peer.serviceAccount !== undefined && r.peer.namespace !== undefined ? `${r.peer.namespace}/${r.peer.serviceAccount}` : undefined
}

/** Istio's `serviceAccounts` value: `namespace/name`, or `name` in the policy's own namespace. */
function qualifiedServiceAccount (v: string, policyNamespace: string): string {
  return v.includes('/') ? v : `${policyNamespace}/${v}`
}

/**
 * `requestPrincipals` and `request.auth.principal`, as Istio compiles them: the value splits at
 * its last `/` into an issuer and a subject matched against the token's `iss` and `sub` claims
 * separately, so `https://issuer.test/*` is that issuer with any subject (not an issuer that
 * merely starts with it). `*` needs both claims present; `*x` without `/` is any issuer and a
 * subject ending in `x`; `x*` without `/` an issuer starting with `x` and any subject.
 */
const requestPrincipal = (values: readonly string[]): (a: AuthAttributes) => boolean => {
  const present = (s: string): boolean => s.length > 0
  const is = (x: string) => (s: string): boolean => s === x
  const ms = values.map(v => {
    const idx = v.lastIndexOf('/')
    const found = idx >= 0
    const iss = found ? v.slice(0, idx) : v
    const sub = found ? v.slice(idx + 1) : ''
    let mi: (s: string) => boolean
    let msub: (s: string) => boolean
    if (v === '*') { mi = present; msub = present } else if (v.startsWith('*')) {
      if (found) { const suf = iss.slice(1); mi = iss === '*' ? present : s => s.endsWith(suf); msub = is(sub) } else { const suf = v.slice(1); mi = present; msub = s => s.endsWith(suf) }
    } else if (v.endsWith('*')) {
      if (found) { const pre = sub.slice(0, -1); mi = is(iss); msub = sub === '*' ? present : s => s.startsWith(pre) } else { const pre = v.slice(0, -1); mi = s => s.startsWith(pre); msub = present }
    } else { mi = is(iss); msub = is(sub) }
    return (a: AuthAttributes): boolean => {
      const i = a.claims.iss
      const u = a.claims.sub
      return typeof i === 'string' && typeof u === 'string' && mi(i) && msub(u)
    }
  })
  return a => ms.some(m => m(a))
}

/** Istio's string forms: `*` (present), `prefix*`, `*suffix`, or exact. */
function wildOne (v: string, ci: boolean): (s: string) => boolean {
  const p = ci ? v.toLowerCase() : v
  if (p === '*') return () => true
  if (p.length > 1 && p.endsWith('*')) { const pre = p.slice(0, -1); return ci ? s => s.toLowerCase().startsWith(pre) : s => s.startsWith(pre) }
  if (p.length > 1 && p.startsWith('*')) { const suf = p.slice(1); return ci ? s => s.toLowerCase().endsWith(suf) : s => s.endsWith(suf) }
  return ci ? s => s.toLowerCase() === p : s => s === p
}

const wild = (values: readonly string[]): (s: string) => boolean => {
  const ms = values.map(v => wildOne(v, false))
  return s => ms.some(m => m(s))
}

/** `hosts` match case-insensitively, against the authority as sent (`example.com:*` covers ports). */
const hostWild = (values: readonly string[]): (s: string) => boolean => {
  const ms = values.map(v => wildOne(v, true))
  return s => ms.some(m => m(s))
}

const exact = (values: readonly string[]): (s: string) => boolean => {
  const set = new Set(values)
  return s => set.has(s)
}

const ipIn = (values: readonly string[]): (s: string) => boolean => {
  const blocks = values.map(parseCidr).filter((c): c is Cidr => c !== undefined)
  return s => {
    const ip = parseIp(s)
    return ip !== undefined && blocks.some(b => inCidr(ip, b))
  }
}

/** `paths`: the wildcard forms, plus path templates with `{*}` (one segment) and `{**}` (any rest). */
const pathMatch = (values: readonly string[]): (s: string) => boolean => {
  const ms = values.map(v => v.includes('{*') ? templateMatcher(v) : wildOne(v, false))
  return s => ms.some(m => m(s))
}

export const TEMPLATE = /\{\*\*?\}/

function templateMatcher (t: string): (s: string) => boolean {
  const source = t.split(/(\{\*\*?\})/).map(part => part === '{*}' ? '[^/]+' : part === '{**}' ? '.+' : part.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')).join('')
  const re = new RE2(`^${source}$`)
  return s => re.test(s)
}

/** Why an `ipBlocks`-style value is not an address or CIDR block, or undefined. */
export function cidrProblem (v: string): string | undefined {
  return parseCidr(v) === undefined ? `"${v}" is not an IP address or CIDR block` : undefined
}

/** Why a `paths` value is malformed (Istio: `*` only first or last; templates use whole `{*}`/`{**}` segments). */
export function pathValueProblem (v: string): string | undefined {
  if (v.includes('{')) {
    const segs = v.split('/')
    if (segs.some(s => s.includes('{') && s !== '{*}' && s !== '{**}')) return `path template "${v}": "{*}" and "{**}" must each be a whole path segment`
    if (segs.slice(0, -1).includes('{**}')) return `path template "${v}": "{**}" may only be the last segment`
    return undefined
  }
  const inner = v.slice(1, -1)
  if (inner.includes('*')) return `path "${v}": "*" is only allowed as the first or last character`
  return undefined
}
