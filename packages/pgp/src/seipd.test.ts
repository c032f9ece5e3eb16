import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import { ArmorEncoder } from './armor.ts';
import { DEFAULT_PARTIAL_BYTES, regularLength, Seipdv1Encryptor } from './seipd.ts';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

function chunked(data: Buffer, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += size) chunks.push(data.subarray(offset, offset + size));
  return Readable.from(chunks);
}

interface Sealed {
  ciphertext: Buffer;
  sessionKey: Buffer;
}

interface SealOptions {
  partialBytes: number;
  chunk: number;
  filename?: string;
  date?: Date;
  armor?: boolean;
  /** Feed copies of the chunks and hand them to this once the encryptor releases them. */
  releaseChunk?: (chunk: Uint8Array) => void;
}

/** No session key packets: openpgp.js is given the session key directly, so each case is cheap. */
async function seal(plaintext: Buffer, options: SealOptions): Promise<Sealed> {
  const sessionKey = randomBytes(32);
  const encryptor = new Seipdv1Encryptor({
    sessionKeyPackets: new Uint8Array(0),
    sessionKey,
    algorithm: 'aes256',
    filename: options.filename ?? 'f.bin',
    date: options.date ?? new Date(),
    partialBytes: options.partialBytes,
    releaseChunk: options.releaseChunk,
  });
  const input = options.releaseChunk === undefined ? chunked(plaintext, options.chunk) : chunked(plaintext, options.chunk).map((chunk: Buffer) => Buffer.from(chunk));
  const encrypted = input.pipe(encryptor);
  return { ciphertext: await collect(options.armor ? encrypted.pipe(new ArmorEncoder()) : encrypted), sessionKey };
}

const read = ({ ciphertext }: Sealed, armored: boolean): Promise<openpgp.Message<Uint8Array>> =>
  armored ? openpgp.readMessage({ armoredMessage: ciphertext.toString('utf8') }) : openpgp.readMessage({ binaryMessage: ciphertext });

/** Decrypts with openpgp.js, which checks the MDC before it returns anything. */
async function open(sealed: Sealed, armored = false): Promise<{ data: Buffer; filename: string }> {
  const result = await openpgp.decrypt({ message: await read(sealed, armored), sessionKeys: { data: sealed.sessionKey, algorithm: 'aes256' }, format: 'binary' });
  return { data: Buffer.from(result.data), filename: result.filename };
}

async function literalDate(sealed: Sealed): Promise<unknown> {
  const literal = (await (await read(sealed, false)).decrypt([], [], [{ data: sealed.sessionKey, algorithm: 'aes256' }])).packets[0];
  // openpgp's typings leave the literal packet's `date` out; it is there at runtime.
  return literal instanceof openpgp.LiteralDataPacket ? Reflect.get(literal, 'date') : undefined;
}

/**
 * Sizes that put a frame edge at every octet near where it can fall, for frames of `partialBytes`
 * and the 5-octet name the tests use. The literal body is the data plus 11 octets (format, name
 * length, name, date), so its edges fall near `k * partialBytes - 11`; the SEIPD body adds 53
 * octets (version, prefix, tags, MDC) plus one length octet per frame, so its edges fall near
 * `k * partialBytes - 55 - k`.
 */
function boundarySizes(partialBytes: number, frames: number): number[] {
  const sizes = new Set<number>([0, 1, 2, 100, 191, 192, 193]);
  for (let frame = 1; frame <= frames; frame += 1) {
    for (const delta of [-63, -62, -61, -60, -59, -58, -57, -56, -55, -54, -53, -52, -14, -13, -12, -11, -10, -9, -8, -2, -1, 0, 1, 2]) {
      sizes.add(frame * partialBytes + delta);
    }
  }
  return [...sizes].sort((a, b) => a - b);
}

