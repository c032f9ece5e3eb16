/**
 * A throwaway S3-compatible server for this package's tests: s3rver on loopback, storing under a
 * temporary directory. s3rver implements multipart uploads but not `AbortMultipartUpload`; the
 * fixture adds exactly that (removing the upload's stored parts, as S3 does), so the tests can see
 * whether the connector gave its upload up. `entries` lists what the server stores: objects, and
 * uploads still open.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';
import { freePort } from '@airlock/testing';

export interface TestS3Server extends AsyncDisposable {
  readonly endpoint: string;
  readonly port: number;
  readonly bucket: string;
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
  /** Stored object keys, and `upload:<id>` for each multipart upload not completed or aborted. */
  entries(): Promise<string[]>;
  /** Every `AbortMultipartUpload` the server received. */
  readonly aborts: string[];
  stop(): Promise<void>;
}

const SUFFIX = /\._S3rver_object$/;

async function walk(directory: string, prefix = ''): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(directory, { withFileTypes: true }).catch(() => [])) {
    if (entry.isDirectory() && entry.name === '._S3rver_uploads') continue;
    if (entry.isDirectory()) found.push(...(await walk(path.join(directory, entry.name), `${prefix}${entry.name}/`)));
    else if (SUFFIX.test(entry.name)) found.push(`${prefix}${entry.name.replace(SUFFIX, '')}`);
  }
  return found;
}

export async function startS3Server(bucket = 'deliveries'): Promise<TestS3Server> {
  const directory = await mkdtemp(path.join(tmpdir(), 'airlock-s3rver-'));
  const port = await freePort();
  const uploads = path.join(directory, bucket, '._S3rver_uploads');
  const aborts: string[] = [];
  const server = new S3rver({ address: '127.0.0.1', port, directory, silent: true, configureBuckets: [{ name: bucket }] });
  server.middleware.unshift(async (ctx, next) => {
    const uploadId = ctx.query['uploadId'];
    if (ctx.method === 'DELETE' && typeof uploadId === 'string' && /^[A-Za-z0-9_-]+$/.test(uploadId)) {
      aborts.push(uploadId);
      await rm(path.join(uploads, uploadId), { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    await next();
  });
  await server.run();
  const stop = async () => {
    await server.close().catch(() => undefined);
    await rm(directory, { recursive: true, force: true });
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    bucket,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    aborts,
    async entries() {
      const open = (await readdir(uploads).catch(() => [])).map((id) => `upload:${id}`);
      return [...(await walk(path.join(directory, bucket))), ...open].sort();
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
