import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { batchingSocket } from './batching-socket.ts';

describe('batchingSocket', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  it('hands the writes of one tick to the kernel together, in order and complete', async () => {
    const received = createHash('sha256');
    let receivedBytes = 0;
    const done = new Promise<void>((resolve) => {
      server = createServer((peer) => {
        peer.on('data', (data: Buffer) => {
          received.update(data);
          receivedBytes += data.length;
        });
        peer.on('end', () => resolve());
      });
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const address = server?.address();
    if (address === null || address === undefined || typeof address === 'string') throw new Error('no port');
    const socket = batchingSocket({ host: '127.0.0.1', port: address.port });
    let singles = 0;
    let batches = 0;
    const single = socket._write.bind(socket);
    socket._write = (...args) => {
      singles += 1;
      single(...args);
    };
    const batch = socket._writev?.bind(socket);
    if (batch === undefined) throw new Error('net.Socket has no _writev');
    socket._writev = (...args) => {
      batches += 1;
      batch(...args);
    };
    await new Promise((resolve) => socket.once('connect', resolve));

    const sent = createHash('sha256');
    // Three ticks of 8 packets each, the way ssh2 writes a burst of SSH packets.
    for (let tick = 0; tick < 3; tick += 1) {
      for (let packet = 0; packet < 8; packet += 1) {
        const data = randomBytes(32 * 1024 + packet);
        sent.update(data);
        socket.write(data);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    // A write with a callback is still called back.
    await new Promise<void>((resolve, reject) => socket.write(Buffer.from('end'), (error) => (error ? reject(error) : resolve())));
    sent.update('end');
    socket.end();
    await done;

    expect(receivedBytes).toBe(3 * (8 * 32 * 1024 + 28) + 3);
    expect(received.digest('hex')).toBe(sent.digest('hex'));
    expect(batches).toBe(3);
    expect(singles).toBe(1);
  });
});
