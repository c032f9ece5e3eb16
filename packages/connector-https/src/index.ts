/**
 * A REST endpoint as a source (`https@1`). Register `httpsSource` in the agent's connector list; the
 * control plane imports `./definition` only.
 */
export { httpsSource, retryAfterMs } from './source.ts';
export {
  authorityOf,
  certificateFingerprint,
  httpsSecrets,
  httpsSourceConfig,
  httpsSourceDefinition,
  httpsSourcePolicy,
  type HttpsSecrets,
  type HttpsSourceConfig,
  type HttpsSourcePolicy,
} from './definition.ts';
