import { describe, expect, it } from 'vitest';
import { ByteText, JsonbWriter } from './canonical-bytes.ts';
import { canonicalJson } from './canonical.ts';
import { jsonbText } from './jsonb-text.fixture.ts';

/** A small seeded generator (mulberry32): the same values on every run. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** What `JsonbWriter` makes of `text`, with a byte of other data on either side; null where it declines. */
function written(text: string): string | null {
  const source = Buffer.concat([Buffer.from('x'), Buffer.from(text), Buffer.from('.')]);
  const out = new ByteText();
  out.ascii('>');
  const taken = new JsonbWriter(out).write(source, 1, source.length - 1);
  const bytes = out.buffer.subarray(0, out.length).toString('utf8');
  if (!taken) {
    // Declined, and nothing of it left behind.
    expect(bytes).toBe('>');
    return null;
  }
  return bytes.slice(1);
}

describe('JsonbWriter', () => {
  it('writes what canonicalJson writes, for what jsonb holds', () => {
    const values: unknown[] = [
      {},
      [],
      { b: 1, a: 2 },
      { name: 'nightly-1', version: 3, recipientFingerprints: ['ABCDEF01'], schedule: { cron: '0 2 * * *', timezone: 'Europe/Berlin' } },
      { '': 'empty key', a: { b: {}, aa: [] }, ab: [true, false, null, 0, -1, 123456789012345, -123456789012345] },
      { s: 'é"\\\n\t\b\f\r\u0001\u001f\u007f\u2028😀 ü', a: 'x' },
      { z: [[[]], [{}], [{ b: [1, { d: 2, c: 3 }] }]], y: 'nested' },
      'a string',
      42,
      null,
      true,
    ];
    const random = seeded(7);
    const keys = ['a', 'b', 'aa', 'ab', 'ba', 'B', 'Z', 'zz', 'a1', 'a_', 'long-key-name', '', 'x y', '~'];
    const build = (depth: number): unknown => {
      const kind = random() * (depth > 3 ? 3 : 5);
      if (kind < 1) return Math.floor(random() * 2_000_001) - 1_000_000;
      if (kind < 2) return ['', 'plain', 'é', '"quoted"', 'back\\slash', 'line\nbreak', '\u0000'.slice(1), 'tab\t'][Math.floor(random() * 8)];
      if (kind < 3) return [true, false, null][Math.floor(random() * 3)];
      if (kind < 4) return Array.from({ length: Math.floor(random() * 4) }, () => build(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(random() * 6) }, () => [keys[Math.floor(random() * keys.length)] ?? 'k', build(depth + 1)]));
    };
    for (let i = 0; i < 2_000; i++) values.push(build(0));
    for (const value of values) {
      const canonical = canonicalJson(value);
      expect(written(jsonbText(value))).toBe(canonical);
      // Any spacing, and keys in any order.
      expect(written(JSON.stringify(value, null, 2))).toBe(canonical);
    }
  });

  it('declines what it cannot write exactly, for canonicalJson to write', () => {
    for (const text of [
      '{"é": 1}',
      '{"a\\"b": 1}',
      '{"a": 1, "a": 2}',
      '[1.5]',
      '[1e3]',
      '[-0]',
      '[0.10]',
      '[1234567890123456]',
      '[01]',
      '["\\u00e9"]',
      '["\\/"]',
      '["\\u0020"]',
      '["\\u001F"]',
      '[nul]',
      '[nullx]',
      '[1',
      '{"a" 1}',
      '{"a": 1,}',
      '[1,]',
      '',
      '{} {}',
      '"unterminated',
      '["raw\u0001control"]',
    ]) {
      expect({ text, written: written(text) }).toEqual({ text, written: null });
    }
    // Escapes PostgreSQL writes are taken as they are.
    expect(written('["\\u001f\\"\\\\\\b\\f\\n\\r\\t"]')).toBe(canonicalJson(['\u001f"\\\b\f\n\r\t']));
  });
});

describe('ByteText', () => {
  it('writes a text column as JSON.stringify writes it', () => {
    const texts = ['', 'plain', 'é ü 😀 \u2028 \u007f', '"', '\\', '\u0000\u0001\u0008\u0009\u000a\u000b\u000c\u000d\u001e\u001f', 'a"b\\c\nd'];
    for (let code = 0; code < 0x80; code++) texts.push(`<${String.fromCharCode(code)}>`);
    for (const text of texts) {
      const source = Buffer.from(`xx${text}yy`);
      const out = new ByteText();
      out.string(source, 2, Buffer.byteLength(text));
      expect(out.buffer.subarray(0, out.length).toString('utf8')).toBe(JSON.stringify(text));
    }
    const out = new ByteText();
    out.string(Buffer.alloc(0), 0, -1);
    out.uuid(Buffer.from('007f0c1a1e9a4e4c1b8d1e1a2b3c4d5e6f', 'hex'), 1);
    expect(out.buffer.subarray(0, out.length).toString('utf8')).toBe('null"7f0c1a1e-9a4e-4c1b-8d1e-1a2b3c4d5e6f"');
  });

  it('writes integers as String does', () => {
    const out = new ByteText();
    for (const value of [0, 1, 9, 10, 99, 100, 101, 999_999, 1_000_000, 2 ** 53 - 1, -1, -10, -(2 ** 53 - 1)]) {
      out.length = 0;
      out.integer(value);
      expect(out.buffer.toString('latin1', 0, out.length)).toBe(String(value));
    }
  });

  it('grows past its first buffer', () => {
    const out = new ByteText();
    const long = 'ab"'.repeat(100_000);
    out.string(Buffer.from(long), 0, long.length);
    out.raw(Buffer.from(long), 0, long.length);
    expect(out.buffer.subarray(0, out.length).toString('utf8')).toBe(JSON.stringify(long) + long);
  });
});
