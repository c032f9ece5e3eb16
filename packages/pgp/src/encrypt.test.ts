import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import { RecipientKeyError } from '@airlock/errors';
import { type DemoKey, type EncryptOptions, encryptStream, generateDemoKey, generateSigningKey, loadRecipients, readSigningKey } from './index.ts';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Feeds `data` in 64 KiB chunks so the encryptor sees a real stream, not one buffer. */
function chunked(data: Buffer): Readable {
  let offset = 0;
  return new Readable({
    read() {
      if (offset >= data.length) {
        this.push(null);
        return;
      }
      this.push(data.subarray(offset, offset + 65_536));
      offset += 65_536;
    },
  });
}

async function decryptWith(demo: DemoKey, ciphertext: Buffer | string): Promise<{ data: Buffer; filename: string }> {
  const decryptionKeys = await openpgp.readPrivateKey({ armoredKey: demo.armoredSecretKey });
  const message =
    typeof ciphertext === 'string'
      ? await openpgp.readMessage({ armoredMessage: ciphertext })
      : await openpgp.readMessage({ binaryMessage: ciphertext });
  const result = await openpgp.decrypt({ message, decryptionKeys, format: 'binary' });
  return { data: Buffer.from(result.data), filename: result.filename };
}

describe('encryptStream', () => {
  it('round-trips 3 MiB through openpgp decrypt', async () => {
    const demo = await generateDemoKey('Partner', 'partner@example.com');
    const recipients = await loadRecipients([demo.armoredPublicKey]);
    const plaintext = randomBytes(3 * 1024 * 1024);
    const ciphertext = await collect(await encryptStream(chunked(plaintext), recipients, { filename: 'report.csv' }));
    expect(ciphertext.length).toBeGreaterThan(plaintext.length);
    const { data, filename } = await decryptWith(demo, ciphertext);
    expect(sha256(data)).toBe(sha256(plaintext));
    expect(filename).toBe('report.csv');
  });

  it('writes RFC 4880 packets: PKESK v3, SEIPD v1, no compression', async () => {
    const demo = await generateDemoKey('Partner', 'partner@example.com');
    const recipients = await loadRecipients([demo.armoredPublicKey]);
    const ciphertext = await collect(await encryptStream(Readable.from([Buffer.from('hello')]), recipients));
    const message = await openpgp.readMessage({ binaryMessage: ciphertext });
    const tags = message.packets.map((packet) => packet.constructor.name);
    expect(tags).toEqual(['PublicKeyEncryptedSessionKeyPacket', 'SymEncryptedIntegrityProtectedDataPacket']);
    const [pkesk, seipd] = message.packets;
    // openpgp's typings leave `version` out; it is there at runtime.
    expect(Reflect.get(pkesk ?? {}, 'version')).toBe(3);
    expect(Reflect.get(seipd ?? {}, 'version')).toBe(1);
    const decryptionKeys = await openpgp.readPrivateKey({ armoredKey: demo.armoredSecretKey });
    const decrypted = await message.decrypt([decryptionKeys]);
    expect(decrypted.packets.map((packet) => packet.constructor.name)).toEqual(['LiteralDataPacket']);
  });

  it('encrypts to every recipient and can armor', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    const b = await generateDemoKey('B', 'b@example.com');
    const recipients = await loadRecipients([a.armoredPublicKey, b.armoredPublicKey]);
    const plaintext = randomBytes(100_000);
    const output = await encryptStream(chunked(plaintext), recipients, { armor: true });
    const chunks: unknown[] = [];
    for await (const chunk of output) chunks.push(chunk);
    // Consumers (hashing, delivery) get bytes even though armor is text.
    expect(chunks.every((chunk) => Buffer.isBuffer(chunk))).toBe(true);
    const armored = Buffer.concat(chunks.filter((chunk) => Buffer.isBuffer(chunk))).toString('utf8');
    expect(armored).toMatch(/^-----BEGIN PGP MESSAGE-----/);
    for (const demo of [a, b]) {
      expect(sha256((await decryptWith(demo, armored)).data)).toBe(sha256(plaintext));
    }
  });

  it('errors the output when the input errors', async () => {
    const demo = await generateDemoKey('Partner', 'partner@example.com');
    const recipients = await loadRecipients([demo.armoredPublicKey]);
    let sent = 0;
    const failing = new Readable({
      read() {
        if (sent >= 4) {
          this.destroy(new Error('source connection lost'));
          return;
        }
        sent += 1;
        this.push(randomBytes(65_536));
      },
    });
    const output = await encryptStream(failing, recipients);
    await expect(collect(output)).rejects.toThrow(/source connection lost/);
  });

  it('stops reading the input when the output is destroyed', async () => {
    const demo = await generateDemoKey('Partner', 'partner@example.com');
    const recipients = await loadRecipients([demo.armoredPublicKey]);
    const endless = new Readable({
      read() {
        this.push(randomBytes(65_536));
      },
    });
    const output = await encryptStream(endless, recipients);
    const closed = new Promise((resolve) => endless.once('close', resolve));
    output.once('data', () => output.destroy());
    await closed;
    expect(endless.destroyed).toBe(true);
  });

  it('refuses an empty recipient list', async () => {
    await expect(encryptStream(Readable.from([]), [])).rejects.toThrow(/no recipient keys/);
  });

  it.each([
    ['encrypted', false],
    ['signed and encrypted', true],
  ])('applies backpressure when %s: an unread output stops the input', async (_label, sign) => {
    const demo = await generateDemoKey('Partner', 'partner@example.com');
    const recipients = await loadRecipients([demo.armoredPublicKey]);
    const options: EncryptOptions = sign ? { signingKey: await readSigningKey(await generateSigningKey('Agent')) } : {};
    let produced = 0;
    const chunk = randomBytes(65_536);
    const endless = new Readable({
      read() {
        produced += chunk.length;
        this.push(chunk);
      },
    });
    const output = await encryptStream(endless, recipients, options);
    const reader = Readable.toWeb(output).getReader();
    await reader.read();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const afterPause = produced;
    // Some chunks sit in the stream buffers along the way; an unbounded pipeline would be at hundreds of MiB.
    expect(afterPause).toBeLessThan(8 * 1024 * 1024);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(produced).toBe(afterPause);
    await reader.cancel();
    endless.destroy();
  });
});

