import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { DataContractError, fieldFilter, fieldScope } from './index.ts';

/** Runs bytes through the filter, split into the given chunks; resolves with the output bytes. */
async function run(scope: unknown, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    fieldFilter(fieldScope.parse(scope)),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(out);
}

const text = (scope: unknown, input: string | Buffer) => run(scope, [Buffer.from(input)]).then((b) => b.toString('utf8'));
const failure = (promise: Promise<unknown>) => promise.then(() => null, (error: unknown) => error);
const bytewise = (input: Buffer) => Array.from(input, (byte) => Buffer.from([byte]));

describe('field filter errors carry positions, never content', () => {
  it('[integrity #4] a stray quote fails as a data contract error naming the row, without the cell', async () => {
    const error = await failure(text({ format: 'csv', allow: ['id'] }, 'id,secret\n1,SECRET"VALUE\n'));
    expect(error).toBeInstanceOf(DataContractError);
    expect(String(error)).toMatch(/row 1\b/);
    expect(String(error)).not.toMatch(/SECRET|VALUE/);
    const unclosed = await failure(text({ format: 'csv', allow: ['id'] }, 'id,secret\n1,"SECRET\n'));
    expect(unclosed).toBeInstanceOf(DataContractError);
    expect(String(unclosed)).not.toMatch(/SECRET/);
  });
});

describe('record size is bounded', () => {
  /** `id,name\n1,"` followed by endless `x`: an unclosed quote; counts the bytes the filter pulled. */
  function endless(limit: number) {
    const state = { consumed: 0 };
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const stream = new Readable({
      read() {
        if (state.consumed === 0) {
          state.consumed += 10;
          this.push(Buffer.from('id,name\n1,"'));
          return;
        }
        if (state.consumed >= limit) {
          this.push(null);
          return;
        }
        state.consumed += chunk.length;
        this.push(chunk);
      },
    });
    return { stream, state };
  }

  it('[integrity #5] an unclosed quote fails once a record passes maxLineBytes, without reading the rest', async () => {
    const maxLineBytes = 256 * 1024;
    const { stream, state } = endless(64 * 1024 * 1024);
    const sink = new Writable({ write: (_c: Buffer, _e, cb) => cb() });
    const error = await failure(pipeline(stream, fieldFilter(fieldScope.parse({ format: 'csv', allow: ['id'], maxLineBytes })), sink));
    expect(error).toBeInstanceOf(DataContractError);
    expect(String(error)).toMatch(/row 1\b.*longer than 262144 bytes/);
    // The bound plus what streams hold in flight, never the 64 MiB on offer.
    expect(state.consumed).toBeLessThan(maxLineBytes + 8 * 64 * 1024);
  });
});

describe('JSON Lines values leave byte for byte', () => {
  it('[integrity #6] keeps big, precise and huge numbers as written', async () => {
    const input = '{"id":12345678901234567890,"exact":9007199254740993,"huge":1e400,"neg":-0.10,"drop":1}\n';
    expect(await text({ format: 'jsonl', allow: ['id', 'exact', 'huge', 'neg'] }, input)).toBe(
      '{"id":12345678901234567890,"exact":9007199254740993,"huge":1e400,"neg":-0.10}\n',
    );
  });

  it('[integrity #6] checks integer and number on the literal text', async () => {
    const scope = (type: string) => ({ format: 'jsonl', allow: ['n'], rules: { n: { type } } });
    await expect(text(scope('integer'), '{"n":9007199254740993}\n')).resolves.toBe('{"n":9007199254740993}\n');
    await expect(text(scope('integer'), '{"n":1.0}\n')).rejects.toThrow(/row 1: field "n" is not a integer/);
    await expect(text(scope('integer'), '{"n":1e3}\n')).rejects.toThrow(/row 1: field "n" is not a integer/);
    await expect(text(scope('number'), '{"n":1e400}\n')).resolves.toBe('{"n":1e400}\n');
    await expect(text(scope('number'), '{"n":"12"}\n')).rejects.toThrow(/row 1: field "n" is not a number/);
  });
});

