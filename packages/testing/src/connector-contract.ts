/**
 * The connector conformance suite: `describeSourceContract` and `describeDestinationContract` run
 * the invariants the connector contract promises against a connector and its real server, the way
 * every backend of rclone runs `fstests`. A connector package calls one of them from a test file
 * (`src/contract.integration.test.ts`) with an environment that starts its server and can look at
 * what is stored there behind the connector's back; `npm run -s test:connectors` runs them all.
 *
 * Every case is a test that can fail on its own. A case that cannot apply to a connector (a
 * generated output cannot change under the reader; a connector with no network has no connection
 * to cut) is not registered at all for it, rather than skipped, so the count is what ran.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chunkReleaser, type ConnectorContext, type DestinationSession, type RegisteredDestination, type RegisteredSource, type SourceFile, type SourceSession } from '@airlock/connector-api';
import { startCutProxy } from './cut-proxy.ts';
import { freePort } from './ports.ts';

/** Titles of the suites start with this, so the runner can count what the suite ran. */
export const CONTRACT_TITLE = 'connector contract:';

/** The big file: much larger than the memory a delivery may hold. Default 256 MiB. */
const DEFAULT_BIG_BYTES = 256 * 2 ** 20;
/** How much heap and buffer memory may grow while the big file streams through. Default 96 MiB. */
const DEFAULT_MEMORY_LIMIT = 96 * 2 ** 20;
const CHUNK = 2 ** 20;

/** For a network connector: where its server listens, and the same config pointed at another port. */
export interface NetworkAccess {
  readonly port: number;
  via(port: number): unknown;
}

interface ContractEnvBase {
  /** A context as the agent would give it: secrets and this connector's local-policy entries. */
  context(signal?: AbortSignal): ConnectorContext;
  /** Every entry at the place the config names, as the server stores it: hidden partial files included. */
  entries(): Promise<string[]>;
  /** Empties that place between cases. */
  clear(): Promise<void>;
  readonly network?: NetworkAccess;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface SourceContractEnv extends ContractEnvBase {
  readonly connector: RegisteredSource;
  /** A config selecting everything `put` creates. */
  readonly config: unknown;
  /**
   * Creates `name` on the server with `data`, or with that many deterministic bytes, behind the
   * connector's back. Returns the SHA-256 (hex) of the stream `open` must then give.
   */
  put(name: string, data: Buffer | number): Promise<string>;
  /** Changes `name` after it was listed: new bytes and a new mtime. Only for sources whose files can change. */
  change?(name: string): Promise<void>;
}

export interface DestinationContractEnv extends ContractEnvBase {
  readonly connector: RegisteredDestination;
  /** A config delivering into the place `entries` lists. */
  readonly config: unknown;
  /** Creates `name` there directly, as someone else would. */
  put(name: string, data: Buffer): Promise<void>;
  /** The bytes stored under `name`. */
  read(name: string): Promise<Buffer>;
  /** The size stored under `name`, without reading it. */
  size(name: string): Promise<number>;
}

export interface ContractOptions {
  /** Bytes of the file streamed through for the memory case. Default 256 MiB. */
  readonly bigBytes?: number;
  /** Allowed growth of heap plus buffers while it streams. Default 96 MiB. */
  readonly memoryLimitBytes?: number;
  /** The source's files can change between listing and reading (not a generated output). */
  readonly changes?: boolean;
  /** The environment provides `network`: a connection can be cut. */
  readonly network?: boolean;
  /** The source lends its chunks (`lendChunks`), through the stream `open` returns. */
  readonly lends?: boolean;
}

/** 1 MiB of fixed random bytes, repeated: a big stream that allocates nothing per chunk. */
const PATTERN = randomBytes(CHUNK);

/** `bytes` bytes of the repeating pattern. */
export function patternStream(bytes: number): Readable {
  return Readable.from(
    (function* () {
      for (let at = 0; at < bytes; at += CHUNK) yield at + CHUNK <= bytes ? PATTERN : PATTERN.subarray(0, bytes - at);
    })(),
  );
}

/** The SHA-256 of `patternStream(bytes)`, computed without holding it. */
export function patternSha256(bytes: number): string {
  const hash = createHash('sha256');
  for (let at = 0; at < bytes; at += CHUNK) hash.update(at + CHUNK <= bytes ? PATTERN : PATTERN.subarray(0, bytes - at));
  return hash.digest('hex');
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Samples heap plus ArrayBuffer memory (where Buffers live) until stopped; reports the peak growth. */
function watchMemory(): { stop(): number } {
  const used = () => {
    const usage = process.memoryUsage();
    return usage.heapUsed + usage.arrayBuffers;
  };
  const baseline = used();
  let peak = baseline;
  const timer = setInterval(() => (peak = Math.max(peak, used())), 10);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, used()) - baseline;
    },
  };
}

