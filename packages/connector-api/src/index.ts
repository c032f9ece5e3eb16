/**
 * The connector contract. A connector is a pure definition (`sourceDefinition` or
 * `destinationDefinition`: id, version, zod config schema, claims) and a runtime built on it
 * (`defineSource` or `defineDestination`). The agent (the host) depends on this package;
 * connectors depend on it; this package depends on neither. To add a connector, create
 * `packages/connector-<name>`, export its definitions from a `./definition` entry point and its
 * runtimes from the main one, run the testkit's contract tests against it, and add it to the
 * agent's registry list and the control plane's definition list.
 */
export * from './definition.ts';
export * from './contract.ts';
export * from './name-template.ts';
export * from './parts.ts';
export * from './paths.ts';
export * from './names.ts';
export * from './registry.ts';
export * from './schemas.ts';
export * from './delivery.ts';
export * from './lending.ts';
export * from './unchanged.ts';
