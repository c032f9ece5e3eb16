/**
 * `@airlock/connector-local/definition`: local and mounted shared folders as the control plane
 * sees them: config schemas and claims. Pure: no file system access. The runtimes in `source.ts`
 * and `destination.ts` are built on these.
 */
import { z } from 'zod';
import {
  absolutePath,
  deliveryFileMode,
  destinationDefinition,
  policyPostActions,
  policyRecipients,
  type SchemeSpec,
  sourceDefinition,
} from '@airlock/connector-api/definition';

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

/** Paths on the agent's own host. */
const fileScheme: SchemeSpec = { name: 'file', form: 'path' };

/** `sources.local` in the local policy: path patterns the agent may read, and what may follow a delivery. */
export const localFolderSourcePolicy = z.strictObject({ paths: z.array(absolutePath()).min(1), ...policyPostActions });
export type LocalFolderSourcePolicy = z.output<typeof localFolderSourcePolicy>;

/** `destinations.local` in the local policy: one directory deliveries may land in or below. */
export const localFolderDestinationPolicy = z.strictObject({ root: absolutePath(), ...policyRecipients });
export type LocalFolderDestinationPolicy = z.output<typeof localFolderDestinationPolicy>;

export const localFolderSourceDefinition = sourceDefinition<LocalFolderSourceConfig, LocalFolderSourcePolicy>({
  id: 'local',
  version: 1,
  title: 'Local folder',
  config: localFolderSourceConfig,
  claims: (config) => [{ action: 'read', scheme: 'file', path: config.path }],
  claimFor: (_config, file) => ({ action: 'read', scheme: 'file', path: file.path }),
  scheme: fileScheme,
  policy: { entry: localFolderSourcePolicy, grant: (entry, claim) => (claim.scheme === 'file' ? entry : undefined) },
});

export const localFolderDestinationDefinition = destinationDefinition<LocalFolderDestinationConfig, LocalFolderDestinationPolicy>({
  id: 'local',
  version: 1,
  title: 'Local folder',
  config: localFolderDestinationConfig,
  claims: (config) => [{ action: 'write', scheme: 'file', path: config.directory }],
  scheme: fileScheme,
  policy: {
    entry: localFolderDestinationPolicy,
    grant: (entry, claim) => (claim.scheme === 'file' ? { paths: [entry.root], recipients: entry.recipients } : undefined),
  },
});
