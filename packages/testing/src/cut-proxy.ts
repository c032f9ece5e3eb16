/**
 * A loopback TCP proxy for fault tests: forwards bytes between a client and a server and can cut
 * the connection (destroy both sockets) once a given number of bytes has passed in one direction,
 * or call back at such a point so a test can break something else mid-transfer.
 */
import { createConnection, createServer, type Socket } from 'node:net';

export type Direction = 'download' | 'upload';

export interface CutProxyOptions {
  /** The server the proxy forwards to, on 127.0.0.1. */
  readonly targetPort: number;
  /** Which byte count the trigger watches: server→client (`download`) or client→server (`upload`). */
  readonly direction: Direction;
  /** Cut a connection after this many bytes in `direction`; never, if undefined. */
  readonly cutAfter?: number;
  /** How many connections are cut at `cutAfter`, in order; later ones pass whole. Default: every one. */
  readonly cutConnections?: number;
  /**
   * Called once, when a connection passes `at` bytes in `direction`; that direction is held until
   * `run` settles, so whatever it breaks is broken at exactly that byte.
   */
  readonly onBytes?: { at: number; run: () => Promise<void> };
}

export interface CutProxy extends AsyncDisposable {
  readonly port: number;
  /** Bytes forwarded so far, over all connections. */
  readonly forwarded: { download: number; upload: number };
  /** Connections that were cut. */
  readonly cuts: number;
  close(): Promise<void>;
}

export async function startCutProxy(options: CutProxyOptions): Promise<CutProxy> {
  const sockets = new Set<Socket>();
  const forwarded = { download: 0, upload: 0 };
  let cuts = 0;
  let triggered = false;

  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: options.targetPort });
    sockets.add(client).add(upstream);
    let watched = 0;
    let cut = false;
    const destroyBoth = (): void => {
      client.destroy();
      upstream.destroy();
    };
    const relay = (from: Socket, to: Socket, direction: Direction): void => {
      let held = false;
      from.on('data', (chunk: Buffer) => {
        if (cut) return;
        let data = chunk;
        if (direction === options.direction) {
          const limit = options.cutAfter;
          if (limit !== undefined && watched + data.length >= limit && cuts < (options.cutConnections ?? Infinity)) {
            // Forward exactly up to the limit, then drop the connection on both sides.
            data = data.subarray(0, limit - watched);
            cut = true;
          }
          watched += data.length;
        }
        forwarded[direction] += data.length;
        if (data.length > 0 && !to.write(data)) {
          from.pause();
          to.once('drain', () => {
            if (!held) from.resume();
          });
        }
        const trigger = options.onBytes;
        if (direction === options.direction && trigger !== undefined && !triggered && watched >= trigger.at) {
          triggered = true;
          held = true;
          from.pause();
          void trigger.run().finally(() => {
            held = false;
            from.resume();
          });
        }
        if (cut) {
          cuts += 1;
          // Let the forwarded prefix leave first; destroying at once could drop it from the send buffer.
          to.end(destroyBoth);
          from.destroy();
        }
      });
      from.on('end', () => to.end());
    };
    relay(upstream, client, 'download');
    relay(client, upstream, 'upload');
    for (const socket of [client, upstream]) {
      socket.on('error', destroyBoth);
      socket.on('close', () => {
        sockets.delete(socket);
        // After a cut, the other side is ended once the forwarded prefix has left.
        if (!cut) destroyBoth();
      });
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('cut proxy: no listening port');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
    return closing;
  };
  return {
    port: address.port,
    forwarded,
    get cuts() {
      return cuts;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
