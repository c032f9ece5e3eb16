/**
 * The TCP socket under an SFTP connection. ssh2 writes every SSH packet on its own, and OpenSSH
 * takes at most 32 KiB per packet, so a pipelined transfer would otherwise make one system call (and
 * wake the server once) per 32 KiB. This socket gathers everything written in one tick and hands it
 * to the kernel in one `writev` as the tick ends; order and backpressure are the socket's own.
 */
import { Socket } from 'node:net';

type WriteCallback = (error?: Error | null) => void;

/** A socket connecting to `host:port` whose writes are batched per tick. */
export function batchingSocket(options: { host: string; port: number }): Socket {
  const socket = new Socket();
  // Installed after connect(): net.Socket.connect resets `write` on the instance to its own.
  socket.connect(options);
  return batchWrites(socket);
}

/** `socket` (already connecting or connected, e.g. a proxy tunnel), its writes batched per tick. */
export function batchWrites(socket: Socket): Socket {
  const write = socket.write.bind(socket);
  let corked = false;
  const batched = (chunk: Uint8Array | string, encodingOrCallback?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean => {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(() => {
        corked = false;
        socket.uncork();
      });
    }
    return typeof encodingOrCallback === 'function' ? write(chunk, encodingOrCallback) : write(chunk, encodingOrCallback, callback);
  };
  socket.write = batched;
  return socket;
}
