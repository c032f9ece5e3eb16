/**
 * Why a request never got an answer, said the way a person can act on it: which URL, and whether
 * the connection was refused, the name did not resolve, TLS failed, or time ran out. Node's fetch
 * (undici) throws a bare `TypeError: fetch failed` and hides the reason in `cause.code`, sometimes
 * one level further down or inside an AggregateError (one per address tried); this reads them all.
 */
import { NetworkError, type NetworkFailure } from './errors.ts';

/** Stands for an abort by timeout, which has no code of its own; never shown. */
const TIMED_OUT = 'timeout';

const TLS_CODE = /^(CERT_|ERR_TLS_|ERR_SSL_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH)/;

function failureOfCode(code: string): NetworkFailure | undefined {
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') return 'dns';
  if (TLS_CODE.test(code)) return 'tls';
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'ETIMEDOUT' || code === TIMED_OUT) return 'timeout';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return 'reset';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL') return 'unreachable';
  return undefined;
}

const SAYS: Record<NetworkFailure, string> = {
  refused: 'connection refused (is the server running, and is this the right port?)',
  dns: 'the host name does not resolve (check the URL and DNS)',
  tls: 'TLS failed',
  timeout: 'timed out',
  reset: 'the connection was reset',
  unreachable: 'the host is unreachable',
  'proxy-auth': 'the proxy refused the credential (407 Proxy Authentication Required): check the proxy credential in secrets.yaml',
  proxy: 'the proxy refused the tunnel (check that the proxy allows this host and port)',
  redirect: 'it answered with a redirect, which is never followed (configure the address the redirect names)',
  network: 'the request failed',
};

/** The first message in an error's cause chain, at most a few levels deep, of which `pick` makes something. */
function pickFromMessages<T>(error: unknown, pick: (message: string) => T | undefined, depth = 0): T | undefined {
  if (depth > 4 || typeof error !== 'object' || error === null) return undefined;
  const message: unknown = Reflect.get(error, 'message');
  return (typeof message === 'string' ? pick(message) : undefined) ?? pickFromMessages(Reflect.get(error, 'cause'), pick, depth + 1);
}

/**
 * undici's ProxyAgent ends a tunnel the proxy did not open with `Proxy response (407) !== 200 when
 * HTTP Tunneling`; the status is all it keeps, and all that is needed.
 */
const proxyStatus = (message: string) => /^Proxy response \((\d{3})\)/.exec(message)?.[1];

/** undici's words for a redirect refused by `redirect: 'error'`, which has no code of its own. */
const refusedRedirect = (message: string) => (message === 'unexpected redirect' ? true : undefined);

/** The first system code in an error's cause chain (or its aggregated errors), at most a few levels deep. */
function codes(error: unknown, depth = 0): string[] {
  if (depth > 4 || typeof error !== 'object' || error === null) return [];
  const found: string[] = [];
  const code: unknown = Reflect.get(error, 'code');
  if (typeof code === 'string') found.push(code);
  // AbortSignal.timeout() aborts with a DOMException named TimeoutError, whose code is a number.
  if (Reflect.get(error, 'name') === 'TimeoutError') found.push(TIMED_OUT);
  const nested: unknown = Reflect.get(error, 'errors');
  if (Array.isArray(nested)) for (const inner of nested) found.push(...codes(inner, depth + 1));
  found.push(...codes(Reflect.get(error, 'cause'), depth + 1));
  return found;
}

/** Whether a thrown value is a transport failure (no answer at all), and which kind. */
export function networkFailureOf(error: unknown): { failure: NetworkFailure; code: string | undefined } | undefined {
  const status = pickFromMessages(error, proxyStatus);
  if (status !== undefined) return { failure: status === '407' ? 'proxy-auth' : 'proxy', code: status === '407' ? undefined : `proxy answered ${status}` };
  if (pickFromMessages(error, refusedRedirect)) return { failure: 'redirect', code: undefined };
  const found = codes(error);
  for (const code of found) {
    const failure = failureOfCode(code);
    if (failure) return { failure, code: code === TIMED_OUT ? undefined : code };
  }
  const message = error instanceof Error ? error.message : '';
  if (message === 'fetch failed') return { failure: 'network', code: found[0] };
  return undefined;
}

/** The NetworkError for a failed request to `url`; anything that is not a transport failure, unchanged. */
export function asNetworkError(url: string, error: unknown): unknown {
  if (error instanceof NetworkError) return error;
  const found = networkFailureOf(error);
  if (!found) return error;
  // The TLS code is the whole story there (CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID): keep it in the words.
  const message = `cannot reach ${url}: ${SAYS[found.failure]}${found.code ? ` (${found.code})` : ''}`;
  return new NetworkError(message, { url, failure: found.failure, cause: error, safeReason: message });
}

/**
 * A `fetch` for clients (tRPC's httpLink takes one) whose transport failures name the URL and the
 * cause. The URL is shown without its query string, which can carry tRPC input. With `timeoutMs`,
 * a request that has no answer by then is abandoned and reported as timed out.
 */
export function fetchNamingFailures(inner: typeof fetch = fetch, options: { timeoutMs?: number } = {}): typeof fetch {
  return async (input, init) => {
    const { timeoutMs } = options;
    const signals = [init?.signal, timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs)].filter((signal) => signal instanceof AbortSignal);
    try {
      return await inner(input, signals.length === 0 ? init : { ...init, signal: AbortSignal.any(signals) });
    } catch (error) {
      const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
      throw asNetworkError(`${url.origin}${url.pathname}`, error);
    }
  };
}
