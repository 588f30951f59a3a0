// meshgate's public entry point (package.json `exports`): what an embedding program, the demo
// and the bench's harnesses need to run the gateway without reaching into its folders.
export { ConfigError, startGateway, type BoundListener, type GatewayOptions, type RunningGateway } from './plugins/gateway.js'
export { readConfigInputs } from './plugins/config-files.js'
export { loadConfig, type LoadInput, type LoadOptions, type LoadResult } from './src/config/load.js'
export { formatProblem, hasErrors, type Problem, type Severity } from './src/config/problem.js'
export { startAdmin, type AdminOptions, type RunningAdmin } from './routes/admin.js'
