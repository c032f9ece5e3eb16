import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DestinationSession, PendingDelivery } from '@airlock/connector-api';
import { ConflictError, HostKeyMismatchError, NotAllowedError, UserError } from '@airlock/errors';
import { generateSshKeyPair, sshKeygenFingerprint, startCutProxy, startSftpServer, startSshd, type TestSshd } from '@airlock/testing';
import { sftpDestination, SftpWriteStream } from './index.ts';
import { mockContext, sha256Of } from './test-context.ts';

let sshd: TestSshd;
let otherPin: string;
let out: string;
let session: DestinationSession;

beforeAll(async () => {
  sshd = await startSshd();
  otherPin = await sshKeygenFingerprint(generateSshKeyPair().public);
  out = path.join(sshd.root, 'out');
  await mkdir(out);
  session = await sftpDestination.bind(sshdConfig()).connect(mockContext({ privateKey: sshd.privateKey }));
});

afterAll(async () => {
  await session.close();
  await sshd.stop();
});

beforeEach(async () => {
  for (const name of await readdir(out)) await rm(path.join(out, name), { force: true });
});

function sshdConfig(overrides: Record<string, unknown> = {}): unknown {
  return {
    host: sshd.host,
    port: sshd.port,
    hostKey: sshd.hostKeyFingerprint,
    username: sshd.username,
    credentialRef: 'test-sftp',
    directory: out,
    ...overrides,
  };
}

/** Feeds `content` in chunks of `chunkSize` through the delivery's stream, with backpressure. */
async function writeAll(delivery: PendingDelivery, content: Buffer, chunkSize = 64 * 1024): Promise<void> {
  const chunks = function* (): Generator<Buffer> {
    for (let at = 0; at < content.length; at += chunkSize) yield content.subarray(at, at + chunkSize);
  };
  await pipeline(Readable.from(chunks()), delivery.stream);
}

