/**
 * `https@1`: reads one collection from a REST endpoint that only the agent can reach, page after
 * page, and streams its records as JSON Lines into the host's encryption pipeline.
 *
 * - Only the origin and paths pinned in the local policy are requested; anything else is refused
 *   before a socket is opened. Redirects are never followed, and a `next` link must stay on the
 *   endpoint's origin and path.
 * - TLS is verified against the pinned CA bundle (or the system's roots), and a pinned certificate
 *   fingerprint is compared, in constant time, on every connection. Verification is never off.
 * - Only GET. Pages are parsed one at a time, bounded in size, count and total bytes; going past a
 *   bound fails the stream, so a partial collection is never delivered as a whole one.
 * - 429 and 503 are waited out as `Retry-After` says, within a bounded wait and number of attempts.
 * - Listing reads the first page and keeps its validator (`ETag`, else `Last-Modified`, else the
 *   SHA-256 of its bytes); reading starts over and fails with `ConflictError` when the first page
 *   no longer has it: the collection changed between the listing and the read.
 */
import { isUtf8 } from 'node:buffer';
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { type ConnectorContext, defineSource, matchPath, type SourceFile, type SourceSession } from '@airlock/connector-api';
import {
  asNetworkError,
  AuthenticationError,
  ConflictError,
  HostKeyMismatchError,
  isAirlockError,
  NotAllowedError,
  NotFoundError,
  OperationalError,
  PolicyViolationError,
  UserError,
} from '@airlock/errors';
import { authorityOf, httpsSourceDefinition, type HttpsSourceConfig, type HttpsSourcePolicy, outputNameOf, pathOf } from './definition.ts';
import { AmbiguousKeyError, compact, elementSpans, spanAt } from './json-spans.ts';
import { nextLink } from './link-header.ts';

/** The first wait after a 429/503 without `Retry-After`, doubled per attempt, in milliseconds. */
const DEFAULT_RETRY_WAIT_MS = 1_000;
const TLS_VERIFY_CODE = /^(CERT_|ERR_TLS_CERT|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH)/;

