import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectorRegistry } from '@airlock/connector-api';
import { memoryDestination, memorySource, quietLogger, type MemorySourceHooks } from '@airlock/connector-api/testkit';
import { AuthenticationError, OperationalError, UserError } from '@airlock/errors';
import { type DemoKey, generateDemoKey } from '@airlock/pgp';
import { gpgDecrypt } from '@airlock/testing';
import { job as jobSchema, type IntegrationSpecInput, type Job, runReport } from '@airlock/protocol';
import { LocalPolicy } from './policy.ts';
import { plaintextKey } from './receipts.ts';
import type { RetryPolicy } from './retry.ts';
import { runJob, type TransferDeps } from './transfer.ts';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const fastRetry: RetryPolicy = { attempts: 4, baseDelayMs: 1, maxDelayMs: 5, maxTotalMs: 5000 };
const noSecrets = () => Promise.reject(new Error('no secrets here'));

let recipient: DemoKey;
let dataDir: string;
beforeAll(async () => {
  recipient = await generateDemoKey('Partner', 'partner@example.com');
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'airlock-agent-unit-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

function policy(entry: Record<string, unknown> = {}): LocalPolicy {
  return LocalPolicy.parse(JSON.stringify({ sources: { local: [{ paths: ['/in/**'], ...entry }] }, destinations: { local: [{ root: '/out' }] }, recipients: [recipient.fingerprint] }));
}

function makeJob(options: Partial<IntegrationSpecInput> = {}, integrationId: string = randomUUID()): Job {
  return jobSchema.parse({
    runId: randomUUID(),
    integrationId,
    integrationVersion: 1,
    spec: {
      name: 'unit',
      agentId: randomUUID(),
      source: { connector: 'memory@1', config: { path: '/in/*.csv' } },
      destination: { connector: 'memory@1', config: { directory: '/out' } },
      recipients: [recipient.armoredPublicKey],
      selection: { stableForMs: 0 },
      ...options,
    },
  });
}

function setup(files: Record<string, string | Uint8Array>, hooks: MemorySourceHooks = {}, deps: Partial<TransferDeps> = {}) {
  const source = memorySource(files, hooks);
  const destination = memoryDestination();
  const all: TransferDeps = {
    registry: new ConnectorRegistry().add(source, destination),
    policy: policy(),
    secrets: noSecrets,
    logger: quietLogger,
    retry: fastRetry,
    ...deps,
  };
  return { source, destination, run: (job: Job) => runJob(job, all) };
}

describe('runJob retries', () => {
  it('retries a transient failure from byte 0 into a fresh delivery, then succeeds', async () => {
    const { source, destination, run } = setup({ '/in/a.csv': 'alpha' }, {
      onOpen: (_file, previous) => {
        if (previous < 2) throw new OperationalError('connection reset');
      },
    });
    const report = await run(makeJob());
    expect(report.status).toBe('succeeded');
    expect(source.opened).toEqual(['/in/a.csv']);
    expect(destination.begun).toEqual(['a.csv.pgp', 'a.csv.pgp', 'a.csv.pgp']);
    expect(destination.aborts.count).toBe(2);
    const delivered = destination.delivered.get('a.csv.pgp');
    expect(delivered && sha256(delivered)).toBe(report.files[0]?.ciphertextSha256);
    // Keyed: the report never carries a digest a guess could be checked against.
    expect(report.files[0]?.plaintextHmac).toMatch(/^[0-9a-f]{64}$/);
    expect(report.files[0]?.plaintextHmac).not.toBe(sha256('alpha'));
  });

  it('gives up after the configured attempts', async () => {
    const { source, destination, run } = setup({ '/in/a.csv': 'alpha' }, {
      onOpen: () => {
        throw new OperationalError('timeout');
      },
    });
    const report = await run(makeJob());
    expect(report).toMatchObject({ status: 'failed', errorClass: 'operational', files: [] });
    expect(source.opened).toHaveLength(0);
    expect(destination.begun).toHaveLength(4);
    expect(destination.aborts.count).toBe(4);
    expect(destination.delivered.size).toBe(0);
  });

  it('never retries a permanent error', async () => {
    const { destination, run } = setup({ '/in/a.csv': 'alpha', '/in/b.csv': 'bravo' }, {
      onOpen: () => {
        throw new AuthenticationError('bad credential');
      },
    });
    const report = await run(makeJob());
    expect(report).toMatchObject({ status: 'failed', errorClass: 'authentication', files: [] });
    expect(destination.begun).toEqual(['a.csv.pgp']);
    expect(destination.aborts.count).toBe(1);
  });
});

describe('runJob connections', () => {
  it('connects both ends at once, and closes the source when the destination cannot connect', async () => {
    const source = memorySource({ '/in/a.csv': 'alpha' });
    const destination = memoryDestination({
      onConnect: () => {
        throw new UserError('the destination refused the credential');
      },
    });
    const report = await runJob(makeJob(), { registry: new ConnectorRegistry().add(source, destination), policy: policy(), secrets: noSecrets, logger: quietLogger, retry: fastRetry });
    expect(report).toMatchObject({ status: 'failed', errorClass: 'user' });
    expect(source.opened).toEqual([]);
    expect(source.sessionsOpen.count).toBe(0);

    const ok = setup({ '/in/a.csv': 'alpha' });
    expect((await ok.run(makeJob())).status).toBe('succeeded');
    expect(ok.source.sessionsOpen.count).toBe(0);
  });
});

describe('runJob selection', () => {
  it('defers a file that changes between the two listings', async () => {
    const { source, destination, run } = setup({ '/in/a.csv': 'alpha', '/in/b.csv': 'bravo' }, {
      onList: (count) => {
        if (count === 1) source.write('/in/b.csv', 'bravo, still being written');
      },
    });
    const report = await run(makeJob({ selection: { stableForMs: 30 } }));
    expect(report).toMatchObject({ status: 'succeeded', deferred: 1, skipped: 0 });
    expect([...destination.delivered.keys()]).toEqual(['a.csv.pgp']);
  });

  it('defers a file whose size changes while it is read, and delivers nothing for it', async () => {
    const { source, destination, run } = setup({ '/in/a.csv': 'alpha' }, {
      onOpen: (_file, previous) => {
        if (previous === 0) source.write('/in/a.csv', 'alpha plus more');
      },
    });
    const report = await run(makeJob());
    expect(report).toMatchObject({ status: 'succeeded', deferred: 1, files: [] });
    expect(destination.delivered.size).toBe(0);
    expect(destination.aborts.count).toBe(1);
  });

  it('skips files the ledger shows as delivered, and sends a changed file again', async () => {
    const integrationId = randomUUID();
    const source = memorySource({ '/in/a.csv': 'alpha', '/in/b.csv': 'bravo' });
    const runWith = (destination = memoryDestination()) => ({
      destination,
      report: runJob(makeJob({ output: { nameTemplate: '{stem}-{runId}.pgp' } }, integrationId), {
        registry: new ConnectorRegistry().add(source, destination),
        policy: policy(),
        secrets: noSecrets,
        logger: quietLogger,
        dataDir,
      }),
    });
    const first = runWith();
    expect(await first.report).toMatchObject({ status: 'succeeded', skipped: 0 });
    expect(first.destination.delivered.size).toBe(2);
    const second = runWith();
    expect(await second.report).toMatchObject({ status: 'succeeded', skipped: 2, files: [] });
    expect(second.destination.begun).toEqual([]);
    source.write('/in/b.csv', 'bravo, corrected');
    const third = runWith();
    const report = await third.report;
    expect(report).toMatchObject({ status: 'succeeded', skipped: 1 });
    expect(report.files.map((f) => f.sourcePath)).toEqual(['/in/b.csv']);
    expect(report.files[0]?.plaintextHmac).toBe(createHmac('sha256', await plaintextKey(dataDir)).update('bravo, corrected').digest('hex'));
    // Metadata only in the ledger, and only its owner can read it.
    expect((await stat(path.join(dataDir, 'ledger', `${integrationId}.jsonl`))).mode & 0o777).toBe(0o600);
  });
});

describe('runJob options', () => {
  it('transfers up to `concurrency` files at once', async () => {
    const files = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`/in/f${i}.csv`, 'x'.repeat(200_000)]));
    for (const [concurrency, expected] of [[1, 1], [3, 3]] as const) {
      const { destination, run } = setup(files, { chunkSize: 16_384 });
      const report = await run(makeJob({ concurrency }));
      expect(report.status).toBe('succeeded');
      expect(report.files.map((f) => f.sourcePath)).toEqual(Object.keys(files));
      expect(destination.peakOpen.count).toBe(expected);
    }
  });

  it('lets a slow destination hold the source back: what is read stays a bounded distance ahead of what is written', async () => {
    const size = 24 * 1024 * 1024;
    let read = 0;
    let written = 0;
    let lead = 0;
    const source = memorySource({ '/in/big.csv': Buffer.alloc(size, 7) }, { onRead: (bytes) => void (read += bytes) });
    const destination = memoryDestination({
      writeDelayMs: 1,
      onWrite: (bytes) => {
        written += bytes;
        lead = Math.max(lead, read - written);
      },
    });
    const report = await runJob(makeJob(), {
      registry: new ConnectorRegistry().add(source, destination),
      policy: policy(),
      secrets: noSecrets,
      logger: quietLogger,
      retry: fastRetry,
    });
    expect(report.status).toBe('succeeded');
    expect(read).toBe(size);
    // Stream buffers and the encryption's own, a few MiB at most; not the 24 MiB file.
    expect(lead).toBeGreaterThan(0);
    expect(lead).toBeLessThan(4 * 1024 * 1024);
  });

  it('names deliveries from the template and refuses unsafe or colliding names before any byte moves', async () => {
    const named = setup({ '/in/a.tar.csv': 'a' });
    const job = makeJob({ output: { nameTemplate: '{stem}_{date}.{ext}.asc', armor: true } });
    expect((await named.run(job)).status).toBe('succeeded');
    const date = new Date().toISOString().slice(0, 10).replaceAll('-', '');
    expect([...named.destination.delivered.keys()]).toEqual([`a.tar_${date}.csv.asc`]);
    expect(named.destination.delivered.get(`a.tar_${date}.csv.asc`)?.toString()).toMatch(/^-----BEGIN PGP MESSAGE-----/);

    for (const nameTemplate of ['../{name}', 'sub/{name}', 'fixed.pgp']) {
      const { source, destination, run } = setup({ '/in/a.csv': 'a', '/in/b.csv': 'b' });
      expect(await run(makeJob({ output: { nameTemplate } }))).toMatchObject({ status: 'failed', errorClass: 'user' });
      expect(source.opened).toEqual([]);
      expect(destination.begun).toEqual([]);
    }
  });

  it('refuses an RFC 9580 profile for a recipient that cannot read it before any byte moves', async () => {
    const { source, run } = setup({ '/in/a.csv': 'a' });
    expect(await run(makeJob({ output: { profile: 'rfc9580' } }))).toMatchObject({ status: 'failed', errorClass: 'recipient-key' });
    expect(source.opened).toEqual([]);
  });

  it('[integrity #10] a recipient file holding two keys needs both pinned, and the unpinned one is named', async () => {
    const second = await generateDemoKey('Second', 'second@example.com');
    const file = `${recipient.armoredPublicKey}\n${second.armoredPublicKey}`;
    const logged: Array<Record<string, unknown>> = [];
    const { source, run } = setup({ '/in/a.csv': 'a' }, {}, { logger: { ...quietLogger, warn: (meta) => logged.push(meta) } });
    expect(await run(makeJob({ recipients: [file] }))).toMatchObject({ status: 'failed', errorClass: 'policy-violation', violation: { kind: 'recipient' } });
    expect(source.opened).toEqual([]);
    expect(String(logged[0]?.['error'])).toContain(`recipient key ${second.fingerprint} is not pinned`);

    const bothPinned = LocalPolicy.parse(JSON.stringify({ sources: { local: [{ paths: ['/in/**'] }] }, destinations: { local: [{ root: '/out' }] }, recipients: [recipient.fingerprint, second.fingerprint] }));
    const report = await setup({ '/in/a.csv': 'a' }, {}, { policy: bothPinned }).run(makeJob({ recipients: [file] }));
    expect(report.status).toBe('succeeded');
    expect(report.recipientFingerprints).toEqual([recipient.fingerprint, second.fingerprint]);
  });

  it('signs with the agent key, created on first use with mode 0600, and reports its fingerprint', async () => {
    const unsigned = setup({ '/in/a.csv': 'a' });
    expect(await unsigned.run(makeJob({ output: { sign: true } }))).toMatchObject({ status: 'failed', errorClass: 'user' });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-agent-sign-'));
    try {
      const signed = setup({ '/in/a.csv': 'a' }, {}, { dataDir: dir });
      const report = await signed.run(makeJob({ output: { sign: true } }));
      expect(report.status).toBe('succeeded');
      expect(report.signerFingerprint).toMatch(/^[0-9A-F]{40}$/);
      expect((await stat(path.join(dir, 'signing-key.asc'))).mode & 0o777).toBe(0o600);
      const again = setup({ '/in/a.csv': 'a' }, {}, { dataDir: dir });
      expect((await again.run(makeJob({ output: { sign: true } }))).signerFingerprint).toBe(report.signerFingerprint);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('runJob with a source that lends its chunks', () => {
  /** Decrypts a delivery with gpg and returns its SHA-256 and size. */
  async function opened(delivered: Buffer | undefined): Promise<{ sha256: string; bytes: number }> {
    const file = path.join(dataDir, `lent-${randomUUID()}.pgp`);
    await writeFile(file, delivered ?? Buffer.alloc(0));
    try {
      return await gpgDecrypt(file, recipient.armoredSecretKey);
    } finally {
      await rm(file, { force: true });
    }
  }

  // 4 MiB in 64 KiB chunks: many more chunks than the encryption holds at once, and a final short one.
  const content = randomBytes(4 * 1024 * 1024 + 1234);
  const file = { '/in/big.csv': content };

  it('hands every chunk back once it is encrypted, so the source reads into few buffers, and delivers the exact bytes', async () => {
    // Progress reporting wraps the source's streams: the chunks must still come back through it.
    for (const progress of [undefined, () => Promise.resolve()]) {
      const { source, destination, run } = setup(file, { lend: true }, progress ? { progress } : {});
      const report = await run(makeJob());
      expect(report.status).toBe('succeeded');
      // A released buffer is overwritten at once: a chunk released before it was copied would show here.
      expect(await opened(destination.delivered.get('big.csv.pgp'))).toEqual({ sha256: sha256(content), bytes: content.length });
      expect(source.lending.released).toBe(source.lending.lent);
      expect(source.lending.refused).toBe(0);
      expect(source.lending.allocated).toBeLessThan(source.lending.lent / 2);
    }
  });

  it('hands nothing back through openpgp.js streams (signing), so no buffer is reused', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-agent-lend-'));
    try {
      const { source, run } = setup(file, { lend: true }, { dataDir: dir });
      expect((await run(makeJob({ output: { sign: true } }))).status).toBe('succeeded');
      expect(source.lending).toMatchObject({ released: 0, refused: 0 });
      expect(source.lending.allocated).toBe(source.lending.lent);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('hands nothing back behind a field filter, which keeps parts of chunks', async () => {
    const rows = Array.from({ length: 40_000 }, (_, i) => `${i},secret-${i},region-${i % 7}`).join('\n');
    const csv = `id,ssn,region\n${rows}\n`;
    const { source, destination, run } = setup({ '/in/rows.csv': csv }, { lend: true, chunkSize: 4096 });
    expect((await run(makeJob({ fields: { format: 'csv', allow: ['id', 'region'] } }))).status).toBe('succeeded');
    expect(source.lending).toMatchObject({ released: 0, refused: 0 });
    const expected = `id,region\n${Array.from({ length: 40_000 }, (_, i) => `${i},region-${i % 7}`).join('\n')}\n`;
    expect(await opened(destination.delivered.get('rows.csv.pgp'))).toEqual({ sha256: sha256(expected), bytes: Buffer.byteLength(expected) });
  });
});

describe('runJob post-delivery actions', () => {
  it('deletes delivered files when the policy allows it', async () => {
    const { source, destination, run } = setup({ '/in/a.csv': 'a', '/in/b.csv': 'b' }, {}, { policy: policy({ allowDelete: true }) });
    const report = await run(makeJob({ afterDelivery: { action: 'delete' } }));
    expect(report.status).toBe('succeeded');
    expect(source.removed).toEqual(['/in/a.csv', '/in/b.csv']);
    expect(destination.delivered.size).toBe(2);
  });

  it('refuses a post-action the policy does not allow before anything is read', async () => {
    for (const [entry, afterDelivery] of [
      [{}, { action: 'delete' }],
      [{ allowDelete: true }, { action: 'archive', archiveDirectory: '/done' }],
      [{ allowArchiveTo: ['/done'] }, { action: 'archive', archiveDirectory: '/elsewhere' }],
    ] as const) {
      const { source, destination, run } = setup({ '/in/a.csv': 'a' }, {}, { policy: policy(entry) });
      const report = await run(makeJob({ afterDelivery }));
      expect(report).toMatchObject({ status: 'failed', errorClass: 'policy-violation', violation: { kind: 'source' } });
      expect(source.opened).toEqual([]);
      expect(destination.begun).toEqual([]);
    }
  });

  it('archives into an allowed directory, and refuses one inside the selection or a source that cannot', async () => {
    const archived = setup({ '/in/a.csv': 'a' }, {}, { policy: policy({ allowArchiveTo: ['/done', '/in'] }) });
    expect((await archived.run(makeJob({ afterDelivery: { action: 'archive', archiveDirectory: '/done/2026' } }))).status).toBe('succeeded');
    expect([...archived.source.files.keys()]).toEqual(['/done/2026/a.csv']);

    const inside = setup({ '/in/a.csv': 'a' }, {}, { policy: policy({ allowArchiveTo: ['/in'] }) });
    expect(await inside.run(makeJob({ afterDelivery: { action: 'archive', archiveDirectory: '/in' } }))).toMatchObject({ status: 'failed', errorClass: 'user' });
    expect(inside.source.opened).toEqual([]);

    const unable = setup({ '/in/a.csv': 'a' }, { withoutPostActions: true }, { policy: policy({ allowDelete: true }) });
    expect(await unable.run(makeJob({ afterDelivery: { action: 'delete' } }))).toMatchObject({ status: 'failed', errorClass: 'user' });
    expect(unable.source.opened).toEqual([]);
  });

  it('runs a post-action left undone for a file the ledger shows as delivered', async () => {
    const integrationId = randomUUID();
    const source = memorySource({ '/in/a.csv': 'a' });
    const deps = (p: LocalPolicy): TransferDeps => ({ registry: new ConnectorRegistry().add(source, memoryDestination()), policy: p, secrets: noSecrets, logger: quietLogger, dataDir });
    expect((await runJob(makeJob({}, integrationId), deps(policy()))).status).toBe('succeeded');
    const report = await runJob(makeJob({ afterDelivery: { action: 'delete' } }, integrationId), deps(policy({ allowDelete: true })));
    expect(report).toMatchObject({ status: 'succeeded', skipped: 1, files: [] });
    expect(source.removed).toEqual(['/in/a.csv']);
  });
});

describe('runJob under a policy reloaded mid-job', () => {
  it('checks the live policy before each file it opens: a narrowing after the first file refuses the next', async () => {
    const narrowed = LocalPolicy.parse(JSON.stringify({ sources: { local: [{ paths: ['/in/a.csv'] }] }, destinations: { local: [{ root: '/out' }] }, recipients: [recipient.fingerprint] }));
    let live = policy();
    const { source, destination, run } = setup(
      { '/in/a.csv': 'a', '/in/b.csv': 'b', '/in/c.csv': 'c' },
      { onOpen: () => void (live = narrowed) },
      { livePolicy: () => live },
    );
    const report = await run(makeJob({ concurrency: 1 }));
    expect(report).toMatchObject({ status: 'failed', errorClass: 'policy-violation', violation: { kind: 'file' } });
    expect(source.opened).toEqual(['/in/a.csv']);
    expect([...destination.delivered.keys()]).toEqual(['a.csv.pgp']);
    expect(report.files.map((file) => file.sourcePath)).toEqual(['/in/a.csv']);
  });
});

describe('the reason a failed run reports', () => {
  const CONTENT = 'ssn=078-05-1120;card=4111111111111111';

  it('never carries what an error message quoted from a file, whatever threw it', async () => {
    const throwers = [() => new UserError(`line 2 is not CSV: ${CONTENT}`), () => new Error(`parse error near ${CONTENT}`), () => new OperationalError(`read failed at ${CONTENT}`)];
    for (const thrower of throwers) {
      const { run } = setup({ '/in/a.csv': CONTENT }, {
        onOpen: () => {
          throw thrower();
        },
      });
      const report = await run(makeJob());
      expect(report.status).toBe('failed');
      expect(report.reason).toBeDefined();
      expect(report.reason).not.toContain('078-05-1120');
      expect(report.reason).not.toContain('4111');
      expect(JSON.stringify(runReport.parse(report))).not.toContain('4111');
    }
  });

  it('says which claim the local policy refused', async () => {
    const { run } = setup({ '/in/a.csv': CONTENT }, {}, { policy: policy({ paths: ['/elsewhere/**'] }) });
    const report = await run(makeJob());
    expect(report).toMatchObject({ status: 'failed', errorClass: 'policy-violation' });
    expect(report.reason).toMatch(/^policy refused: .*\/in\/.* is outside the local policy$/);
    expect(report.reason).not.toContain('4111');
  });
});