/** A v4 key that advertises SEIPDv2 in its features, as RFC 9580 implementations generate them. */
async function aeadCapableKey(): Promise<DemoKey> {
  const { publicKey, privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name: 'Modern', email: 'modern@example.com' }],
    format: 'object',
    config: { v6Keys: false, aeadProtect: true },
  });
  return { armoredPublicKey: publicKey.armor(), armoredSecretKey: privateKey.armor(), fingerprint: publicKey.getFingerprint().toUpperCase() };
}

async function packetVersions(ciphertext: Buffer): Promise<Array<[string, unknown]>> {
  const message = await openpgp.readMessage({ binaryMessage: ciphertext });
  return message.packets.map((packet) => [packet.constructor.name, Reflect.get(packet, 'version')]);
}

describe('message profiles', () => {
  it('writes RFC 4880 by default even when every key advertises SEIPDv2', async () => {
    const modern = await aeadCapableKey();
    const recipients = await loadRecipients([modern.armoredPublicKey]);
    expect(recipients[0]?.supportsSeipdv2).toBe(true);
    const ciphertext = await collect(await encryptStream(Readable.from([Buffer.from('hello')]), recipients));
    expect(await packetVersions(ciphertext)).toEqual([
      ['PublicKeyEncryptedSessionKeyPacket', 3],
      ['SymEncryptedIntegrityProtectedDataPacket', 1],
    ]);
    expect((await decryptWith(modern, ciphertext)).data.toString()).toBe('hello');
  });

  it('writes RFC 9580 AEAD (SEIPDv2) when asked and every recipient supports it', async () => {
    const [a, b] = await Promise.all([aeadCapableKey(), aeadCapableKey()]);
    const recipients = await loadRecipients([a.armoredPublicKey, b.armoredPublicKey]);
    const plaintext = randomBytes(200_000);
    const ciphertext = await collect(await encryptStream(chunked(plaintext), recipients, { profile: 'rfc9580' }));
    const versions = await packetVersions(ciphertext);
    expect(versions.at(-1)).toEqual(['SymEncryptedIntegrityProtectedDataPacket', 2]);
    expect(versions.slice(0, -1).every(([name, version]) => name === 'PublicKeyEncryptedSessionKeyPacket' && version === 6)).toBe(true);
    for (const key of [a, b]) expect(sha256((await decryptWith(key, ciphertext)).data)).toBe(sha256(plaintext));
  });

  it('refuses RFC 9580 when one recipient does not advertise it, before reading any input', async () => {
    const modern = await aeadCapableKey();
    const legacy = await generateDemoKey('Legacy', 'legacy@example.com');
    const recipients = await loadRecipients([modern.armoredPublicKey, legacy.armoredPublicKey]);
    expect(recipients[1]?.supportsSeipdv2).toBe(false);
    let read = 0;
    const input = new Readable({
      read() {
        read += 1;
        this.push(null);
      },
    });
    const error = await encryptStream(input, recipients, { profile: 'rfc9580' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RecipientKeyError);
    expect(String(error)).toContain(legacy.fingerprint);
    expect(String(error)).not.toContain(modern.fingerprint);
    expect(read).toBe(0);
  });
});

describe('signing', () => {
  it('signs and encrypts; the signature verifies with the public half only', async () => {
    const demo = await generateDemoKey('Partner', 'partner@example.com');
    const signer = await readSigningKey(await generateSigningKey('Airlock agent'));
    const recipients = await loadRecipients([demo.armoredPublicKey]);
    const plaintext = randomBytes(1024 * 1024);
    const ciphertext = await collect(await encryptStream(chunked(plaintext), recipients, { signingKey: signer }));
    const message = await openpgp.readMessage({ binaryMessage: ciphertext });
    const result = await openpgp.decrypt({
      message,
      decryptionKeys: await openpgp.readPrivateKey({ armoredKey: demo.armoredSecretKey }),
      verificationKeys: await openpgp.readKey({ armoredKey: signer.armoredPublicKey }),
      expectSigned: true,
      format: 'binary',
    });
    expect(sha256(result.data)).toBe(sha256(plaintext));
    const [signature] = result.signatures;
    await expect(signature?.verified).resolves.toBe(true);
    expect(signature?.keyID.toHex().toUpperCase()).toBe(signer.fingerprint.slice(-16));
  });

  it('generates a v4 key that only signs, and refuses garbage without echoing it', async () => {
    const armored = await generateSigningKey('Airlock agent');
    const signer = await readSigningKey(armored);
    expect(signer.key.keyPacket.version).toBe(4);
    expect(signer.key.subkeys).toHaveLength(0);
    expect(signer.armoredPublicKey).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    expect(signer.armoredPublicKey).not.toContain('PRIVATE');
    const error = await readSigningKey('garbage-secret-text').catch((e: unknown) => e);
    expect(String(error)).toMatch(/not a parsable/);
    expect(String(error)).not.toContain('garbage-secret-text');
  });
});
