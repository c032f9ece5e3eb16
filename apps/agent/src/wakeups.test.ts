import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { remoteErrorClass } from '@airlock/errors';
import { retryAfterOf } from './retry.ts';
import { WakeupStream } from './wakeups.ts';

/** A control plane's side of the stream, scripted per test: each opening gets the next script. */
type Script = (res: ServerResponse) => void;

const servers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of servers.splice(0)) await close();
});

async function serve(...scripts: Script[]): Promise<{ open: (signal: AbortSignal) => Promise<Response>; opened: () => number }> {
  let opened = 0;
  const server = createServer((_req, res) => {
    const script = scripts[Math.min(opened, scripts.length - 1)];
    opened += 1;
    script?.(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/trpc/agent.wakeups`;
  return { open: (signal) => fetch(url, { signal }), opened: () => opened };
}

const stream = (res: ServerResponse, ...events: string[]) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const event of events) res.write(event);
};
const CONNECTED = 'event: connected\ndata: {}\n\n';
const ENVELOPE = { payload: 'eyJ...', signature: 'c2ln' };
const JOB = `data: ${JSON.stringify({ envelope: ENVELOPE })}\n\n`;
const PING = ': ping\n';
const RETURN = 'event: return\ndata: \n\n';

describe('the agent side of the wake-up stream', () => {
  it('answers with the job the stream brings, and the deadline when it only pings', async () => {
    let later: ServerResponse | null = null;
    const { open } = await serve((res) => {
      stream(res, CONNECTED, PING);
      later = res;
    });
    const wakeups = new WakeupStream(open);
    expect([wakeups.connected, wakeups.connections]).toEqual([false, 0]);
    const waited = Date.now();
    expect(await wakeups.wait(Date.now() + 300)).toEqual({ kind: 'deadline' });
    expect([wakeups.connected, wakeups.connections]).toEqual([true, 1]);
    expect(Date.now() - waited).toBeGreaterThanOrEqual(290);
    setTimeout(() => later?.write(JOB), 100);
    expect(await wakeups.wait(Date.now() + 5_000)).toEqual({ kind: 'job', envelope: ENVELOPE });
    // A job is answered once.
    expect(await wakeups.wait(Date.now() + 200)).toEqual({ kind: 'deadline' });
    wakeups.close();
  });

  it('answers heartbeat when the control plane asks for one', async () => {
    const { open } = await serve((res) => {
      stream(res, CONNECTED, 'data: {"heartbeat":true}\n\n', RETURN);
      res.end();
    });
    const wakeups = new WakeupStream(open, { shortestStreamMs: 60_000 });
    expect(await wakeups.wait(Date.now() + 2_000)).toEqual({ kind: 'heartbeat' });
    wakeups.close();
  });

  it('ignores what is not a job: other events, other data, a null envelope', async () => {
    const { open } = await serve((res) => stream(res, CONNECTED, 'data: {"envelope":null}\n\n', `event: restore-id\ndata: ${JSON.stringify({ envelope: ENVELOPE })}\n\n`, 'data: "envelope"\n\n'));
    const wakeups = new WakeupStream(open);
    expect(await wakeups.wait(Date.now() + 300)).toEqual({ kind: 'deadline' });
    wakeups.close();
  });

  it('opens the next stream when the control plane ends one, and counts an end at once as a failure', async () => {
    const { open, opened } = await serve(
      (res) => {
        stream(res, CONNECTED);
        setTimeout(() => res.end(RETURN), 300);
      },
      (res) => {
        // A job, then the end at once: a stream that brought a job may end as soon as it likes.
        stream(res, CONNECTED, JOB, RETURN);
        res.end();
      },
      (res) => stream(res, CONNECTED),
    );
    const wakeups = new WakeupStream(open, { shortestStreamMs: 200 });
    expect(await wakeups.wait(Date.now() + 5_000)).toEqual({ kind: 'job', envelope: ENVELOPE });
    expect(opened()).toBe(2);
    expect(wakeups.connections).toBe(2);
    expect(await wakeups.wait(Date.now() + 300)).toEqual({ kind: 'deadline' });
    expect(opened()).toBe(3);
    wakeups.close();

    const quick = await serve((res) => {
      stream(res, CONNECTED, RETURN);
      res.end();
    });
    await expect(new WakeupStream(quick.open, { shortestStreamMs: 200 }).wait(Date.now() + 2_000)).rejects.toThrow(/ended the wake-up stream at once/);
  });

  it('rejects with the refusal as the control plane gives it: its class, and Retry-After from an HTTP refusal', async () => {
    const refused = await serve((res) =>
      stream(res, CONNECTED, `event: serialized-error\ndata: ${JSON.stringify({ message: 'agent request refused: agent revoked', code: -32001, data: { code: 'UNAUTHORIZED', httpStatus: 401, errorClass: 'authentication' } })}\n\n`),
    );
    const error = await new WakeupStream(refused.open).wait(Date.now() + 2_000).catch((caught: unknown) => caught);
    expect(remoteErrorClass(error)).toBe('authentication');
    expect(String(error)).toMatch(/agent revoked/);

    const shed = await serve((res) => {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end(JSON.stringify({ error: { message: 'overloaded', code: -32603, data: { code: 'SERVICE_UNAVAILABLE', httpStatus: 503, errorClass: 'operational' } } }));
    });
    const overloaded = await new WakeupStream(shed.open).wait(Date.now() + 2_000).catch((caught: unknown) => caught);
    expect(remoteErrorClass(overloaded)).toBe('operational');
    expect(retryAfterOf(overloaded)).toBe(7_000);

    const proxy = await serve((res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>'));
    await expect(new WakeupStream(proxy.open).wait(Date.now() + 2_000)).rejects.toThrow(/HTTP 502/);

    // A refusal that never ends is read no further than a refusal needs.
    const endless = await serve((res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      const filler = setInterval(() => res.write('x'.repeat(64 * 1024)), 5);
      res.on('close', () => clearInterval(filler));
    });
    await expect(new WakeupStream(endless.open).wait(Date.now() + 5_000)).rejects.toThrow(/HTTP 503/);
  });

  it('counts a ping as word from the control plane', async () => {
    let pinger: NodeJS.Timeout | undefined;
    const { open } = await serve((res) => {
      stream(res, CONNECTED);
      pinger = setInterval(() => res.write(PING), 100);
    });
    const wakeups = new WakeupStream(open, { silenceMs: 300 });
    expect(await wakeups.wait(Date.now() + 1_000)).toEqual({ kind: 'deadline' });
    clearInterval(pinger);
    wakeups.close();
  });

  it('drops a stream it hears nothing on and answers silent, so the agent looks for work anyway', async () => {
    const { open, opened } = await serve((res) => stream(res, CONNECTED));
    const wakeups = new WakeupStream(open, { silenceMs: 300 });
    expect(await wakeups.wait(Date.now() + 5_000)).toEqual({ kind: 'silent' });
    // The next wait opens a new stream.
    expect(await wakeups.wait(Date.now() + 5_000)).toEqual({ kind: 'silent' });
    expect(opened()).toBe(2);
  });

  it('refuses an event larger than any the control plane sends, without holding it', async () => {
    const { open } = await serve((res) => stream(res, CONNECTED, `data: ${'x'.repeat(1_100_000)}`));
    await expect(new WakeupStream(open).wait(Date.now() + 5_000)).rejects.toThrow();
  });
});
