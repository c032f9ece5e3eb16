import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import { encryptStream, generateDemoKey, loadRecipients } from './index.ts';
import type { DemoKey } from './index.ts';

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

  it('applies backpressure: an unread output stops the input', async () => {
    const demo = await generateDemoKey('Partner', 'partner@example.com');
    const recipients = await loadRecipients([demo.armoredPublicKey]);
    let produced = 0;
    const chunk = randomBytes(65_536);
    const endless = new Readable({
      read() {
        produced += chunk.length;
        this.push(chunk);
      },
    });
    const output = await encryptStream(endless, recipients);
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
