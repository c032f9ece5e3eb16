/** The conformance suite against Azurite, Microsoft's Blob service emulator, started here. */
import { mockContext } from '@airlock/connector-api/testkit';
import { describeDestinationContract } from '@airlock/testing/connector-contract';
import { startAzurite } from './azurite.fixture.ts';
import { azblobDestination } from './index.ts';

describeDestinationContract(
  'azblob@1',
  async () => {
    const server = await startAzurite();
    const endpointAt = (port: number) => server.endpoint.replace(`:${server.port}/`, `:${port}/`);
    const config = (port: number) => ({
      endpoint: endpointAt(port),
      container: server.container,
      credentialRef: 'contract',
      blockSizeBytes: 4 * 2 ** 20,
      requestTimeoutMs: 5_000,
    });
    // The policy pins the endpoint the config names; the cut case goes through a proxy's port.
    const pinned = (port: number) => [{ endpoint: endpointAt(port), container: server.container, prefixes: ['/'], recipients: [] }];
    let port = server.port;
    const blob = (name: string) => server.client.getBlockBlobClient(name);
    return {
      connector: azblobDestination,
      config: config(server.port),
      network: {
        port: server.port,
        via: (through: number) => {
          port = through;
          return config(through);
        },
      },
      context: (signal) => mockContext({ secret: async () => ({ ...server.credentials }), policy: pinned(port), ...(signal ? { signal } : {}) }),
      put: async (name, data) => void (await blob(name).upload(data, data.length)),
      read: (name) => blob(name).downloadToBuffer(),
      size: async (name) => (await blob(name).getProperties()).contentLength ?? -1,
      entries: () => server.entries(),
      clear: async () => {
        port = server.port;
        for (const name of await server.entries()) await blob(name).delete();
      },
      [Symbol.asyncDispose]: () => server.stop(),
    };
  },
  { network: true },
);
