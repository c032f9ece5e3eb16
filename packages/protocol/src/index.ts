/**
 * The wire contract between agent, control plane and admin clients: zod schemas for every input
 * and output, and the signed-request format. Both sides import these; a change here is a change
 * to the protocol, so keep reports to an allowlist of metadata fields.
 */
export * from './signing.ts';
export * from './text.ts';
export * from './schemas.ts';
export * from './admin-users.ts';
export * from './alerts.ts';
export * from './key-rotation.ts';
export * from './custody.ts';
export * from './timings.ts';
export * from './identity.ts';
export * from './request-log.ts';
export * from './updates.ts';