describe('JSON Lines structure', () => {
  it('[integrity #6] keeps nested values, escapes and spacing inside a kept value as written', async () => {
    const input = '{ "a" : { "s": "}]\\"{[", "n": [1.50, 2e-0] } , "\\u0062" :"x\\u00e9", "c": 3 }\r\n';
    expect(await text({ format: 'jsonl', allow: ['a', 'b'] }, input)).toBe('{"a":{ "s": "}]\\"{[", "n": [1.50, 2e-0] },"\\u0062":"x\\u00e9"}\n');
  });

  it('refuses a granted field named twice in one record, and a pattern that is not a regular expression', async () => {
    await expect(text({ format: 'jsonl', allow: ['id'] }, '{"id":1,"id":2}\n')).rejects.toThrow(/^row 1: field "id" appears twice$/);
    await expect(text({ format: 'jsonl', allow: ['id'] }, '{"id":1,"x":1,"x":2}\n')).resolves.toBe('{"id":1}\n');
    expect(fieldScope.safeParse({ format: 'csv', allow: ['id'], rules: { id: { pattern: '[' } } }).success).toBe(false);
    const scope = { ...fieldScope.parse({ format: 'csv', allow: ['id'] }), rules: { id: { type: 'string' as const, nullable: false, pattern: '[' } } };
    expect(() => fieldFilter(scope)).toThrow(/pattern of field "id" is not a valid regular expression/);
  });
});

describe('CSV structure errors name the position only', () => {
  it.each([
    ['id,name\n1,"Al"ice\n', /^row 1, column 2: text after the closing quote$/],
    ['id,name\n1,Al\rice\n', /^row 1, column 2: a carriage return without a line feed$/],
    ['i"d,name\n1,x\n', /^header, column 1: a quote inside an unquoted field$/],
    ['id,name\n1,"Alice\n', /^row 1, column 2: a quoted field is not closed at the end of the input$/],
  ])('%j', async (input, expected) => {
    const error = await failure(text({ format: 'csv', allow: ['id'] }, input));
    expect(error).toBeInstanceOf(DataContractError);
    expect(error instanceof Error ? error.message : '').toMatch(expected);
  });

  it('keeps quoted cells, quoted header names and a last line without a line break as written', async () => {
    expect(await text({ format: 'csv', allow: ['name', 'id'], delimiter: ';' }, '"id";"name"\n1;"a;""b"""\n2;c')).toBe('"name";"id"\n"a;""b""";1\nc;2\n');
  });
});

describe('input encodings', () => {
  const latin1Csv = Buffer.from('id,name\n1,Zoë\n2,Ünal\n', 'latin1');
  it('[integrity #7] keeps Latin-1 CSV bytes unchanged when the scope declares latin1', async () => {
    const out = await run({ format: 'csv', allow: ['name'], encoding: 'latin1' }, [latin1Csv]);
    expect(out.equals(Buffer.from('name\nZoë\nÜnal\n', 'latin1'))).toBe(true);
  });

  it('[integrity #7] keeps Latin-1 JSON Lines bytes unchanged when the scope declares latin1', async () => {
    const input = Buffer.from('{"n":"Zoë","x":1}\n', 'latin1');
    const out = await run({ format: 'jsonl', allow: ['n'], encoding: 'latin1' }, [input]);
    expect(out.equals(Buffer.from('{"n":"Zoë"}\n', 'latin1'))).toBe(true);
  });

  it('[integrity #7] fails on bytes invalid in the declared encoding, naming row and column', async () => {
    const error = await failure(run({ format: 'csv', allow: ['name'] }, [latin1Csv]));
    expect(error).toBeInstanceOf(DataContractError);
    expect(String(error)).toMatch(/row 1, column 2: not valid utf-8/);
    const json = await failure(run({ format: 'jsonl', allow: ['n'] }, [Buffer.from('{"n":"ok"}\n{"n":"Zoë"}\n', 'latin1')]));
    expect(String(json)).toMatch(/row 2, byte 9: not valid utf-8/);
    const cp1252 = await failure(run({ format: 'csv', allow: ['name'], encoding: 'windows-1252' }, [Buffer.from([0x6e, 0x61, 0x6d, 0x65, 0x0a, 0x41, 0x81, 0x0a])]));
    expect(String(cp1252)).toMatch(/row 1, column 1: not valid windows-1252/);
  });

  it('[integrity #7] the field scope declares its encoding, UTF-8 by default', () => {
    expect(fieldScope.parse({ format: 'csv', allow: ['a'] }).encoding).toBe('utf-8');
    expect(fieldScope.parse({ format: 'csv', allow: ['a'], encoding: 'windows-1252' }).encoding).toBe('windows-1252');
    expect(fieldScope.safeParse({ format: 'csv', allow: ['a'], encoding: 'ebcdic' }).success).toBe(false);
  });

  it('[integrity #7] a delimiter must be one byte in the declared encoding, and a byte order mark stays', async () => {
    expect(fieldScope.safeParse({ format: 'csv', allow: ['a'], delimiter: '§' }).success).toBe(false);
    expect(fieldScope.safeParse({ format: 'csv', allow: ['a'], delimiter: '"' }).success).toBe(false);
    const input = Buffer.from('id§name\n1§Zoë\n', 'latin1');
    const out = await run({ format: 'csv', allow: ['name'], delimiter: '§', encoding: 'latin1' }, [input]);
    expect(out.equals(Buffer.from('name\nZoë\n', 'latin1'))).toBe(true);
    const bom = Buffer.from('\ufeffid,name\n1,Zoë\n');
    expect((await run({ format: 'csv', allow: ['id', 'name'] }, bytewise(bom))).equals(bom)).toBe(true);
  });
});

