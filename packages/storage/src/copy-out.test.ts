import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { CopyOut } from './copy-out.ts';

/** A protocol message: its code, its length (itself included), its body. */
function message(code: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(code, 0, 'latin1');
  header.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/** A stand-in for pg's connection: a socket whose one data listener is pg's, which records what it is given. */
function connection() {
  const stream = new EventEmitter();
  const toPg: Buffer[] = [];
  const queries: string[] = [];
  stream.on('data', (chunk: Buffer) => toPg.push(chunk));
  const fake = { stream, query: (text: string) => void queries.push(text) };
  return { connection: fake as unknown as pg.Connection, stream, toPg, queries };
}

const rows = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.from('first row'), Buffer.alloc(0), Buffer.from('x'.repeat(300)), Buffer.from([0xff, 0xff])];
const copied = Buffer.concat(rows);
const afterCopy = Buffer.concat([message('C', Buffer.from('COPY 3\0')), message('Z', Buffer.from('I'))]);
const wire = Buffer.concat([
  message('H', Buffer.from([1, 0, 12])),
  message('d', rows[0] ?? Buffer.alloc(0)),
  message('N', Buffer.from('a notice\0')),
  ...rows.slice(1).map((row) => message('d', row)),
  message('c', Buffer.alloc(0)),
  afterCopy,
]);

describe('CopyOut', () => {
  it('gathers the payloads of a COPY however the socket cuts its messages, and gives pg the rest', async () => {
    for (const size of [1, 2, 3, 4, 5, 6, 7, 13, 64, wire.length]) {
      for (const into of [undefined, new ArrayBuffer(8), new ArrayBuffer(4_096)]) {
        const { connection: pgConnection, stream, toPg, queries } = connection();
        const copy = new CopyOut('COPY (SELECT 1) TO STDOUT (FORMAT binary)', into);
        copy.submit(pgConnection);
        expect(queries).toEqual(['COPY (SELECT 1) TO STDOUT (FORMAT binary)']);
        for (let at = 0; at < wire.length; at += size) stream.emit('data', wire.subarray(at, at + size));
        // pg reads CommandComplete and ReadyForQuery itself, and then ends the query.
        expect(Buffer.concat(toPg)).toEqual(afterCopy);
        copy.handleCommandComplete();
        copy.handleReadyForQuery();
        const bytes = await copy.bytes;
        expect(Buffer.from(bytes)).toEqual(copied);
        expect(bytes.byteOffset).toBe(0);
        if (into && into.byteLength >= copied.length) expect(bytes.buffer).toBe(into);
      }
    }
  });

  it('gives pg back its own listener, copy after copy', async () => {
    const { connection: pgConnection, stream, toPg } = connection();
    const [pgListener] = stream.listeners('data');
    for (let i = 0; i < 3; i++) {
      const copy = new CopyOut('COPY (SELECT 1) TO STDOUT (FORMAT binary)');
      copy.submit(pgConnection);
      stream.emit('data', wire);
      expect(stream.listeners('data')).toEqual([pgListener]);
      copy.handleReadyForQuery();
      expect(Buffer.from(await copy.bytes)).toEqual(copied);
    }
    expect(Buffer.concat(toPg)).toEqual(Buffer.concat([afterCopy, afterCopy, afterCopy]));
  });

  it('hands an error to pg and fails with it', async () => {
    const { connection: pgConnection, stream, toPg } = connection();
    const copy = new CopyOut('COPY (SELECT 1) TO STDOUT (FORMAT binary)');
    copy.submit(pgConnection);
    const error = message('E', Buffer.from('SERROR\0Mbroken\0\0'));
    stream.emit('data', Buffer.concat([message('H', Buffer.from([1, 0, 0])), message('d', Buffer.from('partial')), error.subarray(0, 3)]));
    stream.emit('data', Buffer.concat([error.subarray(3), message('Z', Buffer.from('I'))]));
    expect(Buffer.concat(toPg)).toEqual(Buffer.concat([error, message('Z', Buffer.from('I'))]));
    copy.handleError(new Error('broken'));
    copy.handleReadyForQuery();
    await expect(copy.bytes).rejects.toThrow('broken');
  });
});