describe('sftp destination against OpenSSH', () => {
  it('declares its claim without I/O', () => {
    expect(sftpDestination.bind(sshdConfig({ port: 2222, directory: '/in//./x' })).claims()).toEqual([
      { action: 'write', scheme: 'sftp', authority: '127.0.0.1:2222', path: '/in/x', hostKey: sshd.hostKeyFingerprint },
    ]);
  });

  it.each([
    ['an empty file', 0],
    ['a small file', 1_000],
    ['a 5 MiB file', 5 * 1024 * 1024 + 7],
  ])('delivers %s with the exact bytes and mode, visible only after commit', async (_label, size) => {
    const content = randomBytes(size);
    const delivery = await session.begin('report.pgp');
    await writeAll(delivery, content);
    const final = path.join(out, 'report.pgp');
    // Every byte is on the server, but only under the hidden partial name.
    expect(existsSync(final)).toBe(false);
    const partials = await readdir(out);
    expect(partials).toHaveLength(1);
    expect(partials[0]).toMatch(/^\.report\.pgp\.[0-9a-f]{16}\.airlock-partial$/);
    expect(await delivery.commit()).toEqual({ location: final });
    expect(await readdir(out)).toEqual(['report.pgp']);
    const onDisk = await readFile(final);
    expect({ size: onDisk.length, sha: sha256Of(onDisk) }).toEqual({ size, sha: sha256Of(content) });
    expect((await stat(final)).mode & 0o777).toBe(0o640);
  });

  it('gathers small chunks and keeps the writes in order', async () => {
    const content = randomBytes(3 * 1024 * 1024 + 11);
    const delivery = await session.begin('small-chunks.pgp');
    await writeAll(delivery, content, 1_000);
    await delivery.commit();
    expect(sha256Of(await readFile(path.join(out, 'small-chunks.pgp')))).toBe(sha256Of(content));
  });

  it('holds the producer back: it never runs more than the window ahead of the server', async () => {
    const content = randomBytes(16 * 1024 * 1024);
    const delivery = await session.begin('paced.pgp');
    const writer = delivery.stream;
    if (!(writer instanceof SftpWriteStream)) throw new Error('not a pipelined SFTP stream');
    let produced = 0;
    let ahead = 0;
    const chunkSize = 256 * 1024;
    const chunks = function* (): Generator<Buffer> {
      for (let at = 0; at < content.length; at += chunkSize) {
        ahead = Math.max(ahead, produced - writer.bytesAcknowledged);
        expect(writer.requestsInFlight).toBeLessThanOrEqual(writer.maxRequests);
        produced += chunkSize;
        yield content.subarray(at, at + chunkSize);
      }
    };
    await pipeline(Readable.from(chunks()), writer);
    await delivery.commit();
    // In flight, one request being gathered, the stream's buffer and the chunk in hand.
    const bound = (writer.maxRequests + 2) * writer.requestSize + writer.writableHighWaterMark + chunkSize;
    expect(ahead).toBeLessThanOrEqual(bound);
    expect(sha256Of(await readFile(path.join(out, 'paced.pgp')))).toBe(sha256Of(content));
  });

  it('abort removes the partial file, and can be called again', async () => {
    const delivery = await session.begin('aborted.pgp');
    delivery.stream.write(randomBytes(300_000));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await delivery.abort();
    await delivery.abort();
    expect(await readdir(out)).toEqual([]);
  });

  it('refuses to replace an existing file, leaves it untouched and removes the partial file', async () => {
    const existing = path.join(out, 'taken.pgp');
    await writeFile(existing, 'the earlier delivery');
    const delivery = await session.begin('taken.pgp');
    await writeAll(delivery, randomBytes(10_000));
    await expect(delivery.commit()).rejects.toThrow(ConflictError);
    expect(await readFile(existing, 'utf8')).toBe('the earlier delivery');
    expect(await readdir(out)).toEqual(['taken.pgp']);
    await delivery.abort();
  });

  describe('when the upload\'s connection is cut', () => {
    const CUT_AFTER = 512 * 1024;

    /** Starts a delivery through a proxy that cuts every connection after CUT_AFTER uploaded bytes, and cuts it. */
    async function cutDelivery(proxyPort: number, ctx: ReturnType<typeof mockContext>): Promise<{ delivery: PendingDelivery; close: () => Promise<void> }> {
      const cutSession = await sftpDestination.bind(sshdConfig({ port: proxyPort })).connect(ctx);
      const delivery = await cutSession.begin('cut.pgp');
      await expect(writeAll(delivery, randomBytes(4 * CUT_AFTER))).rejects.toMatchObject({ name: 'OperationalError', retryable: true });
      return { delivery, close: () => cutSession.close() };
    }

    it('abort removes exactly its partial file over a new connection', async () => {
      // Someone else's temporary file: never swept.
      await writeFile(path.join(out, '.other.pgp.0123456789abcdef.airlock-partial'), 'not ours');
      await using proxy = await startCutProxy({ targetPort: sshd.port, direction: 'upload', cutAfter: CUT_AFTER });
      const ctx = mockContext({ privateKey: sshd.privateKey });
      const { delivery, close } = await cutDelivery(proxy.port, ctx);
      try {
        expect(proxy.cuts).toBe(1);
        const partial = (await readdir(out)).filter((name) => name.startsWith('.cut.pgp.'));
        expect(partial).toHaveLength(1);
        await delivery.abort();
        expect(await readdir(out)).toEqual(['.other.pgp.0123456789abcdef.airlock-partial']);
        expect(ctx.lines.filter((line) => line.message === 'partial file removed over a new connection')).toHaveLength(1);
        // The removal's connection is short: it got through the same proxy uncut.
        expect(proxy.cuts).toBe(1);
      } finally {
        await close();
      }
    });

    it('abort neither throws nor hangs when the server stays unreachable, and says what it left', async () => {
      const proxy = await startCutProxy({ targetPort: sshd.port, direction: 'upload', cutAfter: CUT_AFTER });
      const ctx = mockContext({ privateKey: sshd.privateKey });
      const { delivery, close } = await cutDelivery(proxy.port, ctx);
      try {
        await proxy.close();
        const started = Date.now();
        await expect(delivery.abort()).resolves.toBeUndefined();
        expect(Date.now() - started).toBeLessThan(15_000);
        const [left] = await readdir(out);
        expect(left).toMatch(/^\.cut\.pgp\.[0-9a-f]{16}\.airlock-partial$/);
        const warnings = ctx.lines.filter((line) => line.level === 'warn');
        expect(warnings).toHaveLength(1);
        expect(warnings[0]?.meta).toMatchObject({ authority: `127.0.0.1:${proxy.port}`, path: path.join(out, left ?? ''), errorClass: 'operational' });
      } finally {
        await close();
      }
    });
  });

  it.each(['../escape.pgp', '/etc/passwd', 'a/b', '..', '.', '', 'nul\u0000.pgp'])('refuses the unsafe name %j', async (name) => {
    await expect(session.begin(name)).rejects.toThrow(NotAllowedError);
    expect(await readdir(out)).toEqual([]);
  });

  it('refuses a directory that is not a directory', async () => {
    await writeFile(path.join(sshd.root, 'plain-file'), 'x');
    const ctx = mockContext({ privateKey: sshd.privateKey });
    await expect(sftpDestination.bind(sshdConfig({ directory: path.join(sshd.root, 'plain-file') })).connect(ctx)).rejects.toThrow(
      UserError,
    );
  });

  it('refuses a server whose host key is not the pinned one', async () => {
    const ctx = mockContext({ privateKey: sshd.privateKey });
    await expect(sftpDestination.bind(sshdConfig({ hostKey: otherPin })).connect(ctx)).rejects.toThrow(HostKeyMismatchError);
  });
});

