import type { Readable } from 'node:stream';

/**
 * A pull-based web stream over a Node Readable, used instead of `Readable.toWeb`: Node 20's adapter
 * throws an uncaught "Controller is already closed" when the web side is cancelled while the Node
 * side still has data, which would take the agent down whenever a delivery fails mid-stream.
 * Pulling one chunk at a time keeps backpressure: the source is read only as fast as openpgp asks.
 */
export function webStreamFrom(readable: Readable): ReadableStream<Uint8Array> {
  const chunks: AsyncIterator<unknown> = readable[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await chunks.next();
        if (next.done === true) {
          controller.close();
          return;
        }
        const value: unknown = next.value;
        if (!(value instanceof Uint8Array)) {
          const error = new TypeError('plaintext stream must yield bytes, not strings or objects');
          readable.destroy(error);
          throw error;
        }
        controller.enqueue(value);
      },
      async cancel(reason) {
        readable.destroy(reason instanceof Error ? reason : undefined);
        await chunks.return?.();
      },
    },
    { highWaterMark: 1 },
  );
}
