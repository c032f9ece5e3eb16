/**
 * The HTTP transport: a Node request handler that caps the body, keeps its raw bytes for
 * signature checks, and hands the request to tRPC's fetch adapter; the single sign-on redirects
 * (oidc-http.ts) are answered beside it. Apps add TLS and listen.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import {
  AgentKeyCache,
  authorizationServerMetadata,
  DEFAULT_MAX_BATCH_SIZE,
  DEFAULT_RATE_LIMITS,
  jwksOf,
  LoginGuard,
  RateLimits,
  type RateLimitSettings,
  resolveAuthSettings,
  retryAfterOf,
} from '@airlock/auth';
import { randomUUID } from 'node:crypto';
import { type Context, createContext, type ServerDeps } from './context.ts';
import { handleSso, isSsoPath } from './oidc-http.ts';
import type { RequestCallerType, RequestLogWriter } from './request-log.ts';
import { handleTokenRequest } from './oauth/token-endpoint.ts';
import { appRouter } from './router.ts';
import { checkReadiness } from './health.ts';
import { createMetrics, type Metrics, processMetrics } from '@airlock/storage';
import { securityHeaders, type StaticHandler } from './static-files.ts';
import { StreamPings } from './stream-pings.ts';

export interface HttpOptions {
  /** Largest accepted request body, in bytes. */
  maxBodyBytes: number;
  /** Most calls in one batched request; a larger batch is refused (400) before any call runs. Default 16. */
  maxBatchSize?: number;
  /** Operations per window per API key, console user, agent and source IP. Default `DEFAULT_RATE_LIMITS`. */
  rateLimits?: Partial<RateLimitSettings>;
  /** How often the refusals after a subject's first are audited as one row. Default `DEFAULT_REFUSAL_SUMMARY_MS`. */
  refusalSummaryMs?: number;
  /** Serves the console's build (its files and its routes) outside the API's paths; unset: 404. */
  console?: StaticHandler;
  /** Where each tRPC and token request is logged (never its body or credentials); unset: not logged. */
  requestLog?: RequestLogWriter;
}

/** What the request log learns while a request is served. */
interface RequestNote {
  tenantId: string | null;
  callerType: RequestCallerType;
  callerId: string | null;
  procedure: string;
  /** Error codes of the request; empty: none. */
  errors: string[];
}

const knownProcedures = new Set(Object.keys(appRouter._def.procedures));

/** The procedures a /trpc path names, as the router knows them; anything else is `(unknown)`, never the raw text. */
function procedureListOf(pathname: string): string[] {
  const names = pathname.slice('/trpc/'.length).split(',').slice(0, 64);
  return names.map((name) => (knownProcedures.has(name) ? name : '(unknown)'));
}

function proceduresOf(pathname: string): string {
  return procedureListOf(pathname).join(',');
}

/** What a request's metrics are labelled by: fixed words, never the path as sent. */
type Route = 'trpc' | 'oauth_token' | 'console' | 'healthz' | 'readyz' | 'sso' | 'well_known' | 'not_found';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

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

/** A client assertion is a few kilobytes at most; a token request never needs the API's body limit. */
const MAX_TOKEN_REQUEST_BYTES = 16 * 1024;

