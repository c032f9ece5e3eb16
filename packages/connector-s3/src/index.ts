/**
 * S3-compatible object storage as a destination (`s3@1`). Register `s3Destination` in the agent's
 * connector list; the control plane imports `./definition` only.
 */
export { s3Destination } from './destination.ts';
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
