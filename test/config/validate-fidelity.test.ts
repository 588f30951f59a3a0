import t from 'tap'
import { startInlineGateway } from '../helpers/gateway.js'
import { APP_SUBSETS, GATEWAY, gatewayVs, serviceEntry } from '../helpers/yaml.js'

// Load-time validation against istio pkg/config/validation (validation.go): what Istio accepts
// must load, what it rejects must be refused (the whole change, like a rejected kubectl apply).

const accepted: Array<[string, string]> = [
  // validation_test.go: weights are relative and need not total 100.
  ['weights 550 + 500', `  - route:\n    - { destination: { host: app, subset: v1 }, weight: 550 }\n    - { destination: { host: app, subset: v2 }, weight: 500 }`],
  ['weights 49 + 50', `  - route:\n    - { destination: { host: app, subset: v1 }, weight: 49 }\n    - { destination: { host: app, subset: v2 }, weight: 50 }`],
  ['a single destination with weight 0', `  - route:\n    - { destination: { host: app, subset: v1 }, weight: 0 }`],
  ['retryOn with a bare status code and reset', `  - retries: { attempts: 1, retryOn: "503,reset" }\n    route: [{ destination: { host: app } }]`],
  ['mirrorPercentage 100', `  - mirror: { host: app }\n    mirrorPercentage: { value: 100 }\n    route: [{ destination: { host: app } }]`]
]

const rejected: Array<[string, string]> = [
  ['weights all 0', `  - route:\n    - { destination: { host: app, subset: v1 }, weight: 0 }\n    - { destination: { host: app, subset: v2 }, weight: 0 }`],
  ['a negative weight', `  - route:\n    - { destination: { host: app, subset: v1 }, weight: -1 }\n    - { destination: { host: app, subset: v2 }, weight: 5 }`],
  ['redirect with route', `  - redirect: { uri: /x }\n    route: [{ destination: { host: app } }]`],
  ['redirect with rewrite', `  - redirect: { uri: /x }\n    rewrite: { uri: /y }`],
  ['a non-RE2 regex (lookahead)', `  - match: [{ uri: { regex: "/(?=a)" } }]\n    route: [{ destination: { host: app } }]`],
  ['abort httpStatus 600', `  - fault: { abort: { httpStatus: 600, percentage: { value: 10 } } }\n    route: [{ destination: { host: app } }]`],
  ['fault percentage 101', `  - fault: { abort: { httpStatus: 500, percentage: { value: 101 } } }\n    route: [{ destination: { host: app } }]`],
  // "mirror_percentage must have a max value of 100" / "min value of 0".
  ['mirrorPercentage 101', `  - mirror: { host: app }\n    mirrorPercentage: { value: 101 }\n    route: [{ destination: { host: app } }]`],
  ['mirrorPercentage -1', `  - mirror: { host: app }\n    mirrorPercentage: { value: -1 }\n    route: [{ destination: { host: app } }]`],
  ['mirrors[].percentage 150', `  - mirrors: [{ destination: { host: app }, percentage: { value: 150 } }]\n    route: [{ destination: { host: app } }]`],
  ['mirror_percent 101', `  - mirror: { host: app }\n    mirrorPercent: 101\n    route: [{ destination: { host: app } }]`],
  ['an uppercase header name in a match', `  - match: [{ headers: { X-User: { exact: a } } }]\n    route: [{ destination: { host: app } }]`]
]

function load (http: string): Promise<{ close: () => Promise<void> }> {
  return startInlineGateway(`${GATEWAY}---\n${gatewayVs(http)}\n---\n${APP_SUBSETS}\n---\n${serviceEntry('app', { v1: 1, v2: 2 })}`)
}

t.test('Istio accepts these, so meshgate loads them', async t => {
  for (const [name, http] of accepted) {
    const gw = await load(http)
    t.pass(name)
    await gw.close()
  }
})

t.test('Istio rejects these, so meshgate refuses them', async t => {
  for (const [name, http] of rejected) await t.rejects(load(http), name)
})
