/**
 * S3-compatible object storage as a destination (`s3@1`). Register `s3Destination` in the agent's
 * connector list; the control plane imports `./definition` only.
 */
import { defineDestination } from '@airlock/connector-api';
import { s3DestinationDefinition } from './definition.ts';

/** The AWS SDK loads with the runtime, on the first connect: an agent that never uses S3 never loads it. */
export const s3Destination = defineDestination(s3DestinationDefinition, () => import('./destination.ts').then((module) => module.s3Runtime));
export {
  authorityOf,
  s3DestinationConfig,
  s3DestinationDefinition,
  s3DestinationPolicy,
  s3Secrets,
  type S3DestinationConfig,
  type S3DestinationPolicy,
  type S3Secrets,
} from './definition.ts';
