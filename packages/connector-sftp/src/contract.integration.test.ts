/** The conformance suite against a real OpenSSH sshd: one server for the source and one for the destination. */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mockContext } from '@airlock/connector-api/testkit';
import { startSshd, type TestSshd } from '@airlock/testing';
import { changeFile, describeDestinationContract, describeSourceContract, emptyDirectory, sortedEntries, writeContent } from '@airlock/testing/connector-contract';
import { sftpDestination, sftpSource } from './index.ts';

async function server(directory: string): Promise<{ sshd: TestSshd; root: string; connection: (port: number) => Record<string, unknown> }> {
  const sshd = await startSshd();
  const root = path.join(sshd.root, directory);
  await mkdir(root);
  const connection = (port: number) => ({
    host: sshd.host,
    port,
    hostKey: sshd.hostKeyFingerprint,
    username: sshd.username,
    credentialRef: 'contract',
    connectTimeoutMs: 5_000,
  });
  return { sshd, root, connection };
}

describeSourceContract(
  'sftp@1',
  async () => {
    const { sshd, root, connection } = await server('exports');
    const config = (port: number) => ({ ...connection(port), path: `${root}/*` });
    return {
      connector: sftpSource,
      config: config(sshd.port),
      network: { port: sshd.port, via: config },
      context: (signal) => mockContext({ secret: async () => ({ privateKey: sshd.privateKey }), ...(signal ? { signal } : {}) }),
      put: (name, data) => writeContent(path.join(root, name), data),
      change: (name) => changeFile(path.join(root, name)),
      entries: () => sortedEntries(root),
      clear: () => emptyDirectory(root),
      [Symbol.asyncDispose]: () => sshd.stop(),
    };
  },
  { changes: true, network: true, lends: true },
);

describeDestinationContract(
  'sftp@1',
  async () => {
    const { sshd, root, connection } = await server('incoming');
    const config = (port: number) => ({ ...connection(port), directory: root });
    return {
      connector: sftpDestination,
      config: config(sshd.port),
      network: { port: sshd.port, via: config },
      context: (signal) => mockContext({ secret: async () => ({ privateKey: sshd.privateKey }), ...(signal ? { signal } : {}) }),
      put: (name, data) => writeFile(path.join(root, name), data),
      read: (name) => readFile(path.join(root, name)),
      size: async (name) => (await stat(path.join(root, name))).size,
      entries: () => sortedEntries(root),
      clear: () => emptyDirectory(root),
      [Symbol.asyncDispose]: () => sshd.stop(),
    };
  },
  { network: true },
);
