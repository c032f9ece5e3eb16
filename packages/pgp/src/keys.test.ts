import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import { RecipientKeyError } from '@airlock/errors';
import { generateDemoKey, inspectRecipientKey, loadRecipients } from './index.ts';

const userIDs = [{ name: 'Recipient', email: 'recipient@example.com' }];

describe('inspectRecipientKey', () => {
  it('describes a generated demo key', async () => {
    const demo = await generateDemoKey('Partner', 'partner@example.com');
    const key = await inspectRecipientKey(demo.armoredPublicKey);
    expect(key.fingerprint).toBe(demo.fingerprint);
    expect(key.fingerprint).toMatch(/^[0-9A-F]{40}$/);
    expect(key.keyId).toBe(key.fingerprint.slice(-16));
    expect(key.encryptionFingerprint).not.toBe(key.fingerprint);
    expect(key.algorithm).toBe('ecdh-curve25519');
    expect(key.bits).toBeUndefined();
    expect(key.expires).toBeNull();
    expect(key.userIds).toEqual(['Partner <partner@example.com>']);
    expect(key.key.isPrivate()).toBe(false);
    expect(key.key.keyPacket.version).toBe(4);
  });

  it('reports RSA size and algorithm', async () => {
    const { publicKey } = await openpgp.generateKey({ type: 'rsa', rsaBits: 2048, userIDs, config: { v6Keys: false } });
    const key = await inspectRecipientKey(publicKey);
    expect(key.algorithm).toBe('rsa');
    expect(key.bits).toBe(2048);
  });

  it('reports the expiry of a key that has one', async () => {
    const { publicKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs, keyExpirationTime: 3600, config: { v6Keys: false } });
    const key = await inspectRecipientKey(publicKey);
    expect(key.expires).toBeInstanceOf(Date);
    expect(key.expires?.getTime()).toBe(key.created.getTime() + 3600 * 1000);
  });

  it('refuses a private key and does not echo it', async () => {
    const demo = await generateDemoKey('Partner', 'partner@example.com');
    const error = await inspectRecipientKey(demo.armoredSecretKey).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RecipientKeyError);
    expect(String(error)).toMatch(new RegExp(`${demo.fingerprint}: is a private key`));
    expect(String(error)).not.toContain('PRIVATE KEY BLOCK');
  });

  it('refuses garbage and empty input', async () => {
    await expect(inspectRecipientKey('not a key')).rejects.toThrow(RecipientKeyError);
    await expect(inspectRecipientKey('')).rejects.toThrow(RecipientKeyError);
  });

  it('refuses a block with more than one key', async () => {
    const a = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs, format: 'object', config: { v6Keys: false } });
    const b = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs, format: 'object', config: { v6Keys: false } });
    const packets = new Uint8Array([...a.publicKey.write(), ...b.publicKey.write()]);
    const armored = openpgp.armor(openpgp.enums.armor.publicKey, packets);
    await expect(inspectRecipientKey(armored)).rejects.toThrow(/contains 2 keys/);
  });

  it('refuses an expired key', async () => {
    const { publicKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs, keyExpirationTime: 1, format: 'object', config: { v6Keys: false } });
    const later = new Date(publicKey.getCreationTime().getTime() + 10_000);
    await expect(inspectRecipientKey(publicKey.armor(), later)).rejects.toThrow(
      new RegExp(`${publicKey.getFingerprint().toUpperCase()}: expired`),
    );
  });

  it('refuses a revoked key', async () => {
    const { privateKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs, format: 'object', config: { v6Keys: false } });
    const { publicKey } = await openpgp.revokeKey({ key: privateKey, format: 'armored' });
    await expect(inspectRecipientKey(publicKey)).rejects.toThrow(/: is revoked/);
  });

  it('refuses a key whose only encryption subkey is revoked', async () => {
    const { privateKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs, format: 'object', config: { v6Keys: false } });
    const [subkey] = privateKey.subkeys;
    if (!subkey) throw new Error('no subkey');
    const primary = privateKey.keyPacket;
    if (!(primary instanceof openpgp.SecretKeyPacket)) throw new Error('not a secret key packet');
    // Subkey.revoke returns a revoked copy; put it in place of the original.
    privateKey.subkeys.splice(0, 1, await subkey.revoke(primary));
    await expect(inspectRecipientKey(privateKey.toPublic().armor())).rejects.toThrow(/no valid encryption-capable key/);
  });

  it('refuses a signing-only key', async () => {
    const { privateKey } = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs, subkeys: [{ sign: true }], format: 'object', config: { v6Keys: false } });
    await expect(inspectRecipientKey(privateKey.toPublic().armor())).rejects.toThrow(/no valid encryption-capable key/);
  });

  it('refuses RSA 1024', async () => {
    // openpgp refuses to generate weak RSA unless told to; the policy must still refuse to use it.
    const { publicKey } = await openpgp.generateKey({ type: 'rsa', rsaBits: 1024, userIDs, config: { v6Keys: false, minRSABits: 1024 } });
    await expect(inspectRecipientKey(publicKey)).rejects.toThrow(/rsa 1024 is weaker than 2048 bits/);
  });

  it('refuses a v6 key', async () => {
    const { publicKey } = await openpgp.generateKey({ type: 'curve25519', userIDs, config: { v6Keys: true } });
    await expect(inspectRecipientKey(publicKey)).rejects.toThrow(/is a v6 key/);
  });
});

describe('loadRecipients', () => {
  it('loads several distinct keys in order', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    const b = await generateDemoKey('B', 'b@example.com');
    const keys = await loadRecipients([a.armoredPublicKey, b.armoredPublicKey]);
    expect(keys.map((k) => k.fingerprint)).toEqual([a.fingerprint, b.fingerprint]);
  });

  it('refuses an empty list', async () => {
    await expect(loadRecipients([])).rejects.toThrow(RecipientKeyError);
  });

  it('refuses duplicates', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    await expect(loadRecipients([a.armoredPublicKey, a.armoredPublicKey])).rejects.toThrow(
      new RegExp(`${a.fingerprint}: listed more than once`),
    );
  });

  it('refuses the whole list when one key is bad', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    await expect(loadRecipients([a.armoredPublicKey, 'junk'])).rejects.toThrow(RecipientKeyError);
  });
});
