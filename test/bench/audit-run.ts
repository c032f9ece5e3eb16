/**
 * What `npm run -s bench:audit -- --json [--verify-events 1000000] [--append-seconds 10]` measures,
 * compiled by bench/audit.ts.
 *
 * The audit trail on a throwaway PostgreSQL (`startPostgres`), with one chain per tenant:
 *   appends_per_s     events appended through `recordAudit` (hash chain, the tenant's head row
 *                     lock, one transaction each) by 8 concurrent writers, each for its own tenant
 *                     of 8, for --append-seconds or 200 000 events; target ≥ 5 000;
 *   verify_1m_s       seconds for the whole-trail verify that `airlock audit verify` runs (the
 *                     table read once in block ranges, pages hashed on worker threads, every chain
 *                     stitched and held against a tree checkpoint of every head), over
 *                     --verify-events events spread over the same 8 tenants (bulk-inserted first),
 *                     scaled to one million when fewer are asked for; target ≤ 5;
 *   *_vs_target       the figure over its target: ≥ 1 meets it for appends, ≤ 1 for verify;
 *   loadavg_*         the machine's load average around each phase: it is shared, and the figures
 *                     move with it;
 *   appends_cpu_*_ms  CPU milliseconds per append, in this process and in PostgreSQL (as below);
 *   verify_cpu_*_s    CPU seconds the verify took in this process (every thread) and in PostgreSQL
 *                     (the server's processes, read from /proc; null where there is none), per
 *                     million events: where the time goes when the cores are shared.
 * Prints exactly one JSON object on stdout; progress goes to stderr.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { type AuditEventInput, type AuditRecord, type ChainHead, chainEvent, defaultPageThreads } from '@airlock/audit';
import { connectPostgres, createCheckpoint, migrate, type Queryable, recordAudit, signerFromSecretKey, verifyStoredAudit, writeAuditRecords } from '@airlock/storage';
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
const TENANTS = Array.from({ length: 8 }, () => randomUUID());
const MAX_APPENDS = 200_000;
const APPENDS_TARGET = 5_000;
const VERIFY_TARGET_S = 5;
const GENERATE_CHUNK = 10_000;
const round = (value: number, digits = 2): number => Number(value.toFixed(digits));

/** utime, stime and (with `children`) the reaped children's, in clock ticks, from /proc/<pid>/stat. */
function cpuTicks(pid: number, children: boolean): number {
  // The fields after the command's closing parenthesis; utime is the 14th field of the whole line.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  const at = (field: number) => Number(fields[field - 3] ?? 0);
  return at(14) + at(15) + (children ? at(16) + at(17) : 0);
}

