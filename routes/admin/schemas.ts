import { Type, type TSchema } from '@sinclair/typebox'

// TypeBox schemas shared by the admin route modules and plugins. Response schemas also drive
// serialization (fast-json-stringify), which drops any property a schema does not list: a
// part whose keys come from the configuration (matches, labels, stats) is declared open.

/** `T` or `null`. */
export const Nullable = <T extends TSchema>(schema: T): TSchema => Type.Union([schema, Type.Null()])

/** An object with the listed properties and whatever else it carries. */
export const Open = (properties: Record<string, TSchema> = {}, description?: string): TSchema =>
  Type.Object(properties, { additionalProperties: true, ...(description !== undefined ? { description } : {}) })

/** One configuration problem, positioned in its file. */
export const ProblemSchema = Type.Object({
  severity: Type.String(), code: Type.String(), message: Type.String(), file: Type.String(),
  line: Type.Integer(), column: Type.Integer(), resource: Type.Optional(Type.String()), path: Type.Optional(Type.String())
})

/**
 * The one error shape of the admin API, whatever the status: a message, and the configuration
 * problems behind it when there are any (a change refused by validation lists them all). Every
 * route and plugin answers a failure with this very schema object; the OpenAPI document lists
 * it once, as `#/components/schemas/Error`.
 */
export const ErrorReply = Type.Object({
  error: Type.String(),
  problems: Type.Optional(Type.Array(ProblemSchema))
}, { title: 'Error' })

/**
 * A resource as a dump shows it: everything it holds (secrets redacted) and the file and line
 * it came from.
 */
export const DumpedResource = Open({
  apiVersion: Type.Optional(Type.String()),
  kind: Type.String(),
  metadata: Open({ name: Type.String(), namespace: Type.String() }),
  spec: Type.Optional(Open()),
  source: Type.Object({ file: Type.String(), line: Type.Integer() })
}, 'a resource as loaded, secret values replaced by "[redacted]"')

/** A generation of the configuration, as every successful change answers it. */
/**
 * 409 in etcd mode: the store moved past the revision the change was based on. `revision` is
 * where the configuration is now (also the `ETag`), `baseRevision` what the change was based on.
 */
export const ConflictReply = Type.Object({
  error: Type.String(),
  problems: Type.Array(ProblemSchema),
  revision: Type.Integer(),
  baseRevision: Type.Integer()
}, { title: 'Conflict' })

export const GenerationReply = Type.Object({
  generation: Type.Integer(), loadedAt: Type.String(), source: Type.String(), resources: Type.Integer(), problems: Type.Array(ProblemSchema)
})

export const ConfigMode = Type.Union([Type.Literal('replace'), Type.Literal('merge')])

/** The JSON form of a configuration body (the YAML form is the text itself). */
export const ConfigBody = Type.Object({ yaml: Type.String({ maxLength: 8 * 1024 * 1024 }), mode: Type.Optional(ConfigMode) }, { additionalProperties: false })

/** The request bodies a configuration change takes, by media type (documented, parsed by the handler). */
export const CONFIG_BODY = { 'application/yaml': Type.String(), 'application/json': ConfigBody }

/** The bodies a single resource is sent as: its YAML, or JSON `{ yaml }`. */
export const RESOURCE_BODY = { 'application/yaml': Type.String(), 'application/json': Type.Object({ yaml: Type.String() }) }
