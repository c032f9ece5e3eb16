/** The conformance suite against an S3-compatible server (s3rver) started here. */
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockContext } from '@airlock/connector-api/testkit';
import { describeDestinationContract } from '@airlock/testing/connector-contract';
import { s3Destination } from './index.ts';
import { startS3Server } from './s3-server.fixture.ts';

describeDestinationContract(
  's3@1',
  async () => {
    const server = await startS3Server();
    const config = (port: number) => ({
      endpoint: `http://127.0.0.1:${port}`,
      bucket: server.bucket,
      credentialRef: 'contract',
      partSizeBytes: 5 * 2 ** 20,
      requestTimeoutMs: 5_000,
    });
    // The policy pins the endpoint the config names; the cut case goes through a proxy's port.
    const pinned = (port: number) => [{ endpoint: `http://127.0.0.1:${port}`, bucket: server.bucket, prefixes: ['/'], recipients: [] }];
    let port = server.port;
    const client = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { ...server.credentials } });
    const bytes = async (key: string) => Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: server.bucket, Key: key }))).Body?.transformToByteArray() ?? []);
    return {
      connector: s3Destination,
      config: config(server.port),
      network: {
        port: server.port,
        via: (through: number) => {
          port = through;
          return config(through);
        },
      },
      context: (signal) => mockContext({ secret: async () => ({ ...server.credentials }), policy: pinned(port), ...(signal ? { signal } : {}) }),
      put: async (name, data) => void (await client.send(new PutObjectCommand({ Bucket: server.bucket, Key: name, Body: data }))),
      read: bytes,
      size: async (name) => (await client.send(new HeadObjectCommand({ Bucket: server.bucket, Key: name }))).ContentLength ?? -1,
      entries: () => server.entries(),
      clear: async () => {
        port = server.port;
        for (const name of (await server.entries()).filter((entry) => !entry.startsWith('upload:'))) {
          await client.send(new DeleteObjectCommand({ Bucket: server.bucket, Key: name }));
        }
      },
      [Symbol.asyncDispose]: async () => {
        client.destroy();
        await server.stop();
      },
    };
  },
  { network: true },
);
