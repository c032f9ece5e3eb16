/**
 * `@airlock/connector-s3/definition`: an S3-compatible object store as a destination, as the
 * control plane sees it: config schema, secrets shape, claims and the agent's local-policy section.
 * Pure: no SDK, no network. The runtime in `destination.ts` is built on it.
 */
import { z } from 'zod';
import { absolutePath, destinationDefinition, policyRecipients, type ResourceClaim } from '@airlock/connector-api/definition';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** `https://host[:port]`, or `http://` on loopback only: credentials and ciphertext cross it. */
const endpoint = z
  .url()
  .describe('The S3 endpoint, e.g. https://s3.eu-central-1.amazonaws.com or https://minio.internal:9000.')
  .refine((text) => {
    const url = new URL(text);
    return url.pathname === '/' && url.search === '' && url.hash === '' && url.username === '' && url.password === '';
  }, 'must be an origin only: scheme, host and port, no path, query or credentials')
  .refine((text) => {
    const url = new URL(text);
    return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname));
  }, 'must use https (http only on loopback)');

/** S3's bucket-name rules, lowercase, so one bucket has one spelling in claims and policies. */
const bucket = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name: 3 to 63 lowercase letters, digits, dots and dashes');

export const s3DestinationConfig = z.strictObject({
  endpoint,
  /** The signing region; most S3-compatible servers accept any. Default us-east-1. */
  region: z.string().regex(/^[a-z0-9-]{1,32}$/).default('us-east-1'),
  bucket,
  /** Where deliveries land inside the bucket, as an absolute path: `/incoming/acme`. Default the bucket's root. */
  prefix: absolutePath('Where deliveries land inside the bucket, e.g. /incoming/acme.').default('/'),
  /** Bucket in the path (`https://host/bucket/key`) rather than the host name; most S3-compatible servers want it. Default true. */
  forcePathStyle: z.boolean().default(true),
  /**
   * Names the entry in the agent's secrets file holding `accessKeyId` and `secretAccessKey`. Absent:
   * the standard AWS chain on the agent host (environment, profile, instance role). Never the control plane.
   */
  credentialRef: z.string().min(1).max(256).optional(),
  /** Size of each uploaded part, in bytes: at most two are held in memory. 5 MiB to 512 MiB; default 8 MiB. */
  partSizeBytes: z.number().int().min(5 * 2 ** 20).max(512 * 2 ** 20).default(8 * 2 ** 20),
  /** The checksum sent with each part and checked by the server. Default SHA256. */
  checksumAlgorithm: z.enum(['SHA256', 'CRC32']).default('SHA256'),
  /** Server-side encryption of the stored objects, on top of the OpenPGP encryption. */
  serverSideEncryption: z.enum(['AES256', 'aws:kms']).optional(),
  /** The KMS key for `aws:kms`. */
  kmsKeyId: z.string().min(1).max(2048).optional(),
  /** Timeout of each request in milliseconds; default 60_000. */
  requestTimeoutMs: z.number().int().min(1_000).max(600_000).default(60_000),
});
export type S3DestinationConfig = z.output<typeof s3DestinationConfig>;

/** The secret behind `credentialRef`. */
export const s3Secrets = z.strictObject({
  accessKeyId: z.string().min(1),
  secretAccessKey: z.string().min(1),
  sessionToken: z.string().min(1).optional(),
});
export type S3Secrets = z.output<typeof s3Secrets>;

/**
 * `destinations.s3` in the local policy: the endpoint (scheme included) and bucket pinned, and the
 * prefixes deliveries may land under. A job naming any other endpoint or bucket is refused before
 * a connection is made.
 */
export const s3DestinationPolicy = z.strictObject({
  endpoint,
  bucket,
  prefixes: z.array(absolutePath()).min(1).default(['/']),
  ...policyRecipients,
});
export type S3DestinationPolicy = z.output<typeof s3DestinationPolicy>;

/** `host:port` of an endpoint, the default port filled in, as claims name it. */
export function authorityOf(url: string): string {
  const parsed = new URL(url);
  const port = parsed.port === '' ? (parsed.protocol === 'https:' ? '443' : '80') : parsed.port;
  return `${parsed.hostname.replace(/^\[|\]$/g, '')}:${port}`;
}

/** `/<bucket><prefix>`: the bucket is the first path component, so scopes and policies can name it. */
export function pathOf(bucketName: string, prefix: string): string {
  return prefix === '/' ? `/${bucketName}` : `/${bucketName}${prefix}`;
}

export const s3DestinationDefinition = destinationDefinition<S3DestinationConfig, S3DestinationPolicy>({
  id: 's3',
  version: 1,
  title: 'S3-compatible object storage',
  config: s3DestinationConfig.refine((config) => config.kmsKeyId === undefined || config.serverSideEncryption === 'aws:kms', {
    message: 'kmsKeyId needs serverSideEncryption aws:kms',
    path: ['kmsKeyId'],
  }),
  secrets: s3Secrets,
  claims: (config) => [{ action: 'write', scheme: 's3', authority: authorityOf(config.endpoint), path: pathOf(config.bucket, config.prefix) }],
  scheme: { name: 's3', form: 'network', defaultPort: 443 },
  policy: {
    entry: s3DestinationPolicy,
    grant: (entry, claim: ResourceClaim) =>
      claim.scheme === 's3' && claim.authority === authorityOf(entry.endpoint)
        ? { paths: entry.prefixes.map((prefix) => pathOf(entry.bucket, prefix)), recipients: entry.recipients }
        : undefined,
  },
});
