/**
 * `npm run -s bench:audit -- --json [--verify-events 1000000] [--append-seconds 10]`
 *
 * The audit trail on a throwaway PostgreSQL (`startPostgres`):
 *   appends_per_s  events appended through `recordAudit` (hash chain, head row lock, one
 *                  transaction each) by 8 concurrent writers, for --append-seconds or 20 000 events;
 *   verify_1m_s    seconds for the paginated whole-chain verify that `airlock audit verify` runs,
 *                  over --verify-events events (bulk-inserted first) and a checkpoint at the head,
 *                  scaled to one million when fewer are asked for.
 * Prints exactly one JSON object on stdout; progress goes to stderr.
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { type AuditEventInput, type AuditRecord, type ChainHead, chainEvent } from '@airlock/audit';
import { connectPostgres, createCheckpoint, migrate, recordAudit, signerFromSecretKey, verifyStoredAudit, writeAuditRecords } from '@airlock/api';
import { generateKeyPair } from '@airlock/identity';
import { startPostgres } from '@airlock/testing';
import { setUpCli } from './cli.ts';

const log = (line: string): void => void process.stderr.write(`${line}\n`);

setUpCli();
const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    'verify-events': { type: 'string', default: '1000000' },
    'append-seconds': { type: 'string', default: '10' },
  },
});
const verifyEvents = Number(values['verify-events']);
const appendSeconds = Number(values['append-seconds']);
if (!Number.isSafeInteger(verifyEvents) || verifyEvents < 1 || verifyEvents > 10_000_000) throw new Error('--verify-events: 1 to 10 000 000');
if (!(appendSeconds > 0 && appendSeconds <= 600)) throw new Error('--append-seconds: up to 600');

const WRITERS = 8;
const MAX_APPENDS = 20_000;
const GENERATE_CHUNK = 10_000;
const round = (value: number, digits = 2): number => Number(value.toFixed(digits));

/** Metadata shaped like a real event's: a few fields, a fingerprint list, a nested object. */
function event(i: number): AuditEventInput {
  return {
    tenantId: '7f0c1a1e-9a4e-4c1b-8d1e-1a2b3c4d5e6f',
    actor: { type: 'api-key', id: 'k3f2c9a1b7d4e6f0' },
    action: 'integration-save',
    target: `integration:${i}`,
    outcome: 'success',
    sourceIp: '192.0.2.10',
    meta: { name: `nightly-${i}`, version: i % 17, recipientFingerprints: ['ABCDEF0123456789ABCDEF0123456789ABCDEF01'], schedule: { cron: '0 2 * * *', timezone: 'Europe/Berlin' } },
  };
}

async function main() {
  const loadBefore = loadavg();
  await using postgres = await startPostgres();
  const signer = signerFromSecretKey(generateKeyPair().secretKey);

  // Appends: every writer loops until the time or the event budget is spent.
  const appendDb = connectPostgres(await postgres.createDatabase(), { maxConnections: WRITERS });
  let appended = 0;
  let appendElapsed = 0;
  try {
    await migrate(appendDb);
    log(`appending with ${WRITERS} writers for ${appendSeconds} s or ${MAX_APPENDS} events...`);
    const started = performance.now();
    const deadline = started + appendSeconds * 1000;
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        while (appended < MAX_APPENDS && performance.now() < deadline) {
          appended += 1;
          await recordAudit(appendDb, event(appended));
        }
      }),
    );
    appendElapsed = (performance.now() - started) / 1000;
    const check = await verifyStoredAudit(appendDb, signer.publicKey);
    if (!check.ok || check.count !== appended) throw new Error(`the appended chain does not verify: ${JSON.stringify(check)}`);
  } finally {
    await appendDb.close();
  }
  log(`appends: ${appended} in ${appendElapsed.toFixed(2)} s`);

  // Verify: a long chain built in memory a chunk at a time and bulk-inserted, then read back.
  const verifyDb = connectPostgres(await postgres.createDatabase(), { maxConnections: 2 });
  let verifySeconds = 0;
  try {
    await migrate(verifyDb);
    log(`generating and inserting ${verifyEvents} events...`);
    const generateStarted = performance.now();
    let head: ChainHead | null = null;
    const at = Date.UTC(2025, 0, 1);
    for (let done = 0; done < verifyEvents; done += GENERATE_CHUNK) {
      const chunk: AuditRecord[] = [];
      for (let i = done; i < Math.min(done + GENERATE_CHUNK, verifyEvents); i++) {
        const record: AuditRecord = chainEvent(head, event(i), new Date(at + i));
        chunk.push(record);
        head = { seq: record.seq, hash: record.hash };
      }
      await verifyDb.transaction((tx) => writeAuditRecords(tx, chunk));
    }
    await createCheckpoint(verifyDb, signer);
    await verifyDb.query('VACUUM ANALYZE audit_events');
    log(`generated in ${((performance.now() - generateStarted) / 1000).toFixed(1)} s; verifying...`);
    const started = performance.now();
    const result = await verifyStoredAudit(verifyDb, signer.publicKey);
    verifySeconds = (performance.now() - started) / 1000;
    if (!result.ok || result.count !== verifyEvents || result.checkpoints !== 1) throw new Error(`verify failed: ${JSON.stringify(result)}`);
  } finally {
    await verifyDb.close();
  }
  log(`verify: ${verifyEvents} events in ${verifySeconds.toFixed(2)} s`);

  return {
    appends: appended,
    appends_writers: WRITERS,
    appends_per_s: round(appended / appendElapsed, 0),
    verify_events: verifyEvents,
    verify_s: round(verifySeconds),
    verify_1m_s: round((verifySeconds * 1_000_000) / verifyEvents),
    verify_events_per_s: round(verifyEvents / verifySeconds, 0),
    env: {
      node: process.version,
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model ?? 'unknown',
      loadavg_before: loadBefore.map((l) => round(l)),
      loadavg_after: loadavg().map((l) => round(l)),
    },
  };
}

const result = await main();
process.stdout.write(`${values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2)}\n`);
