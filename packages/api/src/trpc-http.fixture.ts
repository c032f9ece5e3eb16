/**
 * Tests' tRPC calls over real HTTP: a server on a free loopback port, one request with its status
 * and body, and the data of a success.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Serves `handler` (`createHttpHandler`'s) on a free loopback port; `base` is its http:// origin. */
export async function listenOnLoopback(handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Promise<{ server: Server; base: string }> {
  const server = createServer((req, res) => void handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export interface Call {
  status: number;
  body: { result?: { data: unknown }; error?: { message: string; data?: { code: string; errorClass?: string } } };
}

/** A query goes as GET with its input in the URL, a mutation as POST with it in the body. */
export async function send(base: string, path: string, input: unknown, headers: Record<string, string>, method: 'GET' | 'POST'): Promise<Call> {
  const url = method === 'GET' ? `${base}/trpc/${path}${input === undefined ? '' : `?input=${encodeURIComponent(JSON.stringify(input))}`}` : `${base}/trpc/${path}`;
  const response = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(method === 'POST' ? { body: JSON.stringify(input) } : {}),
  });
  // The response is the server's JSON: its shape is what these tests assert on.
  return { status: response.status, body: (await response.json()) as Call['body'] };
}

export function data<T>(result: Call): T {
  if (result.status !== 200) throw new Error(`HTTP ${result.status}: ${JSON.stringify(result.body)}`);
  return result.body.result?.data as T;
}
