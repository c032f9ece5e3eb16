/**
 * What an integration needs from the control-plane scopes: one scope per thing it reads, writes,
 * runs or deletes. Pure. To support a new connector, add its `connector@version` to `sources` or
 * `destinations` below; a connector without a mapping is refused, never let through.
 */
import { z } from 'zod';
import { pathComponents } from '@airlock/connector-api';
import { UserError } from '@airlock/errors';
import type { IntegrationSpec } from '@airlock/protocol';
import { formatScope, parseResource, type Resource, type Scope } from '@airlock/scopes';

// Only the fields that name a resource; the connector itself validates the whole config on the agent.
const sftpEndpoint = z.object({ host: z.string().min(1).max(253), port: z.number().int().min(1).max(65_535).default(22) });
const sftpSourceConfig = sftpEndpoint.extend({ path: z.string().min(1).max(4096) });
const sftpDestinationConfig = sftpEndpoint.extend({ directory: z.string().min(1).max(4096) });
const localSourceConfig = z.object({ path: z.string().min(1).max(4096) });
const localDestinationConfig = z.object({ directory: z.string().min(1).max(4096) });
const scriptSourceConfig = z.object({ name: z.string().min(1).max(64) });

function parseConfig<T>(schema: z.ZodType<T>, config: unknown, where: string): T {
  const parsed = schema.safeParse(config);
  if (!parsed.success) {
    throw new UserError(`${where}: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || '(config)'}: ${issue.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** `path` on an SFTP server; the grammar validates the host, and IPv6 literals take brackets there. */
function sftpAt(host: string, port: number, path: readonly string[]): Resource {
  const server = parseResource(`sftp://${host.includes(':') ? `[${host}]` : host}:${port}/`);
  if (server.scheme !== 'sftp') throw new UserError(`bad SFTP host ${JSON.stringify(host)}`);
  return { ...server, path };
}

/** Component by component; `..` is refused (NotAllowedError), never resolved. */
const components = (path: string): string[] => pathComponents(path);

const sources: Record<string, (config: unknown) => Scope> = {
  'sftp@1': (config) => {
    const { host, port, path } = parseConfig(sftpSourceConfig, config, 'source sftp@1');
    return { action: 'read', resource: sftpAt(host, port, components(path)) };
  },
  'local@1': (config) => {
    const { path } = parseConfig(localSourceConfig, config, 'source local@1');
    return { action: 'read', resource: { scheme: 'file', path: components(path) } };
  },
  'script@1': (config) => {
    const { name } = parseConfig(scriptSourceConfig, config, 'source script@1');
    return { action: 'execute', resource: parseResource(`script:${name}`) };
  },
};

const destinations: Record<string, (config: unknown) => Resource> = {
  'local@1': (config) => {
    const { directory } = parseConfig(localDestinationConfig, config, 'destination local@1');
    return { scheme: 'file', path: [...components(directory), '**'] };
  },
  'sftp@1': (config) => {
    const { host, port, directory } = parseConfig(sftpDestinationConfig, config, 'destination sftp@1');
    return sftpAt(host, port, [...components(directory), '**']);
  },
};

function mapping<T>(table: Record<string, T>, connector: string): T {
  const found = Object.hasOwn(table, connector) ? table[connector] : undefined;
  if (found === undefined) throw new UserError(`no scope mapping for connector ${connector}`);
  return found;
}

/**
 * The scopes an integration requires, deduplicated, in a stable order. Throws UserError for an
 * unknown connector or a config that names no resource, NotAllowedError for a path with `..`.
 */
export function requiredScopes(spec: Pick<IntegrationSpec, 'source' | 'destination' | 'afterDelivery'>): Scope[] {
  const source = mapping(sources, spec.source.connector)(spec.source.config);
  const scopes: Scope[] = [source, { action: 'write', resource: mapping(destinations, spec.destination.connector)(spec.destination.config) }];
  const after = spec.afterDelivery;
  if (after && after.action !== 'keep') {
    const from = source.resource;
    if (from.scheme === 'script') throw new UserError(`afterDelivery ${after.action} needs a file source, not a script`);
    if (after.action === 'delete') scopes.push({ action: 'delete', resource: from });
    else if (after.archiveDirectory !== undefined) scopes.push({ action: 'write', resource: { ...from, path: [...components(after.archiveDirectory), '**'] } });
  }
  const seen = new Set<string>();
  return scopes.filter((scope) => {
    const text = formatScope(scope);
    if (seen.has(text)) return false;
    seen.add(text);
    return true;
  });
}
