/** `@airlock/testing/connector-contract`: the conformance suite and the helpers its environments use. */
export * from './connector-contract.ts';
export { changeFile, emptyDirectory, scratchDirectory, sortedEntries, writeContent } from './local-dir.ts';
