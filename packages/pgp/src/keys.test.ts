import { readFile } from 'node:fs/promises';
import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import { RecipientKeyError } from '@airlock/errors';
import { generateDemoKey, inspectRecipientKey, inspectRecipientKeys, loadRecipients, MAX_RECIPIENTS, sessionCipher } from './index.ts';

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

/**
 * Public keys made once with GnuPG 2.2.40 (`gpg --batch --quick-gen-key` and `--quick-add-key` in a
 * throwaway GNUPGHOME): brainpoolP256r1 ECDSA + ECDH; DSA 2048 + ElGamal 2048; RSA 3072 signing key
 * with an RSA 1024 encryption subkey; RSA 3072 signing key with an ElGamal 2048 encryption subkey; RSA 3072 exported with `--export-filter keep-uid=...` matching
 * nothing, so it has no user ID; RSA 3072 after `setpref 3DES CAST5 SHA256 Uncompressed`.
 */
const fixture = (name: string) => readFile(new URL(`./fixtures/${name}.asc`, import.meta.url), 'utf8');

async function legacyKey(name: string) {
  return openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs: [{ name, email: `${name.toLowerCase()}@example.com` }], format: 'object', config: { v6Keys: false } });
}

describe('a key file holding several keys', () => {
  it('[integrity #10] reads every armored block of a file, not only the first', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    const b = await generateDemoKey('B', 'b@example.com');
    const keys = await loadRecipients([`${a.armoredPublicKey}\n${b.armoredPublicKey}`]);
    expect(keys.map((k) => k.fingerprint)).toEqual([a.fingerprint, b.fingerprint]);
  });

  it('[integrity #10] reads every key of one armored block', async () => {
    const a = await legacyKey('A');
    const b = await legacyKey('B');
    const armored = openpgp.armor(openpgp.enums.armor.publicKey, new Uint8Array([...a.publicKey.write(), ...b.publicKey.write()]));
    const keys = await inspectRecipientKeys(armored);
    expect(keys.map((k) => k.fingerprint)).toEqual([a.publicKey.getFingerprint().toUpperCase(), b.publicKey.getFingerprint().toUpperCase()]);
  });

  it('[integrity #10] refuses the whole file when one of its keys is refused, naming that key', async () => {
    const good = await legacyKey('Good');
    const expiring = await openpgp.generateKey({ type: 'ecc', curve: 'curve25519Legacy', userIDs, keyExpirationTime: 1, format: 'object', config: { v6Keys: false } });
    const later = new Date(expiring.publicKey.getCreationTime().getTime() + 10_000);
    const file = `${good.publicKey.armor()}\n${expiring.publicKey.armor()}`;
    await expect(loadRecipients([file], later)).rejects.toThrow(new RegExp(`${expiring.publicKey.getFingerprint().toUpperCase()}: expired`));
  });

  it('[integrity #10] reads every block of a file with Windows line endings and text around the blocks', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    const b = await generateDemoKey('B', 'b@example.com');
    const file = `Partner keys, rotated 2026\n${a.armoredPublicKey}\nand the backup key:\n${b.armoredPublicKey}`.replace(/\n/g, '\r\n');
    expect((await inspectRecipientKeys(file)).map((k) => k.fingerprint)).toEqual([a.fingerprint, b.fingerprint]);
  });

  it('[integrity #10] refuses a file with an armor block that never ends, instead of dropping it', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    const b = await generateDemoKey('B', 'b@example.com');
    const truncated = b.armoredPublicKey.replace(/-----END PGP PUBLIC KEY BLOCK-----\s*$/, '');
    await expect(loadRecipients([`${a.armoredPublicKey}\n${truncated}`])).rejects.toThrow(RecipientKeyError);
  });

  it('[integrity #10] refuses a key given twice across files, as one file or two', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    const b = await generateDemoKey('B', 'b@example.com');
    await expect(loadRecipients([`${a.armoredPublicKey}\n${b.armoredPublicKey}`, b.armoredPublicKey])).rejects.toThrow(
      new RegExp(`${b.fingerprint}: listed more than once`),
    );
  });

  it('[integrity #10] refuses more keys, across all files, than a receipt can name', async () => {
    const keys = await Promise.all(Array.from({ length: MAX_RECIPIENTS + 1 }, (_, i) => generateDemoKey(`K${i}`, `k${i}@example.com`)));
    const [first, ...rest] = keys.map((key) => key.armoredPublicKey);
    await expect(loadRecipients([first ?? '', rest.join('\n')])).rejects.toThrow(`${MAX_RECIPIENTS + 1} recipient keys given; at most ${MAX_RECIPIENTS}`);
  });

  it('[integrity #10] the single-key inspection names every key it refuses to pick from', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    const b = await generateDemoKey('B', 'b@example.com');
    const error = await inspectRecipientKey(`${a.armoredPublicKey}\n${b.armoredPublicKey}`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RecipientKeyError);
    expect(String(error)).toContain(a.fingerprint);
    expect(String(error)).toContain(b.fingerprint);
  });
});

