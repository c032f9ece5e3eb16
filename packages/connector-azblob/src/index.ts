/**
 * Azure Blob Storage as a destination (`azblob@1`). Register `azblobDestination` in the agent's
 * connector list; the control plane imports `./definition` only.
 */
import { defineDestination } from '@airlock/connector-api';
import { azblobDestinationDefinition } from './definition.ts';

/** The Azure SDK loads with the runtime, on the first connect: an agent that never uses Azure never loads it. */
export const azblobDestination = defineDestination(azblobDestinationDefinition, () => import('./destination.ts').then((module) => module.azblobRuntime));
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
