/**
 * Local and mounted shared folders, as a source (`local@1`) and an atomic destination (`local@1`).
 * Register both in the agent's connector list.
 */
export { localFolderDestination, localFolderDestinationConfig } from './destination.ts';
export type { LocalFolderDestinationConfig } from './destination.ts';
export { localFolderSource, localFolderSourceConfig } from './source.ts';
export type { LocalFolderSourceConfig } from './source.ts';
