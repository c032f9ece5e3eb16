/**
 * The conformance suite against a real HTTPS endpoint started here. A "file" of this source is the
 * collection at the endpoint, read as JSON Lines; it "changes" when the collection does between the
 * listing and the read, which the first page's ETag tells.
 */
import { mockContext } from '@airlock/connector-api/testkit';
import { describeSourceContract } from '@airlock/testing/connector-contract';
import { startApiServer } from './https-server.fixture.ts';
import { httpsSource } from './index.ts';

const TOKEN = 'contract-token-0123456789';

describeSourceContract(
  'https@1',
  async () => {
    const server = await startApiServer({ authorization: `Bearer ${TOKEN}` });
    const config = (port: number) => ({ endpoint: `https://127.0.0.1:${port}/api/records`, records: 'items', credentialRef: 'api', requestTimeoutMs: 5_000 });
    // The policy pins the origin the config names; the cut case goes through a proxy's port.
    let port = server.port;
    const pinned = () => [{ origin: `https://127.0.0.1:${port}`, paths: ['/api/**'], ca: server.certificates.caPem }];
    return {
      connector: httpsSource,
      config: config(server.port),
      network: {
        port: server.port,
        via: (through: number) => {
          port = through;
          return config(through);
        },
      },
      context: (signal) => mockContext({ secret: async () => ({ token: TOKEN }), policy: pinned(), ...(signal ? { signal } : {}) }),
      put: async (name, data) => server.put(name, data),
      change: async (name) => server.change(name),
      entries: async () => server.names(),
      clear: async () => {
        port = server.port;
        server.clear();
      },
      [Symbol.asyncDispose]: () => server.stop(),
    };
  },
  { network: true, changes: true, bigBytes: 128 * 2 ** 20, memoryLimitBytes: 64 * 2 ** 20 },
);
