import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConflictError } from '@airlock/errors';
import { memoryDestination, memorySource, mockContext } from './testkit.ts';

describe('the testkit connectors', () => {
  it('lists matching files in order and streams their bytes', async () => {
    const source = memorySource({ '/in/b.csv': 'bb', '/in/a.csv': 'a', '/in/x.txt': 'x', '/in/.h.csv': 'h' });
    const session = await source.bind({ path: '/in/*.csv' }).connect(mockContext());
    const listed = await session.list();
    expect(listed.map((f) => [f.name, f.size])).toEqual([['a.csv', 1], ['b.csv', 2]]);
    const [first] = listed;
    if (!first) throw new Error('nothing listed');
    const chunks: Buffer[] = [];
    for await (const chunk of await session.open(first)) chunks.push(Buffer.from(chunk as Uint8Array));
    expect(Buffer.concat(chunks).toString()).toBe('a');
    expect(source.opened).toEqual(['/in/a.csv']);
  });

  it('refuses to remove or archive a file that changed since it was listed', async () => {
    const source = memorySource({ '/in/a.csv': 'a' });
    const session = await source.bind({ path: '/in/*' }).connect(mockContext());
    const [file] = await session.list();
    if (!file || !session.remove || !session.archive) throw new Error('expected a file and post-actions');
    source.write('/in/a.csv', 'a2');
    await expect(session.remove(file)).rejects.toThrow(ConflictError);
    const [again] = await session.list();
    if (!again) throw new Error('file vanished');
    await session.archive(again, '/done');
    expect([...source.files.keys()]).toEqual(['/done/a.csv']);
    expect(source.removed).toEqual([]);
  });

  it('shows nothing before commit, refuses to overwrite, and counts aborts', async () => {
    const destination = memoryDestination();
    const session = await destination.bind({ directory: '/out' }).connect(mockContext());
    const first = await session.begin('a.pgp');
    await pipeline(Readable.from([Buffer.from('cipher')]), first.stream);
    expect(destination.delivered.size).toBe(0);
    await first.commit();
    expect(destination.delivered.get('a.pgp')?.toString()).toBe('cipher');
    const second = await session.begin('a.pgp');
    await pipeline(Readable.from([Buffer.from('other')]), second.stream);
    await expect(second.commit()).rejects.toThrow(ConflictError);
    const third = await session.begin('b.pgp');
    await third.abort();
    await third.abort();
    expect(destination.aborts.count).toBe(1);
    expect(destination.delivered.get('a.pgp')?.toString()).toBe('cipher');
    await expect(session.begin('../x')).rejects.toThrow();
  });
});
