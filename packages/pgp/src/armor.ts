/**
 * ASCII armor (RFC 4880 6.2) for a streamed message, in the form openpgp.js writes it for an
 * RFC 4880 message: a blank header section, 60-character base64 lines, the CRC-24 checksum line
 * (GnuPG needs it when the base64 ends without padding, https://dev.gnupg.org/T7071), and the END line.
 */
import { Transform, type TransformCallback } from 'node:stream';

const BEGIN = Buffer.from('-----BEGIN PGP MESSAGE-----\n\n');
const END = Buffer.from('-----END PGP MESSAGE-----\n');
/** 45 octets make one 60-character line. */
const LINE_OCTETS = 45;
const LINE_CHARS = 60;

/** CRC-24 (RFC 4880 6.1), a byte at a time through a 256-entry table. */
const CRC24_TABLE = new Int32Array(256);
for (let i = 0; i < 256; i += 1) {
  let crc = i << 16;
  for (let bit = 0; bit < 8; bit += 1) {
    crc <<= 1;
    if (crc & 0x1000000) crc ^= 0x1864cfb;
  }
  CRC24_TABLE[i] = crc & 0xffffff;
}
const CRC24_INIT = 0xb704ce;

function crc24(crc: number, data: Uint8Array): number {
  let value = crc;
  for (let i = 0; i < data.length; i += 1) {
    value = ((value << 8) ^ (CRC24_TABLE[((value >>> 16) ^ (data[i] ?? 0)) & 0xff] ?? 0)) & 0xffffff;
  }
  return value;
}

/** Base64 of `data` in lines of 60 characters, each ended by a newline. */
function lines(data: Buffer): Buffer {
  const encoded = Buffer.from(data.toString('base64'), 'latin1');
  const full = Math.floor(encoded.length / LINE_CHARS);
  const rest = encoded.length - full * LINE_CHARS;
  const out = Buffer.allocUnsafe(full * (LINE_CHARS + 1) + (rest > 0 ? rest + 1 : 0));
  let at = 0;
  for (let line = 0; line < full; line += 1) {
    at += encoded.copy(out, at, line * LINE_CHARS, (line + 1) * LINE_CHARS);
    out[at] = 0x0a;
    at += 1;
  }
  if (rest > 0) {
    at += encoded.copy(out, at, full * LINE_CHARS);
    out[at] = 0x0a;
  }
  return out;
}

/** Binary message in, armored text out, as bytes. */
export class ArmorEncoder extends Transform {
  #crc = CRC24_INIT;
  /** Fewer than 45 octets carried to the next chunk, so every line but the last is full. */
  #carry: Buffer = Buffer.alloc(0);
  #begun = false;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.#begun) {
      this.push(BEGIN);
      this.#begun = true;
    }
    this.#crc = crc24(this.#crc, chunk);
    const data = this.#carry.length === 0 ? chunk : Buffer.concat([this.#carry, chunk]);
    const whole = data.length - (data.length % LINE_OCTETS);
    if (whole > 0) this.push(lines(data.subarray(0, whole)));
    this.#carry = Buffer.from(data.subarray(whole));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (!this.#begun) this.push(BEGIN);
    if (this.#carry.length > 0) this.push(lines(this.#carry));
    const checksum = Buffer.from([this.#crc >> 16, (this.#crc >> 8) & 0xff, this.#crc & 0xff]).toString('base64');
    this.push(Buffer.from(`=${checksum}\n`));
    this.push(END);
    callback();
  }
}
