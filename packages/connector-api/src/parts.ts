import { Writable } from 'node:stream';

export interface PartWritableOptions {
  /** The size of every part but the last. */
  partBytes: number;
  /** Sends one part; the writer is held back until it resolves. */
  send: (part: Buffer) => Promise<void>;
  /** Whether an empty delivery still sends one empty part (an S3 multipart upload needs one). */
  emptyPart: boolean;
}

/**
 * A stream that cuts what is written into parts of `partBytes` (the last one shorter) and hands each
 * to `send` in order. Holding back the writer until a part is sent is the backpressure, and at most
 * one part is held, so memory stays bounded whatever the delivery's size. Multipart destinations
 * (S3 parts, Azure blocks) build on it.
 */
export function partWritable(options: PartWritableOptions): Writable {
  const held: Buffer[] = [];
  let heldBytes = 0;
  let sent = 0;
  const take = (bytes: number): Buffer => {
    const all = Buffer.concat(held, heldBytes);
    held.length = 0;
    const rest = all.subarray(bytes);
    if (rest.length > 0) held.push(Buffer.from(rest));
    heldBytes = rest.length;
    return all.subarray(0, bytes);
  };
  const send = async (part: Buffer): Promise<void> => {
    await options.send(part);
    sent += 1;
  };
  return new Writable({
    write: (chunk: Buffer, _encoding, callback) => {
      held.push(chunk);
      heldBytes += chunk.length;
      const sendFull = async (): Promise<void> => {
        // A chunk may hold more than one part: every full part is sent before the next write.
        while (heldBytes >= options.partBytes) await send(take(options.partBytes));
      };
      sendFull().then(() => callback(), callback);
    },
    final: (callback) => {
      if (heldBytes === 0 && (sent > 0 || !options.emptyPart)) return callback();
      send(take(heldBytes)).then(() => callback(), callback);
    },
    destroy: (error, callback) => {
      held.length = 0;
      heldBytes = 0;
      callback(error);
    },
  });
}