/** The PostgreSQL server's postmaster: the parent of a backend. Null where /proc cannot tell. */
async function postmasterOf(db: Queryable): Promise<number | null> {
  const [backend] = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  try {
    return backend ? Number(readFileSync(`/proc/${backend.pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]) : null;
  } catch {
    return null;
  }
}

/**
 * CPU seconds of a PostgreSQL server so far: the postmaster with the backends it has reaped, and
 * those still running. Null where /proc cannot tell (not Linux, or not this machine's server).
 */
function postgresCpuSeconds(postmaster: number | null): number | null {
  if (postmaster === null) return null;
  try {
    let ticks = cpuTicks(postmaster, true);
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        if (Number(stat.split(') ')[1]?.split(' ')[1]) === postmaster) ticks += cpuTicks(Number(name), false);
      } catch {
        // Gone since it was listed.
      }
    }
    // Clock ticks are 1/100 s on Linux.
    return ticks / 100;
  } catch {
    return null;
  }
}

/** Metadata shaped like a real event's: a few fields, a fingerprint list, a nested object. */
function event(i: number, tenantId: string): AuditEventInput {
  return {
    tenantId,
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
  let loadAppend = loadBefore;
  await using postgres = await startPostgres();
  const signer = signerFromSecretKey(generateKeyPair().secretKey);

  // Appends: every writer loops until the time or the event budget is spent.
  const appendDb = connectPostgres(await postgres.createDatabase(), { maxConnections: WRITERS });
  let appended = 0;
  let appendElapsed = 0;
  let appendCpuNode = 0;
  let appendCpuPostgres: number | null = null;
  try {
    await migrate(appendDb);
    log(`appending with ${WRITERS} writers for ${appendSeconds} s or ${MAX_APPENDS} events...`);
    const postmaster = await postmasterOf(appendDb);
    const postgresBefore = postgresCpuSeconds(postmaster);
    const nodeBefore = process.cpuUsage();
    const started = performance.now();
    const deadline = started + appendSeconds * 1000;
    await Promise.all(
      Array.from({ length: WRITERS }, async (_, writer) => {
        const tenantId = TENANTS[writer % TENANTS.length] ?? randomUUID();
        while (appended < MAX_APPENDS && performance.now() < deadline) {
          appended += 1;
          await recordAudit(appendDb, event(appended, tenantId));
        }
      }),
    );
    appendElapsed = (performance.now() - started) / 1000;
    const node = process.cpuUsage(nodeBefore);
    const postgresAfter = postgresCpuSeconds(postmaster);
    appendCpuNode = (node.user + node.system) / 1e6;
    appendCpuPostgres = postgresBefore === null || postgresAfter === null ? null : postgresAfter - postgresBefore;
    loadAppend = loadavg();
    await createCheckpoint(appendDb, signer);
    const check = await verifyStoredAudit(appendDb, signer.publicKey);
    if (!check.ok || check.count !== appended) throw new Error(`the appended chain does not verify: ${JSON.stringify(check)}`);
  } finally {
    await appendDb.close();
  }
  log(`appends: ${appended} in ${appendElapsed.toFixed(2)} s`);

  // Verify: a long chain built in memory a chunk at a time and bulk-inserted, then read back.
  // Verified as `airlock audit verify` does, in the system scope: half the connections serve it,
  // two for the two pages it reads at once.
  const verifyDb = connectPostgres(await postgres.createDatabase(), { maxConnections: 4 });
  let verifySeconds = 0;
  let verifyCpuNode = 0;
  let verifyCpuPostgres: number | null = null;
  let loadVerify = loadavg();
  try {
    await migrate(verifyDb);
    log(`generating and inserting ${verifyEvents} events...`);
    const generateStarted = performance.now();
    const heads = new Map<string, ChainHead>();
    const at = Date.UTC(2025, 0, 1);
    for (let done = 0; done < verifyEvents; done += GENERATE_CHUNK) {
      const chunk: AuditRecord[] = [];
      for (let i = done; i < Math.min(done + GENERATE_CHUNK, verifyEvents); i++) {
        const tenantId = TENANTS[i % TENANTS.length] ?? randomUUID();
        const record: AuditRecord = chainEvent(heads.get(tenantId) ?? null, event(i, tenantId), new Date(at + i));
        chunk.push(record);
        heads.set(tenantId, { seq: record.seq, hash: record.hash });
      }
      await verifyDb.transaction((tx) => writeAuditRecords(tx, chunk));
    }
    await createCheckpoint(verifyDb, signer);
    await verifyDb.query('VACUUM ANALYZE audit_events');
    log(`generated in ${((performance.now() - generateStarted) / 1000).toFixed(1)} s; verifying...`);
    const postmaster = await postmasterOf(verifyDb);
    loadVerify = loadavg();
    const postgresBefore = postgresCpuSeconds(postmaster);
    const nodeBefore = process.cpuUsage();
    const started = performance.now();
    const result = await verifyStoredAudit(verifyDb.forSystem(), signer.publicKey);
    verifySeconds = (performance.now() - started) / 1000;
    const node = process.cpuUsage(nodeBefore);
    const postgresAfter = postgresCpuSeconds(postmaster);
    verifyCpuNode = (node.user + node.system) / 1e6;
    verifyCpuPostgres = postgresBefore === null || postgresAfter === null ? null : postgresAfter - postgresBefore;
    if (!result.ok || result.count !== verifyEvents || result.checkpoints !== 1 || result.chains !== TENANTS.length) throw new Error(`verify failed: ${JSON.stringify(result)}`);
  } finally {
    await verifyDb.close();
  }
  log(`verify: ${verifyEvents} events in ${verifySeconds.toFixed(2)} s`);

  const appendsPerS = appended / appendElapsed;
  const verify1m = (verifySeconds * 1_000_000) / verifyEvents;
  return {
    appends: appended,
    appends_writers: WRITERS,
    appends_tenants: TENANTS.length,
    appends_per_s: round(appendsPerS, 0),
    appends_target: APPENDS_TARGET,
    appends_vs_target: round(appendsPerS / APPENDS_TARGET),
    appends_loadavg_1m: round(loadAppend[0] ?? 0),
    appends_cpu_node_ms: round((appendCpuNode * 1000) / appended, 3),
    appends_cpu_postgres_ms: appendCpuPostgres === null ? null : round((appendCpuPostgres * 1000) / appended, 3),
    verify_events: verifyEvents,
    verify_chains: TENANTS.length,
    verify_s: round(verifySeconds),
    verify_1m_s: round(verify1m),
    verify_target_s: VERIFY_TARGET_S,
    verify_vs_target: round(verify1m / VERIFY_TARGET_S),
    verify_events_per_s: round(verifyEvents / verifySeconds, 0),
    verify_loadavg_1m: round(loadVerify[0] ?? 0),
    verify_cpu_node_s: round((verifyCpuNode * 1_000_000) / verifyEvents),
    verify_cpu_postgres_s: verifyCpuPostgres === null ? null : round((verifyCpuPostgres * 1_000_000) / verifyEvents),
    env: {
      node: process.version,
      cpus: cpus().length,
      verify_threads: defaultPageThreads(),
      cpu_model: cpus()[0]?.model ?? 'unknown',
      loadavg_before: loadBefore.map((l) => round(l)),
      loadavg_after: loadavg().map((l) => round(l)),
    },
  };
}

const result = await main();
process.stdout.write(`${values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2)}\n`);
