/**
 * Audit events and their hash chain. Pure: no I/O. The control plane appends records built with
 * `chainEvent`; agents and the `verify` command check them with `verifyChain`.
 */
export * from './canonical.ts';
export * from './events.ts';
export * from './chain.ts';
export * from './checkpoint.ts';
export * from './merkle.ts';
export * from './tuples.ts';
export * from './page-verify.ts';
export * from './page-pool.ts';
