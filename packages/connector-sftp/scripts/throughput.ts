/**
 * A by-hand throughput check of SFTP reads against a local OpenSSH sshd: the pipelined reader at
 * several window shapes, ssh2's one-request-at-a-time read stream (what the source used before),
 * and OpenSSH's own `sftp` getting the same file. Prints one JSON object. Not a test: figures on a
 * shared machine are noisy, so compare them only with each other.
 *
 * Loopback has no latency, so pipelining barely matters there; `--rtt-ms` puts an in-process TCP
 * relay in front of sshd that delays every segment by half the round trip in each direction.
 *
 *   npx tsx scripts/throughput.ts [--mib 256] [--runs 2] [--rtt-ms 0]
 */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import ssh2 from 'ssh2';
import type { SFTPWrapper } from 'ssh2';
import { publicKeyLine, startSshd, type TestSshd } from '@airlock/testing';
import { connectSftp, fingerprintOf, fingerprintsEqual, SftpReadStream, type PipelineOptions } from '../src/index.ts';
import { mockContext } from '../src/test-context.ts';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    runs: { type: 'string', default: '2' },
    'rtt-ms': { type: 'string', default: '0' },
  },
});
const rttMs = Number(values['rtt-ms']);
const MIB = 1024 * 1024;
const fileBytes = Number(values.mib) * MIB;
const runs = Number(values.runs);
if (!Number.isInteger(fileBytes) || fileBytes <= 0 || !Number.isInteger(runs) || runs < 1 || runs > 10) {
  throw new Error('--mib and --runs must be positive integers (runs at most 10)');
}
if (!Number.isInteger(rttMs) || rttMs < 0 || rttMs > 1_000) throw new Error('--rtt-ms must be an integer from 0 to 1000');

/** A loopback TCP relay to `port` that delays each direction by `delayMs`, keeping byte order. */
async function startDelayRelay(port: number, delayMs: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const forward = (from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => setTimeout(() => to.write(chunk), delayMs));
    from.on('end', () => setTimeout(() => to.end(), delayMs));
    from.on('error', () => to.destroy());
  };
  const server = createServer((inbound) => {
    const outbound = connect(port, '127.0.0.1');
    for (const socket of [inbound, outbound]) {
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
    forward(inbound, outbound);
    forward(outbound, inbound);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('relay has no port');
  return {
    port: address.port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function drain(stream: Readable): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  return bytes;
}

/** Best of `runs`, in MB/s (10^6 bytes per second, as `sftp` and `dd` count). */
async function measure(read: () => Promise<number>): Promise<number> {
  let best = 0;
  for (let run = 0; run < runs; run++) {
    const started = process.hrtime.bigint();
    const bytes = await read();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (bytes !== fileBytes) throw new Error(`read ${bytes} bytes, expected ${fileBytes}`);
    best = Math.max(best, bytes / 1e6 / seconds);
  }
  return Math.round(best * 10) / 10;
}

async function writeRandomFile(file: string): Promise<void> {
  const out = createWriteStream(file);
  for (let written = 0; written < fileBytes; written += 16 * MIB) {
    if (!out.write(randomBytes(Math.min(16 * MIB, fileBytes - written)))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** Learns the host key over the wire, checking it against the fixture's fingerprint, then hangs up. */
function hostKeyLine(sshd: TestSshd): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let line: string | undefined;
    client.on('error', () => (line === undefined ? reject(new Error('could not read the host key')) : resolve(line)));
    client.on('close', () => (line === undefined ? reject(new Error('could not read the host key')) : resolve(line)));
    client.connect({
      host: sshd.host,
      port: sshd.port,
      username: 'nobody',
      hostVerifier: (key: Buffer): boolean => {
        if (fingerprintsEqual(fingerprintOf(key), sshd.hostKeyFingerprint)) line = publicKeyLine(key);
        return false;
      },
    });
  });
}

function opensshGet(args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('sftp', args, { timeout: 600_000 }, (error, _stdout, stderr) =>
      error ? reject(new Error(`sftp failed: ${stderr.trim() || error.message}`)) : resolve(fileBytes),
    );
  });
}

async function oneAtATime(sftp: SFTPWrapper, file: string): Promise<number> {
  // What the source used before: ssh2's read stream, 256 KiB per request, one in flight.
  const stream = sftp.createReadStream(file, { highWaterMark: 256 * 1024 });
  const closed = once(stream, 'close');
  const bytes = await drain(stream);
  // It closes its handle after 'end'; hanging up before that would fail the CLOSE.
  await closed;
  return bytes;
}

const sshd = await startSshd();
// Without a delay, clients talk to sshd directly: the relay would only add its own cost.
const relay = rttMs > 0 ? await startDelayRelay(sshd.port, rttMs / 2) : { port: sshd.port, close: async () => undefined };
const scratch = await mkdtemp(path.join(tmpdir(), 'airlock-throughput-'));
try {
  const remote = path.join(sshd.root, 'big.bin');
  await writeRandomFile(remote);
  const connection = await connectSftp(mockContext({ privateKey: sshd.privateKey }), {
    host: sshd.host,
    port: relay.port,
    hostKey: sshd.hostKeyFingerprint,
    username: sshd.username,
    credentialRef: 'throughput',
    connectTimeoutMs: 20_000,
  });
  const shapes: PipelineOptions[] = [
    { maxRequests: 1 },
    { maxRequests: 4 },
    { maxRequests: 8 },
    { maxRequests: 16 },
    { maxRequests: 32 },
    { maxRequests: 64 },
    { requestSize: 64 * 1024, maxRequests: 64 },
    { requestSize: 32 * 1024, maxRequests: 64 },
  ];
  const pipelined: Array<{ requestSize: number; maxRequests: number; mbPerSecond: number }> = [];
  for (const shape of shapes) {
    let opened: SftpReadStream | undefined;
    const mbPerSecond = await measure(async () => {
      opened = await SftpReadStream.open(connection.sftp, {
        ...shape,
        path: remote,
        authority: connection.authority,
        maxReadLength: connection.capabilities.maxReadLength,
      });
      return drain(opened);
    });
    if (opened !== undefined) pipelined.push({ requestSize: opened.requestSize, maxRequests: opened.maxRequests, mbPerSecond });
  }
  const createReadStream = await measure(() => oneAtATime(connection.sftp, remote));
  await connection.end();

  const knownHosts = path.join(scratch, 'known_hosts');
  const identity = path.join(scratch, 'id');
  const batch = path.join(scratch, 'batch');
  await writeFile(knownHosts, `[${sshd.host}]:${relay.port} ${await hostKeyLine(sshd)}\n`, { mode: 0o600 });
  await writeFile(identity, sshd.privateKey, { mode: 0o600 });
  // The benchmark's random bytes go to /dev/null, never to a file.
  await writeFile(batch, `get ${remote} /dev/null\n`, { mode: 0o600 });
  const opensshSftp = await measure(() =>
    opensshGet([
      '-b', batch,
      '-o', 'BatchMode=yes',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${knownHosts}`,
      '-i', identity,
      '-P', String(relay.port),
      `${sshd.username}@${sshd.host}`,
    ]),
  );
  console.log(
    JSON.stringify(
      {
        fileBytes,
        runs,
        rttMs,
        unit: 'MB/s (10^6 bytes per second), best of runs',
        maxReadLength: connection.capabilities.maxReadLength,
        pipelined,
        createReadStream,
        opensshSftp,
      },
      null,
      2,
    ),
  );
} finally {
  await rm(scratch, { recursive: true, force: true });
  await relay.close();
  await sshd.stop();
}
