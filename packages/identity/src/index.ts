/**
 * Agent identity: key pairs and request signing (`keys.ts`), key rotation proofs, and the custody
 * receipts' statements. Rotation and custody build on the key functions, so those live in their
 * own module and this one only gathers the three.
 */
export * from './keys.ts';
export { keyRotationProof, verifyKeyRotationProof } from './key-rotation.ts';

export { followRotations, isKeyFingerprint, keyFingerprint, openStatement, type ReceiptCheck, type ReceiptLines, type Sign, signStatement, verifyReceipt, verifyReceiptLines } from './custody.ts';
