/**
 * Streaming OpenPGP for the agent's data path (openpgp.js): recipient key policy, checked before any
 * byte moves, message profiles, the agent's signing key, and encryption that never holds a whole
 * file in memory.
 */
export { MAX_RECIPIENTS, MIN_FINITE_FIELD_BITS, checkProfile, inspectRecipientKey, inspectRecipientKeys, loadRecipients, sessionCipher } from './keys.ts';
export type { MessageProfile, RecipientKey } from './keys.ts';
export { encryptStream } from './encrypt.ts';
export type { EncryptOptions } from './encrypt.ts';
export { generateSigningKey, readSigningKey } from './signing.ts';
export type { SigningKey } from './signing.ts';
export { generateDemoKey } from './demo.ts';
export type { DemoKey } from './demo.ts';
