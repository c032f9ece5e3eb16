/**
 * Azure Blob Storage as a destination (`azblob@1`). Register `azblobDestination` in the agent's
 * connector list; the control plane imports `./definition` only.
 */
export { azblobDestination } from './destination.ts';
export {
  authorityOf,
  azblobDestinationConfig,
  azblobDestinationDefinition,
  azblobDestinationPolicy,
  azblobSecrets,
  type AzblobDestinationConfig,
  type AzblobDestinationPolicy,
  type AzblobSecrets,
} from './definition.ts';
