import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type FrameSealer, InThreadSealer, workerSealer } from './frame-sealer.ts';

/** Frames of `size` octets each, every one in memory of its own, as the encryptor hands them over. */
function frames(data: Buffer, size: number): { frame: Buffer; length: number }[] {
  const out: { frame: Buffer; length: number }[] = [];
  for (let offset = 0; offset < data.length; offset += size) {
    const frame = Buffer.allocUnsafeSlow(size);
    const length = data.copy(frame, 0, offset, Math.min(offset + size, data.length));
    out.push({ frame, length });
  }
  return out;
}

async function sealAll(sealer: FrameSealer, data: Buffer, size: number): Promise<Buffer> {
  const parts = frames(data, size);
  const sealed = await Promise.all(parts.map(({ frame, length }, i) => sealer.seal(frame, length, i === parts.length - 1)));
  sealer.close();
  return Buffer.concat(sealed.map((result) => result.ciphertext));
}

describe('frame sealers', () => {
  it('write AES-CFB (zero IV) of the frames followed by the encrypted SHA-1 of them, the same on either thread', async () => {
    const key = randomBytes(32);
    const data = randomBytes(5 * 4096 + 123);
    const cipher = createCipheriv('aes-256-cfb', key, Buffer.alloc(16));
    const expected = Buffer.concat([cipher.update(data), cipher.update(createHash('sha1').update(data).digest()), cipher.final()]);
    expect(await sealAll(new InThreadSealer('aes256', key), data, 4096)).toEqual(expected);
    expect(await sealAll(workerSealer('aes256', key), data, 4096)).toEqual(expected);
  });

  it('hands each frame back to be filled again', async () => {
    const sealer = workerSealer('aes128', randomBytes(16));
    const frame = Buffer.allocUnsafeSlow(1024).fill(7);
    const first = await sealer.seal(frame, 1024, false);
    // The frame crossed to the worker and came back whole.
    expect(frame.length).toBe(0);
    expect(first.frame.length).toBe(1024);
    expect(first.frame.every((octet) => octet === 7)).toBe(true);
    const last = await sealer.seal(first.frame, 10, true);
    expect(last.ciphertext.length).toBe(10 + 20);
    sealer.close();
  });

  it('refuses a frame that shares its memory, and any frame once closed', async () => {
    const sealer = workerSealer('aes256', randomBytes(32));
    await expect(sealer.seal(Buffer.allocUnsafeSlow(128).subarray(64), 64, false)).rejects.toThrow(/own its memory/);
    sealer.close();
    await expect(sealer.seal(Buffer.allocUnsafeSlow(64), 64, true)).rejects.toThrow(/sealed or abandoned/);
  });
});
