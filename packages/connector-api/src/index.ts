/**
 * The connector contract. A connector is a typed factory: `defineSource` or `defineDestination`
 * with a zod config schema. The agent (the host) depends on this package; connectors depend on it;
 * this package depends on neither. To add a connector, create `packages/connector-<name>`, export a
 * definition built with these helpers, run the testkit's contract tests against it, and add it to
 * the agent's registry list.
 */
export * from './contract.ts';
export * from './paths.ts';
export * from './names.ts';
export * from './registry.ts';
export * from './schemas.ts';
export * from './delivery.ts';
