import type { FastifyReply } from 'fastify'
import type { Static } from '@sinclair/typebox'
import { ConfigError, ConflictError, type Generation } from '../../plugins/config-manager.js'
import type { GenerationReply } from './schemas.js'

// How a configuration change is read and answered, for the config and resource routes alike.

/** Every resource of a generation, in kind order. */
export function allResources (g: Generation): Array<{ kind: string; metadata: { namespace: string; name: string }; source: { file: string; line: number } }> {
  const s = g.set
  return [...s.gateways, ...s.virtualServices, ...s.destinationRules, ...s.serviceEntries, ...s.workloadEntries]
}

export function generationReply (g: Generation): Static<typeof GenerationReply> {
  return {
    generation: g.generation,
    loadedAt: new Date(g.loadedAt).toISOString(),
    source: g.source,
    resources: allResources(g).length,
    problems: g.problems
  }
}

/**
 * Runs a change: the new generation on success, 400 with every problem when validation refuses
 * it, 409 with the current revision when etcd moved past the revision it was based on.
 */
export async function runChange (reply: FastifyReply, fn: () => Promise<Generation>): Promise<unknown> {
  try {
    return generationReply(await fn())
  } catch (err) {
    if (err instanceof ConfigError) return reply.code(400).send({ error: err.message, problems: err.problems })
    // etcd mode: someone else wrote first. The current revision, machine-readable, to retry on.
    if (err instanceof ConflictError) return reply.code(409).header('etag', `"${err.currentRevision}"`).send({ error: err.message, problems: [], revision: err.currentRevision, baseRevision: err.baseRevision })
    throw err
  }
}

/** A configuration body: YAML text, or JSON `{ yaml, mode? }`. */
export function configBody (body: unknown): { yaml: string; mode?: 'replace' | 'merge' } | undefined {
  if (typeof body === 'string') return { yaml: body }
  if (body !== null && typeof body === 'object' && typeof (body as { yaml?: unknown }).yaml === 'string') {
    const mode = (body as { mode?: unknown }).mode
    return { yaml: (body as { yaml: string }).yaml, ...(mode === 'merge' || mode === 'replace' ? { mode } : {}) }
  }
  return undefined
}
