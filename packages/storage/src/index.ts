/**
 * The control plane's storage: the PostgreSQL and embedded PGlite connections, the versioned SQL
 * migrations, the hash-chained audit trail and its signed checkpoints, and the process metrics that
 * storage and the transport both report into.
 */
export * from './database.ts';
export * from './migrate.ts';
export * from './audit-log.ts';
export * from './checkpoints.ts';
export * from './signer.ts';
export * from './key-rotations.ts';
export * from './metrics.ts';
export * from './ticker.ts';
