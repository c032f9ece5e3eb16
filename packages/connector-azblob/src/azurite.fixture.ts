/**
 * A throwaway Azure Blob service for this package's tests: Microsoft's emulator, Azurite, as a
 * child process on a free loopback port, storing under a temporary directory, with one account
 * whose key is made up per run. `entries` lists the blobs a reader can see in the container.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlobServiceClient, type ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { freePort, waitForPort } from '@airlock/testing';

export interface TestAzurite extends AsyncDisposable {
  /** The account's blob endpoint, account in the path: `http://127.0.0.1:<port>/<account>`. */
  readonly endpoint: string;
  readonly port: number;
  readonly container: string;
  readonly credentials: { accountName: string; accountKey: string };
  /** A client for the container, to look behind the connector's back. */
  readonly client: ContainerClient;
  /** Names of the committed blobs in the container, sorted. */
  entries(): Promise<string[]>;
  stop(): Promise<void>;
}

const ACCOUNT = 'airlocktest';
const STARTUP_TIMEOUT_MS = 20_000;

function azuriteMain(): string {
  return path.join(path.dirname(createRequire(import.meta.url).resolve('azurite/package.json')), 'dist/src/blob/main.js');
}

export async function startAzurite(container = 'deliveries'): Promise<TestAzurite> {
  const directory = await mkdtemp(path.join(tmpdir(), 'airlock-azurite-'));
  const port = await freePort();
  const accountKey = randomBytes(32).toString('base64');
  let output = '';
  const child: ChildProcess = spawn(
    process.execPath,
    [azuriteMain(), '--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', directory, '--silent', '--skipApiVersionCheck', '--disableProductStyleUrl', '--disableTelemetry'],
    // Its own environment only: the account and its key, nothing inherited.
    { env: { AZURITE_ACCOUNTS: `${ACCOUNT}:${accountKey}` }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  for (const stream of [child.stdout, child.stderr]) stream?.on('data', (chunk: Buffer) => (output = `${output}${chunk.toString()}`.slice(-4_000)));
  const killNow = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killNow);
  const stop = async () => {
    process.off('exit', killNow);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(killNow, 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(directory, { recursive: true, force: true });
  };
  try {
    await waitForPort('127.0.0.1', port, STARTUP_TIMEOUT_MS, () => `azurite: ${output}`);
  } catch (error) {
    await stop();
    throw error;
  }
  const endpoint = `http://127.0.0.1:${port}/${ACCOUNT}`;
  const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(ACCOUNT, accountKey));
  const client = service.getContainerClient(container);
  await client.create();
  return {
    endpoint,
    port,
    container,
    credentials: { accountName: ACCOUNT, accountKey },
    client,
    async entries() {
      const names: string[] = [];
      for await (const blob of client.listBlobsFlat()) names.push(blob.name);
      return names.sort();
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
