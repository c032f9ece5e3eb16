/**
 * `@airlock/connector-sftp/definition`: the SFTP source and destination as the control plane sees
 * them: config schemas, secrets shape and claims. Pure: no ssh2, no network. The runtimes in
 * `source.ts` and `destination.ts` are built on these.
 */
import { destinationDefinition, sourceDefinition } from '@airlock/connector-api/definition';
import {
  authorityOf,
  sftpDestinationConfig,
  sftpSecrets,
  sftpSourceConfig,
  type SftpDestinationConfig,
  type SftpSourceConfig,
} from './schema.ts';

export const sftpSourceDefinition = sourceDefinition<SftpSourceConfig>({
  id: 'sftp',
  version: 1,
  title: 'SFTP server',
  config: sftpSourceConfig,
  secrets: sftpSecrets,
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
});

export const sftpDestinationDefinition = destinationDefinition<SftpDestinationConfig>({
  id: 'sftp',
  version: 1,
  title: 'SFTP server',
  config: sftpDestinationConfig,
  secrets: sftpSecrets,
  claims: (config) => [
    { action: 'write', scheme: 'sftp', authority: authorityOf(config), path: config.directory, hostKey: config.hostKey },
  ],
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
