/**
 * `@airlock/connector-https/definition`: a REST endpoint inside the customer's network as a source,
 * as the control plane sees it: config schema, secrets shape, claims and the agent's local-policy
 * section. Pure: no sockets, no TLS. The runtime in `source.ts` is built on it.
 *
 * A run reads one collection (`endpoint`), page after page, and hands the host one generated file:
 * the records of every page as JSON Lines, so field scopes and data contracts apply to them like to
 * any JSON Lines file.
 */
import { z } from 'zod';
import { absolutePath, isSafeName, type ResourceClaim, sourceDefinition } from '@airlock/connector-api/definition';

/** Percent-escapes that would let one spelling of a path mean another: `/`, `.` and `\`. */
const AMBIGUOUS_ESCAPE = /%(2f|2e|5c)/i;

function pathIsPlain(pathname: string): boolean {
  const parts = pathname.split('/').slice(1);
  return !AMBIGUOUS_ESCAPE.test(pathname) && !pathname.includes('//') && parts.every((part) => part !== '.' && part !== '..');
}

/** An https URL with a path that compares by components, without credentials or fragment. */
function httpsUrl(description: string, options: { originOnly: boolean }) {
  return z
    .url()
    .describe(description)
    .refine((text) => new URL(text).protocol === 'https:', 'must use https')
    .refine((text) => {
      const url = new URL(text);
      return url.username === '' && url.password === '' && url.hash === '';
    }, 'must carry no credentials or fragment: credentials belong in secrets.yaml')
    .refine((text) => {
      const url = new URL(text);
      return options.originOnly ? url.pathname === '/' && url.search === '' : pathIsPlain(url.pathname);
    }, options.originOnly ? 'must be an origin only: https, host and port' : 'its path must not contain `.` or `..` segments, `//` or escaped `/`, `.` or `\\`');
}

/** A dotted path to a value inside a JSON page: `data.items`; empty for the page itself. */
const jsonPath = z
  .string()
  .max(200)
  .regex(/^$|^[A-Za-z_$][\w$-]*(\.[A-Za-z_$][\w$-]*)*$/, 'a dotted path of member names, e.g. data.items, or empty for the page itself');

const pagination = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('none') }).describe('One page only.'),
    z.strictObject({ type: z.literal('link') }).describe("Follow the RFC 8288 Link header's rel=\"next\" target, on the same origin and path."),
    z
      .strictObject({
        type: z.literal('cursor'),
        /** Where the next cursor is in each page; absent, null or empty ends the collection. */
        field: jsonPath.min(1),
        /** The query parameter the cursor is sent in. */
        param: z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/),
      })
      .describe('Send the cursor from a field of each page as a query parameter of the next request.'),
  ])
  .default({ type: 'link' });

export const httpsSourceConfig = z.strictObject({
  endpoint: httpsUrl('The collection to read, e.g. https://erp.internal:8443/api/v2/orders?status=open.', { originOnly: false }),
  /** Where the records are in each page: a dotted path to an array (`data.items`), empty when the page is the array. */
  records: jsonPath.default('').describe('Dotted path to the array of records in each page, e.g. data.items; empty when the page is the array.'),
  pagination,
  /** `basic` takes `username`/`password`, `bearer` takes `token` from the secrets entry; `none` sends no Authorization header. Default bearer. */
  auth: z.enum(['none', 'basic', 'bearer']).default('bearer').describe('Authorization header from the secrets entry: basic, bearer or none.'),
  /** Present the client certificate and key from the secrets entry (mutual TLS). Default false. */
  clientCertificate: z.boolean().default(false).describe('Present the client certificate and key from the secrets entry (mutual TLS).'),
  /** Names the entry in the agent's secrets file; needed for every auth but none without a client certificate. */
  credentialRef: z.string().min(1).max(256).optional(),
  /** The name the records are delivered under (before the destination's suffix); default `<last path segment>.jsonl`. */
  outputName: z.string().min(1).max(200).refine(isSafeName, 'must be one file name: no /, \\, control characters, . or ..').optional(),
  /** At most this many pages per run; one more is an error, not a short delivery. Default 1_000. */
  maxPages: z.number().int().min(1).max(1_000_000).default(1_000),
  /** At most this many response-body bytes per run, all pages together. Default 1 GiB. */
  maxBytes: z.number().int().min(1024).max(2 ** 40).default(2 ** 30),
  /** At most this many bytes in one page: a page is parsed whole, so this bounds memory. 1 KiB to 256 MiB; default 16 MiB. */
  maxPageBytes: z.number().int().min(1024).max(256 * 2 ** 20).default(16 * 2 ** 20),
  /** How often one request is retried after 429 or 503; default 3. */
  maxRetries: z.number().int().min(0).max(10).default(3),
  /** The longest Retry-After the source waits out, in milliseconds; a server asking for more fails the run. Default 60_000. */
  maxRetryWaitMs: z.number().int().min(0).max(600_000).default(60_000),
  /** Timeout of each request, in milliseconds, until its headers and between body chunks; default 60_000. */
  requestTimeoutMs: z.number().int().min(1_000).max(600_000).default(60_000),
});
export type HttpsSourceConfig = z.output<typeof httpsSourceConfig>;

