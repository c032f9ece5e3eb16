/**
 * Dispatch: the run queue, the scheduler, agent groups, grants and the scopes an integration needs,
 * the connector catalog, and the dispatcher that wakes waiting agents across replicas.
 */
export * from './connector-catalog.ts';
export * from './connector-definitions.ts';
export * from './dispatcher.ts';
export * from './envelopes.ts';
export * from './grants.ts';
export * from './group-dispatch.ts';
export * from './required-scopes.ts';
export * from './run-queue.ts';
export * from './scheduler.ts';