describe('Seipdv1Encryptor', () => {
  it('writes the regular length encodings of RFC 4880 4.2.2', () => {
    expect(regularLength(0)).toEqual(Buffer.from([0]));
    expect(regularLength(191)).toEqual(Buffer.from([191]));
    expect(regularLength(192)).toEqual(Buffer.from([192, 0]));
    expect(regularLength(8383)).toEqual(Buffer.from([223, 255]));
    expect(regularLength(8384)).toEqual(Buffer.from([255, 0, 0, 0x20, 0xc0]));
  });

  it('round-trips through openpgp.js at every size near a frame edge, in chunks of 1, 7 and 700 octets', async () => {
    const partialBytes = 512;
    const sizes = boundarySizes(partialBytes, 5);
    const plaintext = randomBytes(Math.max(...sizes));
    for (const chunk of [1, 7, 700]) {
      for (const size of sizes) {
        // Single-octet chunks are slow in bulk; their edges are covered on the first frame.
        if (chunk === 1 && size > partialBytes + 8) continue;
        const data = plaintext.subarray(0, size);
        const opened = await open(await seal(data, { partialBytes, chunk }));
        expect(opened.data.length, `size ${size}, chunk ${chunk}`).toBe(size);
        expect(sha256(opened.data), `size ${size}, chunk ${chunk}`).toBe(sha256(data));
      }
    }
  });

  it('round-trips larger messages with the default frame, armored too', async () => {
    for (const size of [DEFAULT_PARTIAL_BYTES - 30, 5 * DEFAULT_PARTIAL_BYTES + 17]) {
      const data = randomBytes(size);
      for (const armor of size > DEFAULT_PARTIAL_BYTES ? [false, true] : [false]) {
        const sealed = await seal(data, { partialBytes: DEFAULT_PARTIAL_BYTES, chunk: 256 * 1024 + 3, armor });
        expect(sha256((await open(sealed, armor)).data), `size ${size}, armor ${String(armor)}`).toBe(sha256(data));
      }
    }
  });

  it('hands each chunk back, the very object written, once it is copied: overwriting it then changes nothing', async () => {
    const partialBytes = 512;
    const sizes = boundarySizes(partialBytes, 4);
    const plaintext = randomBytes(Math.max(...sizes));
    for (const chunk of [7, 300, 512, 1500]) {
      for (const size of sizes) {
        const released: Uint8Array[] = [];
        const data = plaintext.subarray(0, size);
        const sealed = await seal(data, {
          partialBytes,
          chunk,
          releaseChunk: (lent) => {
            released.push(lent);
            // What a lending source does next: reads other bytes into it.
            lent.fill(0xee);
          },
        });
        expect(sha256((await open(sealed)).data), `size ${size}, chunk ${chunk}`).toBe(sha256(data));
        expect(released.length, `size ${size}, chunk ${chunk}`).toBe(Math.ceil(size / chunk));
        expect(new Set(released).size).toBe(released.length);
      }
    }
  });

  it('records the file name, cut at a character boundary to 255 octets, and the date to the second', async () => {
    const date = new Date('2026-01-02T03:04:05.678Z');
    const sealed = await seal(Buffer.from('x'), { partialBytes: 512, chunk: 1, filename: 'report é.csv', date });
    expect((await open(sealed)).filename).toBe('report é.csv');
    expect(await literalDate(sealed)).toEqual(new Date('2026-01-02T03:04:05.000Z'));
    // 127 two-octet characters and one more: 256 octets, so the last character goes whole.
    const long = await open(await seal(Buffer.from('x'), { partialBytes: 512, chunk: 1, filename: `${'é'.repeat(127)}é` }));
    expect(long.filename).toBe('é'.repeat(127));
  });

  it('is caught by the MDC when any ciphertext octet is changed', async () => {
    const data = randomBytes(3000);
    const sealed = await seal(data, { partialBytes: 512, chunk: 100 });
    // Octets in the first frame, the middle, and the encrypted MDC itself at the end; never a length octet.
    for (const at of [40, 1500, sealed.ciphertext.length - 5]) {
      const tampered = Buffer.from(sealed.ciphertext);
      tampered[at] = (tampered[at] ?? 0) ^ 0x01;
      await expect(open({ ciphertext: tampered, sessionKey: sealed.sessionKey }), `octet ${at}`).rejects.toThrow();
    }
  });

  it('refuses frame sizes that are not a power of two from 512, and non-byte input', async () => {
    const base = { sessionKeyPackets: new Uint8Array(0), sessionKey: randomBytes(32), algorithm: 'aes256' as const, filename: '', date: new Date() };
    expect(() => new Seipdv1Encryptor({ ...base, partialBytes: 256 })).toThrow(RangeError);
    expect(() => new Seipdv1Encryptor({ ...base, partialBytes: 1000 })).toThrow(RangeError);
    expect(() => new Seipdv1Encryptor({ ...base, sessionKey: randomBytes(16) })).toThrow(RangeError);
    await expect(collect(Readable.from(['text']).pipe(new Seipdv1Encryptor(base)))).rejects.toThrow(/must yield bytes/);
  });
});