/** Whether a promise of a thenable: claims must come back as plain values. */
function isThenable(value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'then' in value;
}

/** Reads a stream to its end, hashing it; rejects as the stream does. */
async function digestOf(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        bytes += chunk.length;
        callback();
      },
    }),
  );
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Reads a stream that lends its chunks (`lendChunks`) to its end, hashing it. Every fifth chunk is
 * kept and never handed back, with a copy of what it held on arrival; each other chunk is handed
 * back twice, after a subarray of it and a buffer never lent. `keptIntact`: no kept chunk was read
 * into again. A double release that queued one buffer twice would have two reads share it.
 */
export async function readLending(stream: Readable): Promise<{ sha256: string; chunks: number; kept: number; keptIntact: boolean }> {
  const release = chunkReleaser(stream);
  if (release === undefined) throw new Error('the stream does not lend its chunks');
  const hash = createHash('sha256');
  const kept: Array<{ chunk: Buffer; copy: Buffer }> = [];
  let chunks = 0;
  for await (const value of stream) {
    const chunk = value as Buffer;
    hash.update(chunk);
    chunks += 1;
    if (chunks % 5 === 0) {
      kept.push({ chunk, copy: Buffer.from(chunk) });
      continue;
    }
    release(chunk.subarray(1));
    release(Buffer.alloc(chunk.length));
    release(chunk);
    release(chunk);
  }
  return { sha256: hash.digest('hex'), chunks, kept: kept.length, keptIntact: kept.every(({ chunk, copy }) => chunk.equals(copy)) };
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

/** A port on loopback nothing listens on: a config pointed there fails any I/O it tries. */
async function deadPort(): Promise<number> {
  return freePort();
}

export function describeSourceContract(name: string, setup: () => Promise<SourceContractEnv>, options: ContractOptions = {}): void {
  const bigBytes = options.bigBytes ?? DEFAULT_BIG_BYTES;
  const memoryLimit = options.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT;
  describe(`${CONTRACT_TITLE} ${name} source`, () => {
    let env: SourceContractEnv;
    let session: SourceSession | undefined;
    const connect = async (config: unknown = env.config, ctx = env.context()) => {
      session = await env.connector.bind(config).connect(ctx);
      return session;
    };
    const listed = async (s: SourceSession, fileName: string): Promise<SourceFile> => {
      const files = await s.list();
      const file = files.find((candidate) => candidate.name === fileName || candidate.path.endsWith(`/${fileName}`));
      // A generated output (a script's) has the name its config gives, whatever was put.
      const [only] = files;
      if (!file && files.length === 1 && only?.generated === true) return only;
      if (!file) throw new Error(`${fileName} was not listed`);
      return file;
    };

    beforeAll(async () => {
      env = await setup();
    });
    afterAll(async () => {
      await env[Symbol.asyncDispose]();
    });
    beforeEach(async () => {
      await session?.close().catch(() => undefined);
      session = undefined;
      await env.clear();
    });

    it('computes its claims without I/O: plain values of its own scheme, the same every time', async () => {
      const config = options.network && env.network ? env.network.via(await deadPort()) : env.config;
      const bound = env.connector.bind(config);
      const claims = bound.claims();
      expect(isThenable(claims)).toBe(false);
      expect(claims.length).toBeGreaterThan(0);
      for (const claim of claims) expect(claim.scheme).toBe(env.connector.scheme.name);
      expect(bound.claims()).toEqual(claims);
      const claim = bound.claimFor({ path: claims[0]?.path ?? '/', name: 'x', size: 0, mtimeMs: 0 });
      expect(isThenable(claim)).toBe(false);
      expect(claim.scheme).toBe(env.connector.scheme.name);
    });

    it('gives exactly the bytes of a listed file', async () => {
      const expected = await env.put('small.csv', randomBytes(100_000));
      const s = await connect();
      const file = await listed(s, 'small.csv');
      expect(await digestOf(await s.open(file))).toMatchObject({ sha256: expected });
    });

    if (options.changes) {
      it('fails with ConflictError for a file that changed since it was listed, and changes nothing', async () => {
        await env.put('moving.csv', randomBytes(50_000));
        const s = await connect();
        const file = await listed(s, 'moving.csv');
        await env.change?.('moving.csv');
        const before = await env.entries();
        const read = s.open(file).then(digestOf);
        await expect(read).rejects.toMatchObject({ name: 'ConflictError' });
        if (s.remove) await expect(s.remove(file)).rejects.toMatchObject({ name: 'ConflictError' });
        expect(await env.entries()).toEqual(before);
      });
    }

    it(`holds back while not read, and reads ${bigBytes >> 20} MiB in bounded memory`, async () => {
      const expected = await env.put('big.bin', bigBytes);
      const s = await connect();
      const file = await listed(s, 'big.bin');
      const memory = watchMemory();
      const stream = await s.open(file);
      // Not reading for a while: a source that keeps pulling would fill its buffer meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const buffered = stream.readableLength;
      const { sha256, bytes } = await digestOf(stream);
      const grown = memory.stop();
      expect(buffered).toBeLessThanOrEqual(16 * 2 ** 20);
      expect({ bytes, sha256 }).toEqual({ bytes: expect.any(Number), sha256: expected });
      expect(grown).toBeLessThan(memoryLimit);
    });

    if (options.lends) {
      it('lends its chunks, and reads into none it was not given back', async () => {
        const expected = await env.put('lent.bin', 6 * 2 ** 20 + 321);
        const s = await connect();
        const read = await readLending(await s.open(await listed(s, 'lent.bin')));
        expect(read.sha256).toBe(expected);
        expect(read.chunks).toBeGreaterThan(10);
        expect(read.keptIntact).toBe(true);
      });
    }

    if (options.network) {
      it('ends in an error, never a short file, when its connection is cut, and leaves the source as it was', async () => {
        const network = env.network;
        if (!network) throw new Error('the environment has no network access');
        const expected = await env.put('cut.bin', 8 * 2 ** 20);
        const before = await env.entries();
        await using proxy = await startCutProxy({ targetPort: network.port, direction: 'download', cutAfter: 2 * 2 ** 20 });
        const s = await connect(network.via(proxy.port));
        const file = await listed(s, 'cut.bin');
        const outcome = await s.open(file).then(digestOf).then(
          (result) => ({ ended: result.sha256 === expected ? 'whole' : 'short' }),
          (error: unknown) => ({ failed: errorName(error) }),
        );
        expect(outcome).toEqual({ failed: expect.any(String) });
        expect(proxy.cuts).toBeGreaterThanOrEqual(1);
        expect(await env.entries()).toEqual(before);
      });
    }
  });
}

export function describeDestinationContract(name: string, setup: () => Promise<DestinationContractEnv>, options: ContractOptions = {}): void {
  const bigBytes = options.bigBytes ?? DEFAULT_BIG_BYTES;
  const memoryLimit = options.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT;
  describe(`${CONTRACT_TITLE} ${name} destination`, () => {
    let env: DestinationContractEnv;
    let session: DestinationSession | undefined;
    const connect = async (config: unknown = env.config) => {
      session = await env.connector.bind(config).connect(env.context());
      return session;
    };

    beforeAll(async () => {
      env = await setup();
    });
    afterAll(async () => {
      await env[Symbol.asyncDispose]();
    });
    beforeEach(async () => {
      await session?.close().catch(() => undefined);
      session = undefined;
      await env.clear();
    });

    it('computes its claims without I/O: plain values of its own scheme, the same every time', async () => {
      const config = options.network && env.network ? env.network.via(await deadPort()) : env.config;
      const bound = env.connector.bind(config);
      const claims = bound.claims();
      expect(isThenable(claims)).toBe(false);
      expect(claims.length).toBeGreaterThan(0);
      for (const claim of claims) expect({ action: claim.action, scheme: claim.scheme }).toEqual({ action: 'write', scheme: env.connector.scheme.name });
      expect(bound.claims()).toEqual(claims);
    });

    it('shows nothing under the final name before commit, then exactly the bytes written', async () => {
      const content = randomBytes(300_000);
      const s = await connect();
      const delivery = await s.begin('report.csv.pgp');
      await pipeline(Readable.from([content.subarray(0, 100_000), content.subarray(100_000)]), delivery.stream);
      expect(await env.entries()).not.toContain('report.csv.pgp');
      await delivery.commit();
      expect((await env.entries()).filter((entry) => entry === 'report.csv.pgp')).toHaveLength(1);
      expect(sha256Hex(await env.read('report.csv.pgp'))).toBe(sha256Hex(content));
    });

    it('aborts safely twice, before and after writing, and leaves nothing', async () => {
      const s = await connect();
      const unwritten = await s.begin('never.pgp');
      await unwritten.abort();
      await unwritten.abort();
      const written = await s.begin('half.pgp');
      await new Promise<void>((resolve, reject) => written.stream.write(randomBytes(200_000), (error) => (error ? reject(error) : resolve())));
      await written.abort();
      await written.abort();
      expect(await env.entries()).toEqual([]);
    });

    it('never replaces an existing object: commit fails with ConflictError and the original stays', async () => {
      const original = Buffer.from('the original, written by someone else');
      await env.put('taken.pgp', original);
      const s = await connect();
      const delivery = await s.begin('taken.pgp');
      await pipeline(Readable.from([randomBytes(10_000)]), delivery.stream);
      await expect(delivery.commit()).rejects.toMatchObject({ name: 'ConflictError' });
      await delivery.abort();
      expect(await env.read('taken.pgp')).toEqual(original);
      expect(await env.entries()).toEqual(['taken.pgp']);
    });

    it(`holds the writer back and takes ${bigBytes >> 20} MiB in bounded memory`, async () => {
      const s = await connect();
      const delivery = await s.begin('big.pgp');
      const memory = watchMemory();
      let refusals = 0;
      const counting = new Writable({
        highWaterMark: CHUNK,
        write(chunk: Buffer, _encoding, callback) {
          // The delivery's own `write` says when it is full; a stream that never says so buffers without bound.
          if (!delivery.stream.write(chunk)) {
            refusals += 1;
            delivery.stream.once('drain', () => callback());
          } else callback();
        },
        final(callback) {
          delivery.stream.end(callback);
        },
      });
      delivery.stream.once('error', (error) => counting.destroy(error));
      await pipeline(patternStream(bigBytes), counting);
      const grown = memory.stop();
      await delivery.commit();
      expect(refusals).toBeGreaterThan(0);
      expect(grown).toBeLessThan(memoryLimit);
      expect(await env.size('big.pgp')).toBe(bigBytes);
    });

    if (options.network) {
      it('leaves nothing when its connection is cut mid-delivery', async () => {
        const network = env.network;
        if (!network) throw new Error('the environment has no network access');
        await using proxy = await startCutProxy({ targetPort: network.port, direction: 'upload', cutAfter: 2 ** 20 });
        const s = await connect(network.via(proxy.port));
        const delivery = await s.begin('cut.pgp');
        await expect(pipeline(patternStream(16 * 2 ** 20), delivery.stream)).rejects.toBeDefined();
        await expect(delivery.commit()).rejects.toBeDefined();
        await delivery.abort();
        await delivery.abort();
        expect(proxy.cuts).toBeGreaterThanOrEqual(1);
        expect(await env.entries()).toEqual([]);
      });
    }
  });
}
