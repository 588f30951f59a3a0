import type { AuthorizationPolicy, PeerAuthentication, PolicyTargetReference, RequestAuthentication, Resource, ResourceSet } from './model.js'
import { Codes } from './problem.js'
import { parseDurationMs } from './duration.js'
import { cidrProblem, conditionKeyProblem, pathValueProblem } from '../security/authz.js'

/**
 * Validation of the security.istio.io kinds, as Istio's webhook checks them, plus what meshgate
 * cannot enforce (code MG0012): CUSTOM authorization, and PeerAuthentication that needs mTLS.
 */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$/
/** Where problems go (validate.ts's collector). */
export interface Reporter { error: (r: Resource, path: Array<string | number>, message: string, code?: string) => void }
type Collector = Reporter

const TARGET_KINDS = new Set(['Gateway', 'Service', 'ServiceEntry'])

export function validateSecurity (c: Collector, set: ResourceSet): void {
  for (const p of set.authorizationPolicies) authorizationPolicy(c, p)
  for (const r of set.requestAuthentications) requestAuthentication(c, r)
  for (const pa of set.peerAuthentications) peerAuthentication(c, pa)
}

function targets (c: Collector, r: AuthorizationPolicy | RequestAuthentication): void {
  const refs: Array<[PolicyTargetReference, Array<string | number>]> = [
    ...(r.spec.targetRef !== undefined ? [[r.spec.targetRef, ['spec', 'targetRef']] as [PolicyTargetReference, Array<string | number>]] : []),
    ...(r.spec.targetRefs ?? []).map((t, i) => [t, ['spec', 'targetRefs', i]] as [PolicyTargetReference, Array<string | number>])
  ]
  if (refs.length > 0 && r.spec.selector !== undefined) c.error(r, ['spec', 'selector'], 'only one of selector or targetRefs can be set')
  if (r.spec.targetRef !== undefined && r.spec.targetRefs !== undefined) c.error(r, ['spec', 'targetRef'], 'only one of targetRef or targetRefs can be set')
  for (const [t, path] of refs) {
    if (!TARGET_KINDS.has(t.kind)) c.error(r, [...path, 'kind'], `targetRef kind "${t.kind}" is not one of ${[...TARGET_KINDS].join(', ')}`)
    if (t.namespace !== undefined && t.namespace !== r.metadata.namespace) c.error(r, [...path, 'namespace'], 'a targetRef must be in the policy\'s own namespace')
  }
}

function authorizationPolicy (c: Collector, p: AuthorizationPolicy): void {
  targets(c, p)
  const action = p.spec.action ?? 'ALLOW'
  if (action === 'CUSTOM') {
    c.error(p, ['spec', 'action'], 'CUSTOM authorization delegates the decision to an external authorizer (ext_authz provider), which meshgate does not run; the policy cannot be enforced', Codes.Unenforced)
  } else if (p.spec.provider !== undefined) {
    c.error(p, ['spec', 'provider'], 'provider is only allowed with action CUSTOM')
  }
  ;(p.spec.rules ?? []).forEach((rule, i) => {
    const base = ['spec', 'rules', i]
    ;(rule.from ?? []).forEach((f, j) => {
      const at = [...base, 'from', j, 'source']
      if (f.source === undefined || Object.keys(f.source).length === 0) c.error(p, [...base, 'from', j], 'from.source must set at least one field')
      for (const k of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const) {
        ;(f.source?.[k] ?? []).forEach((v, n) => { const m = cidrProblem(v); if (m !== undefined) c.error(p, [...at, k, n], m) })
      }
      const s = f.source ?? {}
      const sa = s.serviceAccounts !== undefined || s.notServiceAccounts !== undefined
      const saWithPrincipals = sa && (s.principals !== undefined || s.notPrincipals !== undefined || s.namespaces !== undefined || s.notNamespaces !== undefined)
      if (saWithPrincipals) c.error(p, [...at, 'serviceAccounts'], 'serviceAccounts cannot be set together with principals or namespaces')
    })
    ;(rule.to ?? []).forEach((t, j) => {
      const at = [...base, 'to', j, 'operation']
      if (t.operation === undefined || Object.keys(t.operation).length === 0) c.error(p, [...base, 'to', j], 'to.operation must set at least one field')
      for (const k of ['ports', 'notPorts'] as const) {
        ;(t.operation?.[k] ?? []).forEach((v, n) => { if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) c.error(p, [...at, k, n], `port "${v}" must be a number from 1 to 65535`) })
      }
      for (const k of ['paths', 'notPaths'] as const) {
        ;(t.operation?.[k] ?? []).forEach((v, n) => { const m = pathValueProblem(v); if (m !== undefined) c.error(p, [...at, k, n], m) })
      }
      for (const k of ['methods', 'notMethods'] as const) {
        ;(t.operation?.[k] ?? []).forEach((v, n) => { if (v === '') c.error(p, [...at, k, n], 'a method must not be empty') })
      }
    })
    ;(rule.when ?? []).forEach((w, j) => {
      const at = [...base, 'when', j]
      const m = conditionKeyProblem(w.key)
      if (m !== undefined) c.error(p, [...at, 'key'], m)
      if ((w.values ?? []).length === 0 && (w.notValues ?? []).length === 0) c.error(p, at, 'a condition needs values or notValues')
      if (['source.ip', 'remote.ip', 'destination.ip'].includes(w.key)) {
        for (const k of ['values', 'notValues'] as const) (w[k] ?? []).forEach((v, n) => { const pm = cidrProblem(v); if (pm !== undefined) c.error(p, [...at, k, n], pm) })
      }
      if (w.key === 'destination.port') {
        for (const k of ['values', 'notValues'] as const) (w[k] ?? []).forEach((v, n) => { if (!/^\d{1,5}$/.test(v)) c.error(p, [...at, k, n], `port "${v}" must be a number`) })
      }
    })
  })
}

