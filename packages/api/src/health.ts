/**
 * Readiness: whether this replica can serve. `/healthz` says only that the process answers;
 * `/readyz` runs the checks below, each bounded by `READINESS_CHECK_TIMEOUT_MS`, and a load
 * balancer or orchestrator takes the replica out of rotation while one fails. The answer names
 * the failing checks, with a short reason that carries no address, credential or query text.
 */
import { randomBytes } from 'node:crypto';
import { READINESS_CHECK_TIMEOUT_MS } from '@airlock/protocol';
import { type Database, pendingMigrations, type Signer, verifierFor } from '@airlock/storage';

const CHECK_NAMES = ['database', 'migrations', 'signingKey'] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

export interface Readiness {
  ready: boolean;
  /** Every check's result: `ok`, or why it failed. */
  checks: Record<CheckName, string>;
  /** The checks that failed, in order. */
  failed: CheckName[];
}

class CheckTimeout extends Error {}

function bounded<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CheckTimeout()), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Why a check failed, for the probe's answer: the kind of failure, never the driver's message (it may name hosts). */
function reasonOf(error: unknown): string {
  if (error instanceof CheckTimeout) return 'timed out';
  return 'unreachable';
}

export async function checkReadiness(deps: { db: Database; signer: Signer }, timeoutMs: number = READINESS_CHECK_TIMEOUT_MS): Promise<Readiness> {
  const database = bounded(deps.db.query('SELECT 1'), timeoutMs).then(
    () => 'ok',
    (error: unknown) => reasonOf(error),
  );
  const migrations = bounded(pendingMigrations(deps.db), timeoutMs).then(
    (pending) => (pending.length === 0 ? 'ok' : `${pending.length} pending, from ${pending[0] ?? ''}`),
    (error: unknown) => `not checked: database ${reasonOf(error)}`,
  );
  // A key that signs what its public half verifies: loaded, and the halves belong together.
  const probe = randomBytes(32);
  let signingKey: string;
  try {
    signingKey = verifierFor(deps.signer.publicKey)(probe, deps.signer.sign(probe)) ? 'ok' : 'does not verify';
  } catch {
    signingKey = 'not loaded';
  }
  const checks: Record<CheckName, string> = { database: await database, migrations: await migrations, signingKey };
  const failed = CHECK_NAMES.filter((name) => checks[name] !== 'ok');
  return { ready: failed.length === 0, checks, failed };
}
