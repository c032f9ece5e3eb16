/**
 * `@airlock/connector-local/definition`: local and mounted shared folders as the control plane
 * sees them: config schemas and claims. Pure: no file system access. The runtimes in `source.ts`
 * and `destination.ts` are built on these.
 */
import { z } from 'zod';
import { absolutePath, deliveryFileMode, destinationDefinition, sourceDefinition } from '@airlock/connector-api/definition';

export const localFolderSourceConfig = z.strictObject({
  path: absolutePath(
    'Absolute path of a file or directory, or a glob (`/srv/out/*.csv`, `/srv/out/**/*.json`). A directory means the regular files directly in it.',
  ),
});

export type LocalFolderSourceConfig = z.output<typeof localFolderSourceConfig>;

export const localFolderDestinationConfig = z.strictObject({
  directory: absolutePath('Absolute path of the directory deliveries land in.'),
  fileMode: deliveryFileMode,
});

export type LocalFolderDestinationConfig = z.output<typeof localFolderDestinationConfig>;

export const localFolderSourceDefinition = sourceDefinition<LocalFolderSourceConfig>({
  id: 'local',
  version: 1,
  title: 'Local folder',
  config: localFolderSourceConfig,
  claims: (config) => [{ action: 'read', scheme: 'file', path: config.path }],
  claimFor: (_config, file) => ({ action: 'read', scheme: 'file', path: file.path }),
});

export const localFolderDestinationDefinition = destinationDefinition<LocalFolderDestinationConfig>({
  id: 'local',
  version: 1,
  title: 'Local folder',
  config: localFolderDestinationConfig,
  claims: (config) => [{ action: 'write', scheme: 'file', path: config.directory }],
});
