/** The conformance suite against local folders on this host's own file system. */
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mockContext } from '@airlock/connector-api/testkit';
import {
  changeFile,
  describeDestinationContract,
  describeSourceContract,
  emptyDirectory,
  scratchDirectory,
  sortedEntries,
  writeContent,
} from '@airlock/testing/connector-contract';
import { localFolderDestination, localFolderSource } from './index.ts';

describeSourceContract(
  'local@1',
  async () => {
    const directory = await scratchDirectory('contract-local-in');
    return {
      connector: localFolderSource,
      config: { path: directory },
      context: (signal) => mockContext(signal ? { signal } : {}),
      put: (name, data) => writeContent(path.join(directory, name), data),
      change: (name) => changeFile(path.join(directory, name)),
      entries: () => sortedEntries(directory),
      clear: () => emptyDirectory(directory),
      [Symbol.asyncDispose]: () => rm(directory, { recursive: true, force: true }),
    };
  },
  { changes: true },
);

describeDestinationContract('local@1', async () => {
  const directory = await scratchDirectory('contract-local-out');
  return {
    connector: localFolderDestination,
    config: { directory },
    context: (signal) => mockContext(signal ? { signal } : {}),
    put: (name, data) => writeFile(path.join(directory, name), data),
    read: (name) => readFile(path.join(directory, name)),
    size: async (name) => (await stat(path.join(directory, name))).size,
    entries: () => sortedEntries(directory),
    clear: () => emptyDirectory(directory),
    [Symbol.asyncDispose]: () => rm(directory, { recursive: true, force: true }),
  };
});
