import { rawRequest, type SimpleResponse } from '../helpers/upstream.js'

// Shared YAML for the fidelity tests: one Gateway on 8080 for every host, and a
// DestinationRule with v1/v2/v3 subsets of `app`.

/** A Gateway `gw` serving every host on port 8080 (Istio's Bookinfo gateway shape). */
export const GATEWAY = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec:
  servers:
  - port: { number: 8080, name: http, protocol: HTTP }
    hosts: ["*"]
`

/** Subsets v1, v2, v3 of `app` by the `version` label. */
export const APP_SUBSETS = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: app }
spec:
  host: app
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 } }
  - { name: v3, labels: { version: v3 } }
`

/** A gateway-bound VirtualService for `*` with the given `http:` list (indented YAML). */
export function gatewayVs (http: string, name = 'app'): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name} }
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
${http}`
}

/** Which upstream answered (the helper upstream echoes its name), or the status when not 200. */
export async function who (base: string, target: string, headers?: Record<string, string>): Promise<string | number> {
  const res = await rawRequest(base, target, { headers })
  if (res.status !== 200) return res.status
  return (JSON.parse(res.body) as { upstream: string }).upstream
}

/** The request the upstream saw, as the helper upstream echoes it. */
export function echoed (res: SimpleResponse): { upstream: string; url: string; headers: Record<string, string | string[]> } {
  return JSON.parse(res.body)
}
