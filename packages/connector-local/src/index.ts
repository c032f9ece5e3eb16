/**
 * Local and mounted shared folders, as a source (`local@1`) and an atomic destination (`local@1`).
 * Register both in the agent's connector list; the control plane imports `./definition` only.
 */
export { localFolderDestination } from './destination.ts';
export { localFolderSource } from './source.ts';
export {
  localFolderDestinationConfig,
  localFolderDestinationDefinition,
  localFolderSourceConfig,
  localFolderSourceDefinition,
  type LocalFolderDestinationConfig,
  type LocalFolderSourceConfig,
} from './definition.ts';