const pem = (what: string) => z.string().min(1).regex(/-----BEGIN [A-Z0-9 ]+-----/, `${what} in PEM form`);

/**
 * The secret behind `credentialRef`. `<key>File` entries (`clientKeyFile: /etc/airlock/api.key`)
 * are read from that file by the agent, like every secret.
 */
export const httpsSecrets = z
  .strictObject({
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    token: z.string().min(1).optional(),
    clientCertificate: pem('a certificate chain').optional(),
    clientKey: pem('a private key').optional(),
    clientKeyPassphrase: z.string().min(1).optional(),
  })
  .refine((s) => (s.username === undefined) === (s.password === undefined), 'username and password go together')
  .refine((s) => (s.clientCertificate === undefined) === (s.clientKey === undefined), 'clientCertificate and clientKey go together')
  .refine((s) => s.password !== undefined || s.token !== undefined || s.clientKey !== undefined, 'needs username/password, token, or clientCertificate/clientKey');
export type HttpsSecrets = z.output<typeof httpsSecrets>;

/** An SHA-256 certificate fingerprint, as openssl (`AB:CD:…`) or as plain hex; kept as uppercase hex. */
export const certificateFingerprint = z
  .string()
  .transform((text) => text.replace(/[:\s]/g, '').toUpperCase())
  .pipe(z.string().regex(/^[0-9A-F]{64}$/, 'a SHA-256 certificate fingerprint: 64 hex digits, colons allowed'));

/**
 * `sources.https` in the local policy: the origin, the paths below it a job may read, and how its
 * TLS certificate is trusted. A job naming any other origin or path is refused before a connection
 * is made; verification is never turned off.
 */
export const httpsSourcePolicy = z
  .strictObject({
    origin: httpsUrl('The pinned origin, e.g. https://erp.internal:8443.', { originOnly: true }),
    paths: z.array(absolutePath('A path pattern a job may read, e.g. /api/v2/**.')).min(1),
    /** CA certificates (PEM) the server's chain must lead to, instead of the system's roots. */
    ca: pem('CA certificates').optional(),
    /** The same, read from a file on the agent's host. */
    caFile: absolutePath('A PEM file of CA certificates.').optional(),
    /** The server's own certificate must have this SHA-256 fingerprint, on top of a verified chain. */
    certificateSha256: certificateFingerprint.optional(),
  })
  .refine((entry) => entry.ca === undefined || entry.caFile === undefined, 'ca and caFile exclude each other')
  .refine((entry) => entry.ca !== undefined || entry.caFile !== undefined || entry.certificateSha256 !== undefined, 'pin the TLS certificate: ca, caFile or certificateSha256');
export type HttpsSourcePolicy = z.output<typeof httpsSourcePolicy>;

/** `host:port` of a URL, the default port filled in, as claims name it. */
export function authorityOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname.replace(/^\[|\]$/g, '')}:${parsed.port === '' ? '443' : parsed.port}`;
}

/** The endpoint's path without a trailing slash: what claims, scopes and policy patterns compare. */
export function pathOf(url: string): string {
  const pathname = new URL(url).pathname;
  return pathname.length > 1 && pathname.endsWith('/') ? pathname.slice(0, -1) : pathname;
}

/** The name the records are delivered under. */
export function outputNameOf(config: HttpsSourceConfig): string {
  if (config.outputName !== undefined) return config.outputName;
  const last = pathOf(config.endpoint).split('/').filter(Boolean).at(-1) ?? 'records';
  const name = `${decodeURIComponentSafe(last)}.jsonl`;
  return isSafeName(name) ? name : 'records.jsonl';
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

const claimOf = (config: HttpsSourceConfig): ResourceClaim => ({ action: 'read', scheme: 'https', authority: authorityOf(config.endpoint), path: pathOf(config.endpoint) });

export const httpsSourceDefinition = sourceDefinition<HttpsSourceConfig, HttpsSourcePolicy>({
  id: 'https',
  version: 1,
  title: 'HTTPS API',
  config: httpsSourceConfig.refine((config) => config.credentialRef !== undefined || (config.auth === 'none' && !config.clientCertificate), {
    message: 'credentialRef is needed for basic, bearer or a client certificate',
    path: ['credentialRef'],
  }),
  secrets: httpsSecrets,
  claims: (config) => [claimOf(config)],
  claimFor: (config) => claimOf(config),
  scheme: { name: 'https', form: 'network', defaultPort: 443 },
  policy: {
    entry: httpsSourcePolicy,
    // An API has nothing to delete or archive: a grant is the paths alone.
    grant: (entry, claim) => (claim.scheme === 'https' && claim.authority === authorityOf(entry.origin) ? { paths: entry.paths } : undefined),
  },
});
