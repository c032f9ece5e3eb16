/**
 * What an integration needs from the control-plane scopes: one scope per thing it reads, writes,
 * runs or deletes. Each config is parsed with its connector's own schema, and the scopes come from
 * the claims its definition derives, through `scopesOfClaims`; pure. A connector without a definition in
 * `connector-definitions.ts` is refused, never let through.
 */
import { claimsOf, pathComponents } from '@airlock/connector-api/definition';
import { isAirlockError, UserError } from '@airlock/errors';
import type { IntegrationSpec } from '@airlock/protocol';
import { formatScope, type Scope, scopesOfClaims } from '@airlock/scopes';
import { connectorSchemes, destinationDefinition, sourceDefinition } from './connector-definitions.ts';

/** Runs every step, so the caller hears of all the bad parts of a spec at once, not one per save. */
function collect<T>(steps: ReadonlyArray<() => T>): T[] {
  const results: T[] = [];
  const problems: unknown[] = [];
  for (const step of steps) {
    try {
      results.push(step());
    } catch (error) {
      problems.push(error);
    }
  }
  const [first] = problems;
  if (problems.length === 1) throw first;
  if (problems.length > 1) {
    if (!problems.every(isAirlockError)) throw first;
    throw new UserError(problems.map((problem) => (problem instanceof Error ? problem.message : String(problem))).join('; '));
  }
  return results;
}

function sourceScopes(source: IntegrationSpec['source']): Scope[] {
  const definition = sourceDefinition(source.connector);
  if (!definition) throw new UserError(`no scope mapping for connector ${source.connector}`);
  return scopesOfClaims(claimsOf(definition, source.config, 'source.config'), connectorSchemes);
}

function destinationScopes(destination: IntegrationSpec['destination']): Scope[] {
  const definition = destinationDefinition(destination.connector);
  if (!definition) throw new UserError(`no scope mapping for connector ${destination.connector}`);
  // A destination claims the directory it delivers into; the deliveries are the files below it.
  return scopesOfClaims(claimsOf(definition, destination.config, 'destination.config'), connectorSchemes, { below: true });
}

/**
 * The scopes an integration requires, deduplicated, in a stable order. Throws UserError for an
 * unknown connector or a config its connector's schema refuses (every problem, with its path),
 * NotAllowedError for a path with `..`.
 */
export function requiredScopes(spec: Pick<IntegrationSpec, 'source' | 'destination' | 'afterDelivery'>): Scope[] {
  const [sources = [], destinations = []] = collect([() => sourceScopes(spec.source), () => destinationScopes(spec.destination)]);
  const scopes: Scope[] = [...sources, ...destinations];
  const after = spec.afterDelivery;
  if (after && after.action !== 'keep') {
    for (const { resource: from } of sources) {
      if (from.form === 'name') throw new UserError(`afterDelivery ${after.action} needs a file source, not ${from.scheme}:${from.name}`);
      if (after.action === 'delete') scopes.push({ action: 'delete', resource: from });
      else if (after.archiveDirectory !== undefined) scopes.push({ action: 'write', resource: { ...from, path: [...pathComponents(after.archiveDirectory), '**'] } });
    }
  }
  const seen = new Set<string>();
  return scopes.filter((scope) => {
    const text = formatScope(scope);
    if (seen.has(text)) return false;
    seen.add(text);
    return true;
  });
}
