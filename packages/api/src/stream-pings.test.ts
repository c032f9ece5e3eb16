import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { type PingedStream, StreamPings } from './stream-pings.ts';

const encode = (text: string) => new TextEncoder().encode(text);

describe('pings for open event streams', () => {
  const streams: { res: ServerResponse; pinged: PingedStream }[] = [];
  const pings = new StreamPings(2_000);
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    streams.push({ res, pinged: pings.add(res) });
  });
  afterAll(async () => {
    for (const { pinged } of streams) pinged.remove();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** What each of `count` new streams received from its start until `during` is done with them. */
  async function receive(count: number, during: (opened: { res: ServerResponse; pinged: PingedStream }[]) => Promise<void>): Promise<string[]> {
    if (!server.listening) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const before = streams.length;
    const closer = new AbortController();
    const texts = Array.from({ length: count }, () => '');
    const reads = texts.map(async (_, i) => {
      const reader = (await fetch(url, { signal: closer.signal })).body?.pipeThrough(new TextDecoderStream()).getReader();
      for (let next = await reader?.read(); next && !next.done; next = await reader?.read()) texts[i] += next.value;
    });
    while (streams.length < before + count) await sleep(10);
    await during(streams.slice(before));
    closer.abort();
    await Promise.allSettled(reads);
    return texts;
  }

  it('pings every stream within its interval, from one timer, spread over the interval', async () => {
    const texts = await receive(4, () => sleep(2_500));
    for (const text of texts) expect(text).toMatch(/^: ping$/m);
  });

  it('never pings inside an event, and pings again once it ends', async () => {
    const texts = await receive(1, async ([opened]) => {
      opened?.pinged.write(encode('event: message\n'));
      opened?.pinged.write(encode('data: {"envelope":null}\n'));
      await sleep(2_500);
      opened?.pinged.write(encode('\n\n'));
      await sleep(2_500);
    });
    expect(texts[0]).toMatch(/^event: message\ndata: \{"envelope":null\}\n\n\n(: ping\n)+$/);
  });
});