/** A URL as messages show it: origin and path, never the query (it can hold a cursor or a filter value). */
function shown(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

/** How long `Retry-After` asks for, in milliseconds (delta-seconds or an HTTP date), or undefined. */
export function retryAfterMs(header: string | undefined, now = Date.now()): number | undefined {
  if (header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new OperationalError('the run was cancelled'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new OperationalError('the run was cancelled'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

interface Page {
  readonly url: string;
  readonly body: Buffer;
  readonly headers: IncomingMessage['headers'];
}

/** What a listing saw of the first page, to know at the read whether the collection is still the same. */
function validatorOf(page: Page): string {
  const etag = page.headers.etag;
  if (etag !== undefined && etag !== '') return `etag ${etag}`;
  const modified = page.headers['last-modified'];
  if (modified !== undefined && modified !== '') return `last-modified ${modified}`;
  return `sha256 ${createHash('sha256').update(page.body).digest('hex')}`;
}

/** The run-wide bounds: pages and bytes read so far. */
class Budget {
  pages = 0;
  bytes = 0;
  constructor(private readonly config: HttpsSourceConfig) {}

  page(url: string): void {
    this.pages += 1;
    if (this.pages > this.config.maxPages) {
      throw new UserError(`${shown(url)}: the collection has more than ${this.config.maxPages} pages (maxPages); nothing was delivered as complete`);
    }
  }

  take(url: string, bytes: number, pageBytes: number): void {
    this.bytes += bytes;
    if (pageBytes > this.config.maxPageBytes) throw new UserError(`${shown(url)}: a page is larger than ${this.config.maxPageBytes} bytes (maxPageBytes)`);
    if (this.bytes > this.config.maxBytes) {
      throw new UserError(`${shown(url)}: the collection is larger than ${this.config.maxBytes} bytes (maxBytes); nothing was delivered as complete`);
    }
  }
}

class HttpsSession implements SourceSession {
  /** The first page's validator per listed path. */
  readonly #listed = new Map<string, string>();

  constructor(
    private readonly ctx: ConnectorContext,
    private readonly config: HttpsSourceConfig,
    private readonly agent: https.Agent,
    private readonly headers: Readonly<Record<string, string>>,
  ) {}

  async list(): Promise<SourceFile[]> {
    const page = await this.#get(this.config.endpoint, new Budget(this.config));
    const path = pathOf(this.config.endpoint);
    this.#listed.set(path, validatorOf(page));
    const modified = Date.parse(page.headers['last-modified'] ?? '');
    return [{ path, name: outputNameOf(this.config), size: 0, mtimeMs: Number.isNaN(modified) ? Date.now() : modified, generated: true }];
  }

  async open(file: SourceFile): Promise<Readable> {
    const listed = this.#listed.get(file.path);
    if (listed === undefined || file.path !== pathOf(this.config.endpoint)) throw new NotFoundError(`${file.path} was not listed by this source`);
    const budget = new Budget(this.config);
    const first = await this.#get(this.config.endpoint, budget);
    if (validatorOf(first) !== listed) {
      throw new ConflictError(`${shown(this.config.endpoint)} changed since it was listed (its first page is no longer the same); read again at the next run`);
    }
    const seen = new Set<string>([first.url]);
    let pending: Page | undefined = first;
    let next: string | undefined;
    /** The records of the next page that has any, and whether more may follow; null at the end. */
    const nextChunk = async (): Promise<{ bytes: Buffer; last: boolean } | null> => {
      for (;;) {
        const page: Page | undefined = pending ?? (next === undefined ? undefined : await this.#get(next, budget));
        pending = undefined;
        if (page === undefined) return null;
        const { lines, following } = this.#records(page);
        if (following !== undefined) {
          if (seen.has(following)) throw new UserError(`${shown(following)}: the pagination leads back to a page already read`);
          seen.add(following);
        }
        next = following;
        // A page with no records and a next page: read on, so every push carries bytes.
        if (lines.length > 0) return { bytes: Buffer.from(lines.join(''), 'utf8'), last: next === undefined };
        if (next === undefined) return null;
      }
    };
    let busy = false;
    return new Readable({
      // One page at a time, only when the consumer asks: a slow destination holds the requests back.
      read() {
        if (busy) return;
        busy = true;
        nextChunk().then(
          (chunk) => {
            busy = false;
            if (chunk !== null) this.push(chunk.bytes);
            if (chunk === null || chunk.last) this.push(null);
          },
          (error: unknown) => this.destroy(error instanceof Error ? error : new OperationalError(String(error))),
        );
      },
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  /** The records of one page as JSON Lines, and the next page's URL. */
  #records(page: Page): { lines: string[]; following: string | undefined } {
    // Checked, not repaired: a replacement character would change the data without a word.
    const text = isUtf8(page.body) ? page.body.toString('utf8') : '';
    try {
      JSON.parse(text);
    } catch {
      // Neither the page nor the parser's message leaves: either may quote the data.
      throw new UserError(`${shown(page.url)}: a page is not valid UTF-8 JSON`);
    }
    try {
      const at = spanAt(text, this.config.records);
      const elements = at === undefined ? undefined : elementSpans(text, at);
      if (elements === undefined) throw new UserError(`${shown(page.url)}: no array of records at ${JSON.stringify(this.config.records || '(the page)')}`);
      const lines = elements.map((span) => `${compact(text, span)}\n`);
      return { lines, following: this.#following(page, text) };
    } catch (error) {
      if (error instanceof AmbiguousKeyError) throw new UserError(`${shown(page.url)}: ${error.message}`);
      throw error;
    }
  }

  /** Where the next page is, checked to stay on the endpoint's origin and path. */
  #following(page: Page, text: string): string | undefined {
    const pagination = this.config.pagination;
    if (pagination.type === 'none') return undefined;
    let target: string | undefined;
    if (pagination.type === 'link') {
      const header = page.headers['link'];
      target = nextLink(Array.isArray(header) ? header.join(', ') : header, page.url);
    } else {
      const span = spanAt(text, pagination.field);
      if (span === undefined) return undefined;
      const raw = text.slice(span.start, span.end);
      const value: unknown = JSON.parse(raw);
      if (value === null || value === '') return undefined;
      if (typeof value !== 'string' && typeof value !== 'number') throw new UserError(`${shown(page.url)}: the cursor at ${pagination.field} is neither a string nor a number`);
      const url = new URL(this.config.endpoint);
      // A number goes as written, so a 64-bit cursor is not rounded.
      url.searchParams.set(pagination.param, typeof value === 'string' ? value : raw);
      target = url.href;
    }
    if (target === undefined) return undefined;
    const endpoint = new URL(this.config.endpoint);
    const url = new URL(target);
    if (url.origin !== endpoint.origin || pathOf(url.href) !== pathOf(endpoint.href) || url.username !== '' || url.password !== '') {
      throw new PolicyViolationError(`${shown(page.url)}: the next page is at ${shown(url.href)}, off the endpoint's origin and path; not followed`);
    }
    url.hash = '';
    return url.href;
  }

  /** One GET, with 429/503 waited out as the server asks, within the bounds of the config. */
  async #get(url: string, budget: Budget): Promise<Page> {
    budget.page(url);
    for (let attempt = 0; ; attempt += 1) {
      const outcome = await this.#request(url, budget);
      if ('page' in outcome) return outcome.page;
      const wait = outcome.retryAfterMs ?? DEFAULT_RETRY_WAIT_MS * 2 ** attempt;
      if (attempt >= this.config.maxRetries) {
        throw new OperationalError(`${shown(url)} answered ${outcome.status} ${this.config.maxRetries + 1} times; giving up for this run`);
      }
      if (wait > this.config.maxRetryWaitMs) {
        throw new OperationalError(`${shown(url)} answered ${outcome.status} and asks to wait ${Math.ceil(wait / 1000)} s, more than maxRetryWaitMs`);
      }
      this.ctx.logger.info({ url: shown(url), status: outcome.status, waitMs: wait, attempt: attempt + 1 }, 'rate limited; waiting as Retry-After asks');
      await sleep(wait, this.ctx.signal);
    }
  }

  #request(url: string, budget: Budget): Promise<{ page: Page } | { status: number; retryAfterMs: number | undefined }> {
    return new Promise((resolve, reject) => {
      const fail = (error: unknown) => {
        request.destroy();
        reject(translate(url, error));
      };
      const request = https.request(url, { method: 'GET', agent: this.agent, headers: this.headers, signal: this.ctx.signal, timeout: this.config.requestTimeoutMs }, (response) => {
        const status = response.statusCode ?? 0;
        if (status !== 200) {
          // The body is not wanted and may be endless: drop the connection rather than drain it.
          response.once('error', () => undefined);
          if (status === 429 || status === 503) {
            const header = response.headers['retry-after'];
            resolve({ status, retryAfterMs: retryAfterMs(Array.isArray(header) ? header[0] : header) });
            request.destroy();
          } else fail(statusError(url, status));
          return;
        }
        const type = (response.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
        if (type !== 'application/json' && !/^application\/[a-z0-9.+-]+\+json$/.test(type)) {
          response.once('error', () => undefined);
          fail(new UserError(`${shown(url)} answered with ${JSON.stringify(type || 'no content type')}, not JSON`));
          return;
        }
        if ((response.headers['content-encoding'] ?? 'identity') !== 'identity') {
          response.once('error', () => undefined);
          fail(new UserError(`${shown(url)} answered with content-encoding ${response.headers['content-encoding'] ?? ''}, which was not asked for`));
          return;
        }
        const chunks: Buffer[] = [];
        let pageBytes = 0;
        response.on('data', (chunk: Buffer) => {
          pageBytes += chunk.length;
          try {
            budget.take(url, chunk.length, pageBytes);
          } catch (error) {
            fail(error);
            return;
          }
          chunks.push(chunk);
        });
        response.once('error', fail);
        response.once('aborted', () => fail(new OperationalError(`${shown(url)}: the connection closed mid-page`)));
        response.once('end', () => {
          if (!response.complete) fail(new OperationalError(`${shown(url)}: the connection closed mid-page`));
          else resolve({ page: { url, body: Buffer.concat(chunks), headers: response.headers } });
        });
      });
      request.once('timeout', () => fail(new OperationalError(`${shown(url)}: no answer within ${this.config.requestTimeoutMs} ms`)));
      request.once('error', fail);
      request.end();
    });
  }
}

function statusError(url: string, status: number): Error {
  const what = `${shown(url)} answered ${status}`;
  if (status >= 300 && status < 400) return new UserError(`${what}: redirects are not followed; point the endpoint at the final URL`);
  if (status === 401) return new AuthenticationError(`${what}: the credentials were refused`);
  if (status === 403) return new NotAllowedError(`${what}: the credentials may not read this`);
  if (status === 404 || status === 410) return new NotFoundError(what);
  if (status >= 500) return new OperationalError(what);
  return new UserError(what);
}

/** Transport failures in the project's terms; a certificate that is not the pinned one is never retried. */
function translate(url: string, error: unknown): unknown {
  if (isAirlockError(error)) return error;
  const code = typeof error === 'object' && error !== null ? Reflect.get(error, 'code') : undefined;
  if (typeof code === 'string' && TLS_VERIFY_CODE.test(code)) {
    return new HostKeyMismatchError(`${shown(url)}: the server's certificate is not trusted by the local policy's pin (${code})`, { cause: error });
  }
  const translated = asNetworkError(shown(url), error);
  return translated === error ? new OperationalError(`${shown(url)}: the request failed`, { cause: error }) : translated;
}

/** Compares the leaf certificate's SHA-256 with the pin in constant time, after the usual name check. */
function pinnedIdentity(pin: Buffer | undefined) {
  return (host: string, certificate: PeerCertificate): Error | undefined => {
    const mismatch = checkServerIdentity(host, certificate);
    if (mismatch !== undefined || pin === undefined) return mismatch;
    const actual = createHash('sha256').update(certificate.raw).digest();
    if (actual.length === pin.length && timingSafeEqual(actual, pin)) return undefined;
    return new HostKeyMismatchError(`${host}: the server's certificate is not the one pinned in the local policy (certificateSha256)`);
  };
}

/** The policy entry for this endpoint: its origin, and a path pattern that matches the endpoint. */
function entryFor(config: HttpsSourceConfig, policy: readonly HttpsSourcePolicy[]): HttpsSourcePolicy {
  const path = pathOf(config.endpoint);
  const entry = policy.find((candidate) => new URL(candidate.origin).origin === new URL(config.endpoint).origin && candidate.paths.some((pattern) => matchPath(pattern, path)));
  if (entry === undefined) throw new PolicyViolationError(`${shown(config.endpoint)} is not pinned in the local policy (sources.https)`);
  return entry;
}

async function authHeaders(ctx: ConnectorContext, config: HttpsSourceConfig): Promise<{ headers: Record<string, string>; tls: https.AgentOptions }> {
  const headers: Record<string, string> = { accept: 'application/json', 'accept-encoding': 'identity', 'user-agent': 'airlock-agent' };
  if (config.credentialRef === undefined) return { headers, tls: {} };
  const secret = await ctx.secret(config.credentialRef);
  const missing = (names: string[]) => new UserError(`credential ${JSON.stringify(config.credentialRef)} needs ${names.join(' and ')} for ${config.auth === 'none' ? 'a client certificate' : `${config.auth} auth`}`);
  if (config.auth === 'basic') {
    const { username, password } = secret;
    if (username === undefined || password === undefined) throw missing(['username', 'password']);
    if (username.includes(':')) throw new UserError(`credential ${JSON.stringify(config.credentialRef)}: a Basic username cannot contain ":"`);
    headers['authorization'] = `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
  } else if (config.auth === 'bearer') {
    const { token } = secret;
    if (token === undefined) throw missing(['token']);
    if (!/^[\x21-\x7e]+$/.test(token)) throw new UserError(`credential ${JSON.stringify(config.credentialRef)}: the token must be printable ASCII without spaces`);
    headers['authorization'] = `Bearer ${token}`;
  }
  if (!config.clientCertificate) return { headers, tls: {} };
  const { clientCertificate, clientKey, clientKeyPassphrase } = secret;
  if (clientCertificate === undefined || clientKey === undefined) throw missing(['clientCertificate', 'clientKey']);
  return { headers, tls: { cert: clientCertificate, key: clientKey, ...(clientKeyPassphrase === undefined ? {} : { passphrase: clientKeyPassphrase }) } };
}

/**
 * The HTTPS source. It requests only an origin and path that the local policy's `sources.https`
 * pins, trusting only the certificate that entry pins.
 */
export const httpsSource = defineSource(httpsSourceDefinition, {
  async connect(ctx, config, policy) {
    // Everything here is checked before a socket exists: origin, path, pin, credentials.
    const entry = entryFor(config, policy);
    if (authorityOf(entry.origin) !== authorityOf(config.endpoint)) throw new PolicyViolationError(`${shown(config.endpoint)} is not pinned in the local policy`);
    const ca =
      entry.ca ??
      (entry.caFile === undefined
        ? undefined
        : await readFile(entry.caFile, 'utf8').catch((error: unknown) => {
            throw new UserError(`cannot read the CA bundle ${entry.caFile ?? ''} named in the local policy`, { cause: error });
          }));
    const { headers, tls } = await authHeaders(ctx, config);
    const agent = new https.Agent({
      // One connection, kept alive across pages: a collection is read in order, never in parallel.
      keepAlive: true,
      maxSockets: 1,
      // No resumed sessions: each connection is verified, and its certificate compared with the pin.
      maxCachedSessions: 0,
      rejectUnauthorized: true,
      ...(ca === undefined ? {} : { ca }),
      checkServerIdentity: pinnedIdentity(entry.certificateSha256 === undefined ? undefined : Buffer.from(entry.certificateSha256, 'hex')),
      ...tls,
    });
    return new HttpsSession(ctx, config, agent, headers);
  },
});
