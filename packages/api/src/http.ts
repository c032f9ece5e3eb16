/**
 * The HTTP transport: a Node request handler that caps the body, keeps its raw bytes for
 * signature checks, and hands the request to tRPC's fetch adapter. Apps add TLS and listen.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { AgentKeyCache } from './auth/agent-auth.ts';
import { LoginGuard } from './auth/login-guard.ts';
import { resolveAuthSettings } from './auth/settings.ts';
import { createContext, type ServerDeps } from './context.ts';
import { DEFAULT_MAX_BATCH_SIZE, DEFAULT_RATE_LIMITS, RateLimits, type RateLimitSettings, retryAfterOf } from './rate-limits.ts';
import { appRouter } from './router.ts';
import { securityHeaders, type StaticHandler } from './static-files.ts';

export interface HttpOptions {
  /** Largest accepted request body, in bytes. */
  maxBodyBytes: number;
  /** Most calls in one batched request; a larger batch is refused (400) before any call runs. Default 16. */
  maxBatchSize?: number;
  /** Operations per window per API key, console user, agent and source IP. Default `DEFAULT_RATE_LIMITS`. */
  rateLimits?: Partial<RateLimitSettings>;
  /** How often the refusals after a subject's first are audited as one row. Default `DEFAULT_REFUSAL_SUMMARY_MS`. */
  refusalSummaryMs?: number;
  /** Serves the console's build for every path outside /trpc and /healthz; unset: 404. */
  console?: StaticHandler;
}

export const HSTS = 'max-age=31536000; includeSubDomains';

class BodyTooLarge extends Error {}

async function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) throw new BodyTooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > limit) throw new BodyTooLarge();
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

function send(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...securityHeaders, 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export function createHttpHandler(given: ServerDeps, options: HttpOptions) {
  const deps: ServerDeps = { ...given, agentKeys: given.agentKeys ?? new AgentKeyCache() };
  // A key revoked or rotated on any replica leaves this one's cache at once.
  const agentKeys = deps.agentKeys;
  deps.dispatcher.onAgentKeyChanged((agentId) => agentKeys?.forget(agentId));
  void deps.dispatcher.start();
  const limits = new RateLimits(options.rateLimits ?? DEFAULT_RATE_LIMITS, options.refusalSummaryMs, deps.db);
  const auth = resolveAuthSettings(deps.auth);
  const loginGuard = new LoginGuard(auth);
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Under TLS (which is when the cookies are Secure), browsers must never come back over plain HTTP,
    // where a cookie could be read or planted. A year, the common floor; subdomains included, since
    // none of them should serve the console's users over HTTP. No `preload`: that is the domain owner's call.
    if (auth.secureCookies) res.setHeader('strict-transport-security', HSTS);
    const pathAndQuery = req.url ?? '/';
    const { pathname } = new URL(pathAndQuery, 'http://control-plane');
    const [, first] = pathname.split('/');
    const method = req.method ?? 'GET';
    if (first === 'healthz') return send(res, 200, { ok: true });
    if (first !== 'trpc') {
      if (options.console) return options.console(method, pathname, res);
      return send(res, 404, { error: 'not found' });
    }
    let body: Uint8Array;
    try {
      body = method === 'GET' || method === 'HEAD' ? new Uint8Array() : await readBody(req, options.maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLarge) return send(res, 413, { error: `request body over ${options.maxBodyBytes} bytes` });
      return send(res, 400, { error: 'could not read request body' });
    }
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string') headers.set(name, value);
      else if (Array.isArray(value)) headers.set(name, value.join(', '));
    }
    const request = new Request(new URL(pathAndQuery, 'http://control-plane'), {
      method,
      headers,
      body: body.length > 0 ? new Uint8Array(body) : undefined,
      signal: abort.signal,
    });
    const facts = { method, pathAndQuery, headers, body, sourceIp: req.socket.remoteAddress ?? null };
    const response = await fetchRequestHandler({
      endpoint: '/trpc',
      req: request,
      router: appRouter,
      createContext: ({ resHeaders }) => createContext(deps, facts, resHeaders, limits, loginGuard),
      maxBatchSize: options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE,
      responseMeta: ({ errors }) => {
        const retryAfter = retryAfterOf(errors);
        return retryAfter === null ? {} : { headers: new Headers({ 'retry-after': String(retryAfter) }) };
      },
      onError: ({ error, path }) => {
        if (error.code === 'INTERNAL_SERVER_ERROR') deps.logger.error({ path, error: error.message }, 'request failed');
      },
    });
    const responseHeaders: Record<string, string | string[]> = { ...securityHeaders };
    response.headers.forEach((value, name) => {
      if (name !== 'set-cookie') responseHeaders[name] = value;
    });
    // Each cookie keeps its own header line: joined with commas they would not parse.
    const cookies = response.headers.getSetCookie();
    if (cookies.length > 0) responseHeaders['set-cookie'] = cookies;
    res.writeHead(response.status, responseHeaders);
    res.end(Buffer.from(await response.arrayBuffer()));
  };
}
