import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { DataContractError, fieldFilter, fieldScope } from './index.ts';

async function filter(scope: unknown, input: string | string[]): Promise<string> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  const source = Readable.from((Array.isArray(input) ? input : [input]).map((part) => Buffer.from(part)));
  await pipeline(source, fieldFilter(fieldScope.parse(scope)), sink);
  return Buffer.concat(chunks).toString('utf8');
}

const csv = 'id,name,ssn,amount,day\n1,Alice,123-45-6789,10.50,2026-01-31\n2,"Bob, Jr.",987-65-4321,7,2026-02-01\n';

describe('CSV field scopes', () => {
  it('keeps only granted columns, in the granted order', async () => {
    const out = await filter({ format: 'csv', allow: ['amount', 'id', 'name', 'not-there'] }, csv);
    expect(out).toBe('amount,id,name\n10.50,1,Alice\n7,2,"Bob, Jr."\n');
    expect(out).not.toContain('123-45-6789');
  });

  it('handles chunks split anywhere, including inside quotes and multi-byte characters', async () => {
    const text = 'id,name\n1,"Zoë ""Z"" Ünal"\n2,Åsa\n';
    const bytes = Buffer.from(text);
    const pieces: string[] = [];
    for (let i = 0; i < bytes.length; i += 3) pieces.push(bytes.subarray(i, i + 3).toString('latin1'));
    const chunks: Buffer[] = [];
    await pipeline(
      Readable.from(pieces.map((piece) => Buffer.from(piece, 'latin1'))),
      fieldFilter(fieldScope.parse({ format: 'csv', allow: ['name'] })),
      new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }),
    );
    expect(Buffer.concat(chunks).toString('utf8')).toBe('name\n"Zoë ""Z"" Ünal"\nÅsa\n');
  });

  it.each([
    [{ required: ['email'] }, /header: required column "email" is missing/],
    [{ rules: { amount: { type: 'integer' } } }, /row 1: field "amount" is not a integer/],
    [{ rules: { day: { type: 'date' } }, required: [] }, null],
    [{ rules: { ssn: { pattern: '\\d{3}-\\d{2}-\\d{3}' } } }, /row 1: field "ssn" does not match its pattern/],
    [{ rules: { name: { maxLength: 3 } } }, /row 1: field "name" is longer than 3/],
  ])('enforces the contract %j', async (contract, expected) => {
    const run = filter({ format: 'csv', allow: ['id'], ...contract }, csv);
    if (expected === null) {
      await expect(run).resolves.toContain('id');
      return;
    }
    const error = await run.then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(DataContractError);
    expect(String(error)).toMatch(expected);
    expect(String(error)).not.toMatch(/Alice|123-45|10\.50/);
  });

  it('refuses rows with the wrong number of fields and duplicate header names', async () => {
    await expect(filter({ format: 'csv', allow: ['a'] }, 'a,b\n1,2,3\n')).rejects.toThrow(/row 1: has 3 fields/);
    await expect(filter({ format: 'csv', allow: ['a'] }, 'a,a\n1,2\n')).rejects.toThrow(/named twice/);
  });
});

describe('JSON Lines field scopes', () => {
  const jsonl = '{"id":1,"name":"Alice","ssn":"123-45-6789","tags":["x"]}\n{"id":2,"name":"Bob","ssn":"987-65-4321"}\n';

  it('keeps only granted top-level fields', async () => {
    const out = await filter({ format: 'jsonl', allow: ['name', 'id', 'tags'] }, jsonl);
    expect(out).toBe('{"name":"Alice","id":1,"tags":["x"]}\n{"name":"Bob","id":2}\n');
  });

  it('reassembles lines split across chunks and multi-byte characters', async () => {
    const text = '{"n":"Zoë"}\n{"n":"Åsa"}';
    const bytes = Buffer.from(text);
    const pieces = [bytes.subarray(0, 9), bytes.subarray(9, 17), bytes.subarray(17)].map((b) => b.toString('latin1'));
    const chunks: Buffer[] = [];
    await pipeline(
      Readable.from(pieces.map((p) => Buffer.from(p, 'latin1'))),
      fieldFilter(fieldScope.parse({ format: 'jsonl', allow: ['n'] })),
      new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }),
    );
    expect(Buffer.concat(chunks).toString('utf8')).toBe('{"n":"Zoë"}\n{"n":"Åsa"}\n');
  });

  it('names the row and rule, never the content', async () => {
    await expect(filter({ format: 'jsonl', allow: ['id'], required: ['email'] }, jsonl)).rejects.toThrow(/row 1: required field "email"/);
    await expect(filter({ format: 'jsonl', allow: ['id'], rules: { id: { type: 'string' } } }, jsonl)).rejects.toThrow(/row 1: field "id" is not a string/);
    await expect(filter({ format: 'jsonl', allow: ['id'] }, '{"id":1}\n[1,2]\n')).rejects.toThrow(/row 2: not a JSON object/);
    await expect(filter({ format: 'jsonl', allow: ['id'] }, '{"id":1}\n{"id": Alice}\n')).rejects.toThrow(/^row 2: not valid JSON$/);
  });
});
