/**
 * The input encodings a field scope may declare. The filter works on bytes and copies granted
 * values unchanged, so the output is in the input's encoding; text is decoded only to check rules
 * and to read header names and JSON keys.
 */
import { isUtf8 } from 'node:buffer';
import type { FieldScope } from './contract.ts';

export type Encoding = FieldScope['encoding'];

/** Bytes windows-1252 leaves undefined. */
const UNDEFINED_1252 = new Set([0x81, 0x8d, 0x8f, 0x90, 0x9d]);

/** Offset of the first byte of the first invalid UTF-8 sequence (overlong, surrogate, past U+10FFFF, truncated). */
function firstInvalidUtf8(bytes: Uint8Array, from: number, to: number): number {
  let i = from;
  while (i < to) {
    const b = bytes[i] ?? 0;
    if (b < 0x80) {
      i += 1;
      continue;
    }
    let need: number;
    let min: number;
    let max = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) need = 2;
    else if (b >= 0xf0 && b <= 0xf4) need = 3;
    else return i;
    // The second byte's range rules out overlongs, surrogates and code points past U+10FFFF.
    min = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
    if (b === 0xed) max = 0x9f;
    if (b === 0xf4) max = 0x8f;
    for (let k = 1; k <= need; k++) {
      const c = i + k < to ? (bytes[i + k] ?? 0) : -1;
      if (c < min || c > max) return i;
      min = 0x80;
      max = 0xbf;
    }
    i += need + 1;
  }
  return -1;
}

/** Offset of the first byte in [from, to) that is invalid in the encoding, or -1. */
export function firstInvalidByte(bytes: Buffer, from: number, to: number, encoding: Encoding): number {
  switch (encoding) {
    case 'utf-8':
      return isUtf8(bytes.subarray(from, to)) ? -1 : firstInvalidUtf8(bytes, from, to);
    case 'latin1':
      return -1;
    case 'windows-1252':
      for (let i = from; i < to; i++) if (UNDEFINED_1252.has(bytes[i] ?? 0)) return i;
      return -1;
  }
}

const windows1252 = new TextDecoder('windows-1252');

/** The text of already validated bytes. */
export function decode(bytes: Buffer, from: number, to: number, encoding: Encoding): string {
  switch (encoding) {
    case 'utf-8':
      return bytes.toString('utf8', from, to);
    case 'latin1':
      return bytes.toString('latin1', from, to);
    case 'windows-1252':
      return windows1252.decode(bytes.subarray(from, to));
  }
}