describe('a scope that matches nothing fails', () => {
  it.each([
    ['a wrong delimiter', 'id;name\n1;Alice\n'],
    ['a column in another case', 'ID,NAME\n1,Alice\n'],
    ['a sep= first line', 'sep=,\nid,name\n1,Alice\n'],
  ])('[integrity #8] a CSV header without any allowed column fails: %s', async (_case, input) => {
    const error = await failure(text({ format: 'csv', allow: ['id', 'name'] }, input));
    expect(error).toBeInstanceOf(DataContractError);
    expect(String(error)).toMatch(/header: none of the allowed columns \("id", "name"\)/);
    expect(String(error)).not.toMatch(/Alice/);
  });

  it('[integrity #8] JSON Lines in which no record has an allowed field fails', async () => {
    const error = await failure(text({ format: 'jsonl', allow: ['id'] }, '{"ID":1}\n{"ID":2}\n'));
    expect(error).toBeInstanceOf(DataContractError);
    expect(String(error)).toMatch(/no record has any of the allowed fields \("id"\)/);
  });
});

describe('real-world CSV and strict rules', () => {
  it('[integrity #9] skips blank lines and accepts mixed CRLF and LF', async () => {
    const scope = { format: 'csv', allow: ['id', 'name'] };
    expect(await text(scope, 'id,name\n1,Alice\n\n2,Bob\n\n')).toBe('id,name\n1,Alice\n2,Bob\n');
    expect(await text(scope, 'id,name\r\n1,Alice\n2,"B\r\nob"\r\n')).toBe('id,name\r\n1,Alice\r\n2,"B\r\nob"\r\n');
  });

  it.each([
    ['number', ['12', '-0.5', '1e3', '10.50'], ['0x1A', ' 12 ', '12 ', 'Infinity', 'NaN', '.5', '+1', '1.', '01']],
    ['integer', ['0', '-12', '12345678901234567890'], ['1.0', '1e3', '0x1A', ' 1', '01']],
    ['date', ['2026-02-28', '2024-02-29', '2026-12-31T23:59:59Z', '2026-01-01 00:00', '2026-01-01T12:00:00.5+02:00'], ['2026-02-30', '2025-02-29', '2026-13-01', '2026-01-01T24:00', '2026-01-01T12:60', '2026-01-01T12:00+25:00']],
  ])('[integrity #9] the %s rule is strict', async (type, good, bad) => {
    const scope = { format: 'csv', allow: ['v'], rules: { v: { type } } };
    for (const value of good) await expect(text(scope, `v\n${value}\n`), value).resolves.toBe(`v\n${value}\n`);
    for (const value of bad) await expect(text(scope, `v\n"${value}"\n`), value).rejects.toThrow(`row 1: field "v" is not a ${type}`);
  });

  it('[integrity #9] maxLineBytes gives the same result whatever the chunking', async () => {
    const long = `{"a":"${'x'.repeat(1500)}"}`;
    const jsonl = Buffer.from(`{"a":"${'y'.repeat(1100)}"}\n${long}\n`);
    const jsonScope = { format: 'jsonl', allow: ['a'], maxLineBytes: 1200 };
    const whole = await failure(run(jsonScope, [jsonl]));
    const split = await failure(run(jsonScope, bytewise(jsonl)));
    expect(String(whole)).toMatch(/row 2: longer than 1200 bytes/);
    expect(String(split)).toBe(String(whole));
    const csv = Buffer.from(`a\n"${'y'.repeat(1100)}"\n"${'x'.repeat(1500)}"\n`);
    const csvScope = { format: 'csv', allow: ['a'], maxLineBytes: 1200 };
    const csvWhole = await failure(run(csvScope, [csv]));
    expect(String(csvWhole)).toMatch(/row 2\b.*longer than 1200 bytes/);
    expect(String(await failure(run(csvScope, bytewise(csv))))).toBe(String(csvWhole));
    const fits = Buffer.from(`{"a":"${'y'.repeat(1100)}"}\n`);
    expect((await run(jsonScope, bytewise(fits))).equals(fits)).toBe(true);
  });
});
