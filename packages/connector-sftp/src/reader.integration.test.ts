import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSftpServer, startSshd, type TestSshd } from '@airlock/testing';
import { readLending } from '@airlock/testing/connector-contract';
import { connectSftp, SftpReadStream, type PipelineOptions, type SftpConnection } from './index.ts';
import { mockContext, sha256, sha256Of } from './test-context.ts';

let sshd: TestSshd;
let connection: SftpConnection;

beforeAll(async () => {
  sshd = await startSshd();
  connection = await connectSftp(mockContext({ privateKey: sshd.privateKey }), {
    host: sshd.host,
    port: sshd.port,
    hostKey: sshd.hostKeyFingerprint,
    username: sshd.username,
    credentialRef: 'test-sftp',
    connectTimeoutMs: 20_000,
  });
});

afterAll(async () => {
  await connection.end();
  await sshd.stop();
});

function openRemote(file: string, options: PipelineOptions = {}): Promise<SftpReadStream> {
  return SftpReadStream.open(connection.sftp, {
    ...options,
    path: file,
    authority: connection.authority,
    maxReadLength: connection.capabilities.maxReadLength,
  });
}

describe('pipelined reads from OpenSSH', () => {
  it('uses the request size the server announces', () => {
    // OpenSSH announces limits@openssh.com; its sftp-server reads up to 256 KiB minus headers.
    expect(connection.capabilities.maxReadLength).toBeGreaterThan(200 * 1024);
    expect(connection.capabilities.fsync).toBe(true);
  });

  it('reads 0 bytes, 1 byte, exactly one request and many requests plus a remainder byte for byte', async () => {
    await writeFile(path.join(sshd.root, 'probe.bin'), 'x');
    const probe = await openRemote(path.join(sshd.root, 'probe.bin'));
    const requestSize = probe.requestSize;
    probe.destroy();
    const sizes = [0, 1, requestSize - 1, requestSize, requestSize + 1, 5 * 1024 * 1024 + 123];
    for (const size of sizes) {
      const content = randomBytes(size);
      const file = path.join(sshd.root, `file-${size}.bin`);
      await writeFile(file, content);
      const reader = await openRemote(file);
      expect({ size, sha: await sha256(reader) }).toEqual({ size, sha: sha256Of(content) });
      expect(reader.peakOutstandingBytes).toBeLessThanOrEqual(reader.windowBytes);
      if (size > 4 * requestSize) {
        // More than one request was in flight at once: the reads were pipelined.
        expect(reader.peakOutstandingBytes).toBeGreaterThan(requestSize);
      }
    }
  });

  it('stops asking the server for more while the consumer is slow', async () => {
    const size = 8 * 1024 * 1024;
    const file = path.join(sshd.root, 'slow.bin');
    const content = randomBytes(size);
    await writeFile(file, content);
    const reader = await openRemote(file, { maxRequests: 4 });
    let consumed = 0;
    let ahead = 0;
    const parts: Buffer[] = [];
    for await (const chunk of reader) {
      const buffer = chunk as Buffer;
      parts.push(buffer);
      consumed += buffer.length;
      if (parts.length <= 4) {
        // A reader without backpressure would request the whole file while we sleep.
        await sleep(150);
        ahead = Math.max(ahead, reader.bytesRequested - consumed);
        expect(reader.outstandingBytes).toBeLessThanOrEqual(reader.windowBytes);
      }
    }
    expect(sha256Of(Buffer.concat(parts))).toBe(sha256Of(content));
    // Requested but not yet consumed: the window, plus what sits in the stream's own buffer.
    expect(ahead).toBeLessThanOrEqual(reader.windowBytes + 2 * reader.requestSize);
    expect(ahead).toBeLessThan(size / 2);
    expect(reader.peakOutstandingBytes).toBeLessThanOrEqual(reader.windowBytes);
  });

  it('reads into the buffers handed back, and never into one still lent', async () => {
    const content = randomBytes(6 * 1024 * 1024 + 321);
    const file = path.join(sshd.root, 'lent.bin');
    await writeFile(file, content);
    const reader = await openRemote(file, { maxRequests: 4 });
    const read = await readLending(reader);
    expect(read.sha256).toBe(sha256Of(content));
    expect(read.keptIntact).toBe(true);
    // The window, the kept chunks, and a few on their way: not one buffer per request.
    expect(read.chunks).toBeGreaterThan(20);
    expect(reader.buffersAllocated).toBeLessThanOrEqual(reader.maxRequests + read.kept + 4);
    expect(reader.buffersAllocated).toBeLessThan(read.chunks);
  });

  it('allocates a buffer per request for a consumer that hands nothing back', async () => {
    const content = randomBytes(3 * 1024 * 1024);
    const file = path.join(sshd.root, 'unlent.bin');
    await writeFile(file, content);
    const reader = await openRemote(file, { maxRequests: 4 });
    expect(await sha256(reader)).toBe(sha256Of(content));
    expect(reader.buffersAllocated).toBeGreaterThanOrEqual(Math.floor(content.length / reader.requestSize));
  });

  it('fails with an OperationalError, keeping the cause, when the file cannot be opened', async () => {
    await expect(openRemote(path.join(sshd.root, 'missing.bin'))).rejects.toMatchObject({
      name: 'OperationalError',
      retryable: true,
      cause: expect.objectContaining({ message: expect.any(String) }),
    });
  });
});

describe('pipelined reads from a server that answers short', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'airlock-short-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('asks again for the rest of every short answer and delivers the exact bytes in order', async () => {
    const content = randomBytes(1024 * 1024 + 5);
    await writeFile(path.join(root, 'short.bin'), content);
    await using server = await startSftpServer({ root, password: 'pw', hostile: { shortReads: true } });
    const short = await connectSftp(mockContext({ password: 'pw' }), {
      host: server.host,
      port: server.port,
      hostKey: server.hostKeyFingerprint,
      username: 'airlock',
      credentialRef: 'short',
      connectTimeoutMs: 20_000,
    });
    try {
      const reader = await SftpReadStream.open(short.sftp, {
        maxRequests: 8,
        path: '/short.bin',
        authority: short.authority,
        maxReadLength: short.capabilities.maxReadLength,
      });
      expect(await sha256(reader)).toBe(sha256Of(content));
      expect(server.shortReads).toBeGreaterThan(10);
      // Every short answer cost a re-request, so more was asked than the file holds.
      expect(reader.bytesRequested).toBeGreaterThan(content.length);
    } finally {
      await short.end();
    }
  });
});
