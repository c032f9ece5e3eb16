import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSquid, type TestSquid } from './squid.ts';

/** The proxy's answer to `CONNECT 127.0.0.1:<port>` with the given credential. */
function connectStatus(squid: TestSquid, port: number, credential?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: `127.0.0.1:${port}` };
    if (credential !== undefined) headers['proxy-authorization'] = `Basic ${Buffer.from(credential).toString('base64')}`;
    const req = request({ host: squid.host, port: squid.port, method: 'CONNECT', path: `127.0.0.1:${port}`, headers, timeout: 10_000 });
    req.once('connect', (response, socket) => {
      socket.destroy();
      resolve(response.statusCode ?? 0);
    });
    req.once('response', (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy(new Error('CONNECT timed out')));
    req.once('error', reject);
    req.end();
  });
}

describe('the squid fixture [operations:proxy]', () => {
  let squid: TestSquid;
  let target: Server;
  let allowed = 0;
  let other = 0;

  beforeAll(async () => {
    target = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const address = target.address();
    allowed = typeof address === 'object' && address !== null ? address.port : 0;
    const spare = createServer();
    await new Promise<void>((resolve) => spare.listen(0, '127.0.0.1', resolve));
    const spareAddress = spare.address();
    other = typeof spareAddress === 'object' && spareAddress !== null ? spareAddress.port : 0;
    await new Promise((resolve) => spare.close(resolve));
    squid = await startSquid({ allowPorts: [allowed], username: 'airlock', password: 'correct horse' });
  });
  afterAll(async () => {
    await squid?.stop();
    await new Promise((resolve) => target.close(resolve));
  });

  it('tunnels to an allowed port for the right credential only, and logs each request', async () => {
    expect(await connectStatus(squid, allowed, 'airlock:correct horse')).toBe(200);
    expect(await connectStatus(squid, allowed, 'airlock:wrong')).toBe(407);
    expect(await connectStatus(squid, allowed)).toBe(407);
    expect(await connectStatus(squid, other, 'airlock:correct horse')).toBe(403);
    const log = await squid.accessLog();
    expect(log).toMatch(new RegExp(`TCP_TUNNEL/200 \\d+ CONNECT 127\\.0\\.0\\.1:${allowed} airlock `));
    expect(log).toMatch(new RegExp(`/403 \\d+ CONNECT 127\\.0\\.0\\.1:${other} `));
  });
});
