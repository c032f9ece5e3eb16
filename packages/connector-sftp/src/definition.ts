/**
 * `@airlock/connector-sftp/definition`: the SFTP source and destination as the control plane sees
 * them: config schemas, secrets shape and claims. Pure: no ssh2, no network. The runtimes in
 * `source.ts` and `destination.ts` are built on these.
 */
import { z } from 'zod';
import {
  absolutePath,
  destinationDefinition,
  policyPostActions,
  policyRecipients,
  type ResourceClaim,
  type SchemeSpec,
  sourceDefinition,
} from '@airlock/connector-api/definition';
import {
  authorityOf,
  sftpDestinationConfig,
  sftpSecrets,
  sftpSourceConfig,
  type SftpDestinationConfig,
  type SftpSourceConfig,
} from './schema.ts';
import { proxyCredential, sftpProxyPolicy } from './http-tunnel.ts';

/**
 * What this connector may ask secrets.yaml for: the SSH login (password, or private key) and, when a
 * policy entry names a proxy with a credential, that proxy's username and password. The login is
 * checked again for its own shape when the connection is made.
 */
const sftpConnectorSecrets = z.union([sftpSecrets, proxyCredential]);

const sftpScheme: SchemeSpec = { name: 'sftp', form: 'network', defaultPort: 22 };

/** An SFTP server as the local policy names it: with the host key it must present. */
const sftpServer = {
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(22),
  hostKey: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'a pinned OpenSSH SHA256 fingerprint'),
  /** Reach this server through an HTTP CONNECT proxy; the host key is pinned all the same. */
  proxy: sftpProxyPolicy.optional(),
};

/** An entry speaks for a claim only when both the server and its pinned key match. */
const sameServer = (entry: { host: string; port: number; hostKey: string }, claim: ResourceClaim) =>
  claim.scheme === 'sftp' && `${entry.host}:${entry.port}` === claim.authority && entry.hostKey === claim.hostKey;

/** `sources.sftp` in the local policy. */
export const sftpSourcePolicy = z.strictObject({ ...sftpServer, paths: z.array(absolutePath()).min(1), ...policyPostActions });
export type SftpSourcePolicy = z.output<typeof sftpSourcePolicy>;

/** `destinations.sftp` in the local policy. */
export const sftpDestinationPolicy = z.strictObject({ ...sftpServer, roots: z.array(absolutePath()).min(1), ...policyRecipients });
export type SftpDestinationPolicy = z.output<typeof sftpDestinationPolicy>;

export const sftpSourceDefinition = sourceDefinition<SftpSourceConfig, SftpSourcePolicy>({
  id: 'sftp',
  version: 1,
  title: 'SFTP server',
  config: sftpSourceConfig,
  secrets: sftpConnectorSecrets,
  claims: (config) => [
    { action: 'read', scheme: 'sftp', authority: authorityOf(config), path: config.path, hostKey: config.hostKey },
  ],
  claimFor: (config, file) => ({
    action: 'read',
    scheme: 'sftp',
    authority: authorityOf(config),
    path: file.path,
    hostKey: config.hostKey,
  }),
  scheme: sftpScheme,
  policy: { entry: sftpSourcePolicy, grant: (entry, claim) => (sameServer(entry, claim) ? entry : undefined) },
});

export const sftpDestinationDefinition = destinationDefinition<SftpDestinationConfig, SftpDestinationPolicy>({
  id: 'sftp',
  version: 1,
  title: 'SFTP server',
  config: sftpDestinationConfig,
  secrets: sftpConnectorSecrets,
  claims: (config) => [
    { action: 'write', scheme: 'sftp', authority: authorityOf(config), path: config.directory, hostKey: config.hostKey },
  ],
  scheme: sftpScheme,
  policy: {
    entry: sftpDestinationPolicy,
    grant: (entry, claim) => (sameServer(entry, claim) ? { paths: entry.roots, recipients: entry.recipients } : undefined),
  },
});

export {
  sftpDestinationConfig,
  sftpSecrets,
  sftpSourceConfig,
  type SftpDestinationConfig,
  type SftpSecrets,
  type SftpSourceConfig,
} from './schema.ts';
export { FINGERPRINT_PATTERN } from './fingerprint.ts';
