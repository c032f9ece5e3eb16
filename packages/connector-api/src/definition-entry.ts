/**
 * `@airlock/connector-api/definition`: what a connector's definition module and the control plane
 * may import. Pure: no streams, no file system, no network.
 */
export * from './definition.ts';
export * from './name-template.ts';
export { absolutePath, deliveryFileMode, policyPostActions, policyRecipients, recipientFingerprint } from './schemas.ts';
export { isSafeName, normalizePath, pathComponents } from './paths.ts';
