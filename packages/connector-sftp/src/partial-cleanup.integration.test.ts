/** The fallback of an abort whose connection is gone: one fresh connection, bounded in time. */
import { writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSshd, type TestSshd } from '@airlock/testing';
import { connectSftp } from './connection.ts';
import { removePartialFile } from './partial-cleanup.ts';
import { mockContext } from './test-context.ts';

let sshd: TestSshd;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd.stop();
});

const config = (port: number) => ({
  host: '127.0.0.1',
  port,
  hostKey: sshd.hostKeyFingerprint,
  username: sshd.username,
  credentialRef: 'test',
  connectTimeoutMs: 20_000,
});

describe('removePartialFile', () => {
  it('gives up within its time bound on a server that accepts but never answers, and logs what stays', async () => {
    // Not the configured handshake timeout (20 s) but the removal's own bound (1.5 s) applies.
    const ctx = mockContext({ privateKey: sshd.privateKey });
    const gone = await connectSftp(ctx, config(sshd.port));
    await gone.end();
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const address = silent.address();
    if (address === null || typeof address === 'string') throw new Error('no listening port');
    const file = path.join(sshd.root, '.silent.pgp.0123456789abcdef.airlock-partial');
    try {
      const started = Date.now();
      await expect(removePartialFile(ctx, config(address.port), { connection: gone, path: file }, 1_500)).resolves.toBeUndefined();
      // The bound, plus at most the 5 s that ending a connection may wait.
      expect(Date.now() - started).toBeLessThan(1_500 + 5_000 + 1_000);
      const warnings = ctx.lines.filter((line) => line.level === 'warn');
      expect(warnings.map((line) => line.meta)).toEqual([
        expect.objectContaining({ authority: `127.0.0.1:${address.port}`, path: file, errorClass: 'operational' }),
      ]);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('removes the file over a fresh connection when its own is gone', async () => {
    const ctx = mockContext({ privateKey: sshd.privateKey });
    const gone = await connectSftp(ctx, config(sshd.port));
    await gone.end();
    const file = path.join(sshd.root, '.fresh.pgp.0123456789abcdef.airlock-partial');
    await writeFile(file, 'partial');
    await removePartialFile(ctx, config(sshd.port), { connection: gone, path: file });
    const fresh = await connectSftp(ctx, config(sshd.port));
    try {
      const { sftp } = fresh;
      const exists = await new Promise<boolean>((resolve) => sftp.lstat(file, (error) => resolve(!error)));
      expect(exists).toBe(false);
    } finally {
      await fresh.end();
    }
    expect(ctx.lines.filter((line) => line.level === 'warn')).toEqual([]);
  });
});
