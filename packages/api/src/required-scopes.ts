/**
 * What an integration needs from the control-plane scopes: one scope per thing it reads, writes,
 * runs or deletes. Each config is parsed with its connector's own schema, and the scopes come from
 * the claims its definition derives; pure. A connector without a definition in
 * `connector-definitions.ts` is refused, never let through.
 */
import { claimsOf, pathComponents, type ResourceClaim } from '@airlock/connector-api/definition';
import { isAirlockError, UserError } from '@airlock/errors';
import type { IntegrationSpec } from '@airlock/protocol';
import { formatScope, parseResource, type Resource, type Scope } from '@airlock/scopes';
import { destinationDefinition, sourceDefinition } from './connector-definitions.ts';

/** Component by component; `..` is refused (NotAllowedError), never resolved. */
const components = (path: string): string[] => pathComponents(path);

/** `path` on an SFTP server at `host:port`; the grammar validates the host, and IPv6 literals take brackets there. */
function sftpAt(authority: string, path: readonly string[]): Resource {
  const colon = authority.lastIndexOf(':');
  const host = authority.slice(0, colon);
  const server = parseResource(`sftp://${host.includes(':') ? `[${host}]` : host}:${authority.slice(colon + 1)}/`);
  if (colon <= 0 || server.scheme !== 'sftp') throw new UserError(`bad SFTP server ${JSON.stringify(authority)}`);
  return { ...server, path };
}

/** The resource a claim names; `below` widens a directory to everything under it. */
function resourceOf(claim: ResourceClaim, below: boolean): Resource {
  const path = below ? [...components(claim.path), '**'] : components(claim.path);
  switch (claim.scheme) {
    case 'sftp':
      if (claim.authority === undefined) throw new UserError('an SFTP claim names no server');
      return sftpAt(claim.authority, path);
    case 'file':
      return { scheme: 'file', path };
    case 'script':
      return parseResource(`script:${path.join('/')}`);
  }
}

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
  return claimsOf(definition, source.config, 'source.config').map((claim) => ({ action: claim.action, resource: resourceOf(claim, false) }));
}

function destinationScopes(destination: IntegrationSpec['destination']): Scope[] {
  const definition = destinationDefinition(destination.connector);
  if (!definition) throw new UserError(`no scope mapping for connector ${destination.connector}`);
  // A destination claims the directory it delivers into; the deliveries are the files below it.
  return claimsOf(definition, destination.config, 'destination.config').map((claim) => ({ action: claim.action, resource: resourceOf(claim, true) }));
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
      if (from.scheme === 'script') throw new UserError(`afterDelivery ${after.action} needs a file source, not a script`);
      if (after.action === 'delete') scopes.push({ action: 'delete', resource: from });
      else if (after.archiveDirectory !== undefined) scopes.push({ action: 'write', resource: { ...from, path: [...components(after.archiveDirectory), '**'] } });
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