describe('sftp destination against the in-process server', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'airlock-dest-'));
    await mkdir(path.join(root, 'in'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const config = (port: number, hostKey: string): unknown => ({
    host: '127.0.0.1',
    port,
    hostKey,
    username: 'airlock',
    credentialRef: 'in-process',
    directory: '/in',
  });

  it('sends no credential to a server with the wrong host key', async () => {
    await using server = await startSftpServer({ root, password: 'pw', writable: true });
    await expect(sftpDestination.bind(config(server.port, otherPin)).connect(mockContext({ password: 'pw' }))).rejects.toThrow(
      HostKeyMismatchError,
    );
    expect(server.authAttempts).toBe(0);
  });

  it('delivers without the OpenSSH extensions (no fsync, plain RENAME)', async () => {
    await using server = await startSftpServer({ root, password: 'pw', writable: true });
    const destination = await sftpDestination.bind(config(server.port, server.hostKeyFingerprint)).connect(mockContext({ password: 'pw' }));
    try {
      const content = randomBytes(2 * 1024 * 1024 + 3);
      const delivery = await destination.begin('plain.pgp');
      await writeAll(delivery, content);
      expect(await delivery.commit()).toEqual({ location: '/in/plain.pgp' });
      expect(sha256Of(await readFile(path.join(root, 'in', 'plain.pgp')))).toBe(sha256Of(content));
      expect(server.requests.filter((request) => request.op === 'rename')).toEqual([{ op: 'rename', path: '/in/plain.pgp' }]);
    } finally {
      await destination.close();
    }
  });

  it('leaves nothing under the final name when the connection is cut mid-upload', async () => {
    const server = await startSftpServer({ root, password: 'pw', writable: true });
    const ctx = mockContext({ password: 'pw' });
    const destination = await sftpDestination.bind(config(server.port, server.hostKeyFingerprint)).connect(ctx);
    try {
      const delivery = await destination.begin('cut.pgp');
      let sent = 0;
      const chunks = async function* (): AsyncGenerator<Buffer> {
        for (let i = 0; i < 256; i++) {
          if (sent === 1024 * 1024) void server.stop();
          sent += 64 * 1024;
          yield randomBytes(64 * 1024);
        }
      };
      await expect(pipeline(Readable.from(chunks()), delivery.stream)).rejects.toMatchObject({
        name: 'OperationalError',
        retryable: true,
      });
      expect(sent).toBeLessThan(256 * 64 * 1024);
      await expect(delivery.commit()).rejects.toThrow();
      await delivery.abort();
      expect(existsSync(path.join(root, 'in', 'cut.pgp'))).toBe(false);
    } finally {
      await destination.close();
      await server.stop();
    }
  });

  it('fails the commit, without hanging, when the connection drops after the last write', async () => {
    const server = await startSftpServer({ root, password: 'pw', writable: true });
    const destination = await sftpDestination.bind(config(server.port, server.hostKeyFingerprint)).connect(mockContext({ password: 'pw' }));
    try {
      const delivery = await destination.begin('late.pgp');
      await writeAll(delivery, randomBytes(100_000));
      await server.stop();
      await expect(delivery.commit()).rejects.toMatchObject({ name: 'OperationalError', retryable: true });
      expect(existsSync(path.join(root, 'in', 'late.pgp'))).toBe(false);
    } finally {
      await destination.close();
      await server.stop();
    }
  });
});