function requestAuthentication (c: Collector, r: RequestAuthentication): void {
  targets(c, r)
  const issuers = new Set<string>()
  ;(r.spec.jwtRules ?? []).forEach((rule, i) => {
    const at = ['spec', 'jwtRules', i]
    if (rule.issuer === '') c.error(r, [...at, 'issuer'], 'issuer must not be empty')
    if (issuers.has(rule.issuer)) c.error(r, [...at, 'issuer'], `issuer "${rule.issuer}" appears in two rules`)
    issuers.add(rule.issuer)
    if (rule.jwks !== undefined && rule.jwksUri !== undefined) c.error(r, [...at, 'jwks'], 'set jwks or jwksUri, not both')
    if (rule.jwks !== undefined) {
      let ok = false
      try { const j = JSON.parse(rule.jwks) as { keys?: unknown }; ok = Array.isArray(j.keys) } catch { ok = false }
      if (!ok) c.error(r, [...at, 'jwks'], 'jwks must be a JSON Web Key Set: a JSON object with a "keys" list')
    }
    if (rule.jwksUri !== undefined && !/^https?:\/\/[^/\s]+/i.test(rule.jwksUri)) c.error(r, [...at, 'jwksUri'], `jwksUri "${rule.jwksUri}" must be an http or https URL`)
    if (rule.jwks === undefined && rule.jwksUri === undefined && !/^https?:\/\//i.test(rule.issuer)) {
      c.error(r, [...at, 'issuer'], 'without jwks or jwksUri the keys are discovered from the issuer (OpenID discovery), which must then be an http or https URL')
    }
    ;(rule.fromHeaders ?? []).forEach((h, n) => { if (!HEADER_NAME.test(h.name)) c.error(r, [...at, 'fromHeaders', n, 'name'], `"${h.name}" is not a valid header name`) })
    ;(rule.outputClaimToHeaders ?? []).forEach((o, n) => {
      if (!HEADER_NAME.test(o.header)) c.error(r, [...at, 'outputClaimToHeaders', n, 'header'], `"${o.header}" is not a valid header name`)
      if (o.claim === '') c.error(r, [...at, 'outputClaimToHeaders', n, 'claim'], 'claim must not be empty')
    })
    if (rule.outputPayloadToHeader !== undefined && !HEADER_NAME.test(rule.outputPayloadToHeader)) c.error(r, [...at, 'outputPayloadToHeader'], `"${rule.outputPayloadToHeader}" is not a valid header name`)
    if (rule.timeout !== undefined && (parseDurationMs(rule.timeout) === undefined || parseDurationMs(rule.timeout)! <= 0)) c.error(r, [...at, 'timeout'], `timeout "${rule.timeout}" is not a positive duration`)
  })
}

/**
 * PeerAuthentication sets whether workloads accept plaintext from each other. meshgate has no
 * workload certificates, so it can honour DISABLE and PERMISSIVE (plaintext accepted) only.
 */
function peerAuthentication (c: Collector, pa: PeerAuthentication): void {
  const refuse = (path: Array<string | number>): void => c.error(pa, path,
    'mode STRICT requires mutual TLS between workloads, which meshgate does not provide (it has no mesh CA or workload certificates); ' +
    'only DISABLE and PERMISSIVE can be honoured, and traffic stays plaintext', Codes.Unenforced)
  if (pa.spec.mtls?.mode === 'STRICT') refuse(['spec', 'mtls', 'mode'])
  for (const [port, m] of Object.entries(pa.spec.portLevelMtls ?? {})) {
    if (!/^\d{1,5}$/.test(port)) c.error(pa, ['spec', 'portLevelMtls', port], `"${port}" is not a port number`)
    if (m.mode === 'STRICT') refuse(['spec', 'portLevelMtls', port, 'mode'])
  }
  if (pa.spec.portLevelMtls !== undefined && pa.spec.selector === undefined) c.error(pa, ['spec', 'portLevelMtls'], 'portLevelMtls requires a selector')
}