function headersOf(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value === 'string') headers.set(name, value);
    else if (Array.isArray(value)) headers.set(name, value.join(', '));
  }
  return headers;
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
  const pings = new StreamPings();
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
    const received = performance.now();
    let route: Route = 'not_found';
    res.once('finish', () => {
      const code = String(res.statusCode);
      processMetrics.httpRequests.inc({ route, method: METHODS.has(method) ? method : 'other', code });
      processMetrics.httpSeconds.observe({ route, code }, (performance.now() - received) / 1000);
    });
    if (first === 'healthz' && pathname === '/healthz') {
      route = 'healthz';
      return send(res, 200, { ok: true }, { 'cache-control': 'no-store' });
    }
    if (first === 'readyz' && pathname === '/readyz') {
      route = 'readyz';
      const readiness = await checkReadiness(deps);
      return send(res, readiness.ready ? 200 : 503, readiness, { 'cache-control': 'no-store' });
    }
    if (first === '.well-known' && (pathname === '/.well-known/jwks.json' || pathname === '/.well-known/oauth-authorization-server')) {
      route = 'well_known';
      if (!deps.oauth) return send(res, 404, { error: 'not found' });
      const document = pathname === '/.well-known/jwks.json' ? jwksOf(deps.oauth.keys) : authorizationServerMetadata(deps.oauth);
      return send(res, 200, document, { 'cache-control': 'public, max-age=300' });
    }
    if (isSsoPath(pathname)) {
      route = 'sso';
      const url = new URL(pathAndQuery, 'http://control-plane');
      return handleSso(deps, auth, limits, { method, url, host: req.headers.host, cookie: req.headers.cookie, sourceIp: req.socket.remoteAddress ?? null }, res);
    }
    const isToken = pathname === '/oauth/token' && deps.oauth !== undefined;
    if (!isToken && first !== 'trpc') {
      // The console answers its files and its own routes; every other path is 404, so a probe of a
      // path the server does not have (`/metrics` here, a typo) is never fooled by the console's page.
      if (options.console) {
        route = 'console';
        return options.console(method, pathname, res);
      }
      return send(res, 404, { error: 'not found' });
    }
    route = isToken ? 'oauth_token' : 'trpc';
    // Timed from here: the log's latency is the server's own work on the request.
    const started = performance.now();
    const requestId = randomUUID();
    res.setHeader('x-request-id', requestId);
    const note: RequestNote = { tenantId: null, callerType: 'anonymous', callerId: null, procedure: isToken ? 'oauth.token' : proceduresOf(pathname), errors: [] };
    try {
      if (isToken) await serveToken(req, res, method, pathAndQuery, note);
      else await serveTrpc(req, res, method, pathAndQuery, note);
    } finally {
      const status = res.headersSent ? res.statusCode : 500;
      options.requestLog?.record({
        at: new Date(),
        tenantId: note.tenantId,
        callerType: note.callerType,
        callerId: note.callerId,
        procedure: note.procedure,
        method,
        status,
        outcome: note.errors.length > 0 ? [...new Set(note.errors)].join(',') : status < 400 ? 'OK' : `HTTP_${status}`,
        latencyMs: performance.now() - started,
        sourceIp: req.socket.remoteAddress ?? null,
        userAgent: typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'] : null,
        requestId,
      });
    }
  };

  async function serveToken(req: IncomingMessage, res: ServerResponse, method: string, pathAndQuery: string, note: RequestNote): Promise<void> {
    if (!deps.oauth) return send(res, 404, { error: 'not found' });
    let tokenBody: Uint8Array;
    try {
      tokenBody = await readBody(req, Math.min(options.maxBodyBytes, MAX_TOKEN_REQUEST_BYTES));
    } catch {
      note.errors.push('invalid_request');
      return send(res, 400, { error: 'invalid_request', error_description: 'request body unreadable or too large' }, { 'cache-control': 'no-store' });
    }
    const facts = { method, pathAndQuery, headers: headersOf(req), body: tokenBody, sourceIp: req.socket.remoteAddress ?? null };
    const answer = await handleTokenRequest(deps, deps.oauth, facts, limits);
    if (answer.client) Object.assign(note, { tenantId: answer.client.tenant_id, callerType: 'oauth-client', callerId: answer.client.id });
    const error = answer.body['error'];
    if (typeof error === 'string') note.errors.push(error);
    return send(res, answer.status, answer.body, answer.headers);
  }

  async function serveTrpc(req: IncomingMessage, res: ServerResponse, method: string, pathAndQuery: string, note: RequestNote): Promise<void> {
    let body: Uint8Array;
    try {
      body = method === 'GET' || method === 'HEAD' ? new Uint8Array() : await readBody(req, options.maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLarge) {
        note.errors.push('PAYLOAD_TOO_LARGE');
        return send(res, 413, { error: `request body over ${options.maxBodyBytes} bytes` });
      }
      note.errors.push('BAD_REQUEST');
      return send(res, 400, { error: 'could not read request body' });
    }
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const headers = headersOf(req);
    const request = new Request(new URL(pathAndQuery, 'http://control-plane'), {
      method,
      headers,
      body: body.length > 0 ? new Uint8Array(body) : undefined,
      signal: abort.signal,
    });
    const facts = { method, pathAndQuery, headers, body, sourceIp: req.socket.remoteAddress ?? null };
    let context: Context | null = null;
    /** Each failed call's code by its procedure; the calls of a batch not in it succeeded. */
    const failedCalls = new Map<string, string>();
    const callsStarted = performance.now();
    const response = await fetchRequestHandler({
      endpoint: '/trpc',
      req: request,
      router: appRouter,
      createContext: ({ resHeaders }) => (context = createContext(deps, facts, resHeaders, limits, loginGuard)),
      maxBatchSize: options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE,
      responseMeta: ({ errors }) => {
        note.errors.push(...errors.map((error) => error.code));
        const retryAfter = retryAfterOf(errors);
        return retryAfter === null ? {} : { headers: new Headers({ 'retry-after': String(retryAfter) }) };
      },
      onError: ({ error, path }) => {
        if (path !== undefined) failedCalls.set(path, error.code);
        // An error inside an event stream comes after its 200 went out: the log still records it.
        note.errors.push(error.code);
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
    const caller = (context as Context | null)?.caller;
    if (caller) Object.assign(note, { tenantId: caller.tenantId, callerType: caller.type, callerId: caller.id });
    const eventStream = response.body !== null && (response.headers.get('content-type') ?? '').startsWith('text/event-stream');
    // A reverse proxy (nginx) must pass a stream's events on as they come, not buffer them.
    if (eventStream) responseHeaders['x-accel-buffering'] = 'no';
    res.writeHead(response.status, responseHeaders);
    if (eventStream && response.body !== null) {
      // Written as it comes, with pings between events, until it ends or the client goes away.
      const stream = pings.add(res);
      const reader = response.body.getReader();
      try {
        for (let next = await reader.read(); !next.done && !res.destroyed; next = await reader.read()) stream.write(next.value);
      } catch {
        // The client went away: the request's signal has ended the stream's work already.
      } finally {
        stream.remove();
        await reader.cancel().catch(() => undefined);
        res.end();
      }
    } else {
      res.end(Buffer.from(await response.arrayBuffer()));
    }
    const seconds = (performance.now() - callsStarted) / 1000;
    const pathnameOnly = new URL(pathAndQuery, 'http://control-plane').pathname;
    for (const procedure of procedureListOf(pathnameOnly)) {
      // A path the router does not know never ran: its call failed as a whole request.
      const code = procedure === '(unknown)' ? 'NOT_FOUND' : (failedCalls.get(procedure) ?? (response.status >= 400 && failedCalls.size === 0 ? `HTTP_${response.status}` : 'OK'));
      processMetrics.trpcRequests.inc({ procedure, code });
      processMetrics.trpcSeconds.observe({ procedure, code }, seconds);
    }
  }
}

/**
 * The metrics listener's handler: `/metrics` (Prometheus text format), `/healthz` and `/readyz`;
 * anything else 404. The app serves it on its own address (never the API's), which is what keeps
 * the numbers, tenant ids among them, to the monitoring network.
 */
export function createMetricsHandler(deps: Pick<ServerDeps, 'db' | 'signer'>, metrics: Metrics = createMetrics(deps.db)) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const { pathname } = new URL(req.url ?? '/', 'http://control-plane');
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') return send(res, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD' });
    if (pathname === '/healthz') return send(res, 200, { ok: true }, { 'cache-control': 'no-store' });
    if (pathname === '/readyz') {
      const readiness = await checkReadiness(deps);
      return send(res, readiness.ready ? 200 : 503, readiness, { 'cache-control': 'no-store' });
    }
    if (pathname !== '/metrics') return send(res, 404, { error: 'not found' });
    const text = await metrics.text();
    res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.end(method === 'HEAD' ? undefined : text);
  };
}
