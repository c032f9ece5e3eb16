/**
 * Streaming OpenPGP for the agent's data path (openpgp.js): recipient key policy, checked before any
 * byte moves, and encryption that never holds a whole file in memory.
 */
export { MIN_FINITE_FIELD_BITS, inspectRecipientKey, loadRecipients } from './keys.ts';
export type { RecipientKey } from './keys.ts';
export { encryptStream } from './encrypt.ts';
export type { EncryptOptions } from './encrypt.ts';
export { generateDemoKey } from './demo.ts';
export type { DemoKey } from './demo.ts';
