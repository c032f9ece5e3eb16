import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { partWritable } from './parts.ts';

async function partsOf(chunks: readonly Buffer[], partBytes: number, emptyPart: boolean): Promise<{ sizes: number[]; bytes: Buffer; overlapped: boolean }> {
  const parts: Buffer[] = [];
  let sending = false;
  let overlapped = false;
  const stream = partWritable({
    partBytes,
    emptyPart,
    send: async (part) => {
      if (sending) overlapped = true;
      sending = true;
      await new Promise((resolve) => setTimeout(resolve, 1));
      parts.push(Buffer.from(part));
      sending = false;
    },
  });
  await pipeline(Readable.from(chunks), stream);
  return { sizes: parts.map((part) => part.length), bytes: Buffer.concat(parts), overlapped };
}

describe('partWritable', () => {
  it('cuts writes of any size into full parts and a shorter last one, in order, one at a time', async () => {
    const data = Buffer.from(Array.from({ length: 2_500 }, (_, i) => i % 251));
    const chunks = [data.subarray(0, 7), data.subarray(7, 2_100), data.subarray(2_100, 2_101), data.subarray(2_101)];
    const result = await partsOf(chunks, 1_000, true);
    expect(result.sizes).toEqual([1_000, 1_000, 500]);
    expect(result.bytes.equals(data)).toBe(true);
    expect(result.overlapped).toBe(false);
  });

  it('sends one empty part for an empty delivery only when asked to', async () => {
    expect((await partsOf([], 1_000, true)).sizes).toEqual([0]);
    expect((await partsOf([], 1_000, false)).sizes).toEqual([]);
    expect((await partsOf([Buffer.alloc(1_000)], 1_000, true)).sizes).toEqual([1_000]);
  });

  it('fails the stream when a part cannot be sent', async () => {
    const stream = partWritable({ partBytes: 4, emptyPart: false, send: () => Promise.reject(new Error('refused')) });
    await expect(pipeline(Readable.from([Buffer.alloc(10)]), stream)).rejects.toThrow('refused');
  });
});