describe('RFC 9580 algorithms inside v4 keys', () => {
  it('[integrity #11] refuses a v4 key whose encryption subkey is X25519 (algorithm 25)', async () => {
    const { privateKey } = await openpgp.generateKey({ type: 'ecc', curve: 'ed25519Legacy', userIDs, subkeys: [], format: 'object', config: { v6Keys: false } });
    const withX25519 = await privateKey.addSubkey({ type: 'curve25519' });
    const [subkey] = withX25519.subkeys;
    expect(withX25519.keyPacket.version).toBe(4);
    expect(subkey?.keyPacket.algorithm).toBe(openpgp.enums.publicKey.x25519);
    await expect(inspectRecipientKey(withX25519.toPublic().armor())).rejects.toThrow(/X25519 \(algorithm 25\).*v4 key/);
  });

  it.each([
    ['curve25519', /Ed25519 \(algorithm 27\)/],
    ['curve448', /Ed448 \(algorithm 28\)/],
  ] as const)('[integrity #11] refuses the v4 %s key openpgp v6 generates', async (type, reason) => {
    const { publicKey } = await openpgp.generateKey({ type, userIDs, format: 'object', config: { v6Keys: false } });
    expect(publicKey.keyPacket.version).toBe(4);
    await expect(inspectRecipientKey(publicKey.armor())).rejects.toThrow(reason);
  });

  it('[integrity #11] still accepts the legacy ECDH Curve25519 encoding (algorithm 18)', async () => {
    const { publicKey } = await legacyKey('Legacy');
    const key = await inspectRecipientKey(publicKey.armor());
    expect(key.algorithm).toBe('ecdh-curve25519');
  });
});

describe('every refusal names its real cause', () => {
  it('[integrity #12] accepts a GnuPG brainpoolP256r1 key', async () => {
    const key = await inspectRecipientKey(await fixture('brainpoolp256r1'));
    expect(key.fingerprint).toBe('858BB9516A9568F95FA939537FB32E4E033AF7DD');
    expect(key.algorithm).toBe('ecdh-brainpoolp256r1');
  });

  it('[integrity #12] refuses a DSA key because it is DSA', async () => {
    await expect(inspectRecipientKey(await fixture('dsa-elgamal'))).rejects.toThrow(/89DF56A8E6F2660D1BC23B95BE1FC4A841A85054: primary key is DSA/);
  });

  it('[integrity #12] refuses an RSA 1024 encryption subkey because of its size', async () => {
    await expect(inspectRecipientKey(await fixture('rsa1024-subkey'))).rejects.toThrow(/encryption subkey [0-9A-F]{40} rsa 1024 is weaker than 2048 bits/);
  });

  it('[integrity #12] refuses an ElGamal encryption subkey because it is ElGamal', async () => {
    await expect(inspectRecipientKey(await fixture('rsa-elgamal-subkey'))).rejects.toThrow(/9777F2E78BBC6E8004067C1C4B0EA4FDE701D80D: encryption subkey [0-9A-F]{40} is ElGamal/);
  });

  it('[integrity #12] refuses a key without a user ID, saying so', async () => {
    await expect(inspectRecipientKey(await fixture('no-user-id'))).rejects.toThrow(/2E80519B9BEDD7ED9D92C871F4309AB25995A756: has no user ID/);
  });
});

describe('keys that prefer only old ciphers', () => {
  it('[integrity #13] a key preferring only 3DES and CAST5 is accepted with a warning naming AES-128', async () => {
    const key = await inspectRecipientKey(await fixture('3des-cast5-only'));
    expect(key.preferredSymmetricAlgorithms).toEqual([openpgp.enums.symmetric.tripledes, openpgp.enums.symmetric.cast5]);
    expect(key.warnings).toHaveLength(1);
    expect(key.warnings[0]).toMatch(/3DES, CAST5/);
    expect(key.warnings[0]).toMatch(/AES-128/);
    expect(sessionCipher([key])).toBe('aes128');
  });

  it('[integrity #13] a key listing AES-256 gets AES-256 and no warning', async () => {
    const demo = await generateDemoKey('Partner', 'partner@example.com');
    const key = await inspectRecipientKey(demo.armoredPublicKey);
    expect(key.warnings).toEqual([]);
    expect(sessionCipher([key])).toBe('aes256');
  });
});
