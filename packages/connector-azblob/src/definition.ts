/**
 * `@airlock/connector-azblob/definition`: an Azure Blob Storage container as a destination, as the
 * control plane sees it: config schema, secrets shape, claims and the agent's local-policy section.
 * Pure: no SDK, no network. The runtime in `destination.ts` is built on it.
 */
import { z } from 'zod';
import { absolutePath, destinationDefinition, policyRecipients, type ResourceClaim } from '@airlock/connector-api/definition';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** A storage account name: 3 to 24 lowercase letters and digits. */
const ACCOUNT = /^[a-z0-9]{3,24}$/;

/**
 * The account's blob service: `https://<account>.blob.core.windows.net`, or an origin followed by
 * `/<account>` where the account is in the path (Azurite, Azure Stack). `http://` on loopback only:
 * credentials and ciphertext cross it.
 */
const endpoint = z
  .url()
  .describe('The blob service of the storage account, e.g. https://acme.blob.core.windows.net, or http://127.0.0.1:10000/devstoreaccount1 for an emulator.')
  .refine((text) => {
    const url = new URL(text);
    const account = url.pathname.replace(/\/$/, '');
    return (account === '' || ACCOUNT.test(account.slice(1))) && url.search === '' && url.hash === '' && url.username === '' && url.password === '';
  }, 'must be an origin, optionally followed by /<account>: no other path, query or credentials')
  .refine((text) => {
    const url = new URL(text);
    return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname));
  }, 'must use https (http only on loopback)')
  // One spelling per endpoint, so pins, claims and scopes compare exactly.
  .transform((text) => {
    const url = new URL(text);
    return `${url.origin}${url.pathname.replace(/\/$/, '')}`;
  });

/** Azure's container-name rules: 3 to 63 lowercase letters, digits and single dashes. */
const container = z
  .string()
  .regex(/^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, 'an Azure container name: 3 to 63 lowercase letters, digits and single dashes')
  .describe('The container deliveries land in.');

export const azblobDestinationConfig = z.strictObject({
  endpoint,
  container,
  /** Where deliveries land inside the container, as an absolute path: `/incoming/acme`. Default the container's root. */
  prefix: absolutePath('Where deliveries land inside the container, e.g. /incoming/acme.').default('/'),
  /**
   * Names the entry in the agent's secrets file holding either the account's shared key
   * (`accountName`, `accountKey`) or a SAS token (`sasToken`). Never the control plane.
   */
  credentialRef: z.string().min(1).max(256).describe("The entry in the agent's secrets.yaml with the shared key or SAS token."),
  /** Size of each staged block, in bytes: one is held in memory at a time. 1 MiB to 256 MiB; default 8 MiB. */
  blockSizeBytes: z
    .number()
    .int()
    .min(2 ** 20)
    .max(256 * 2 ** 20)
    .default(8 * 2 ** 20)
    .describe('Size of each staged block in bytes (1 MiB to 256 MiB); one block is held in memory at a time.'),
  /** The checksum sent with each block and checked by the service (Content-MD5 or x-ms-content-crc64). Default md5. */
  blockChecksum: z.enum(['md5', 'crc64', 'none']).default('md5').describe('The checksum sent with each block for the service to verify.'),
  /** The access tier the committed blob gets; absent, the account's default. */
  accessTier: z.enum(['Hot', 'Cool', 'Cold', 'Archive']).optional(),
  /** Timeout of each request in milliseconds; default 60_000. */
  requestTimeoutMs: z.number().int().min(1_000).max(600_000).default(60_000),
});
export type AzblobDestinationConfig = z.output<typeof azblobDestinationConfig>;

/** The secret behind `credentialRef`: the account's shared key, or a SAS token for the container. */
export const azblobSecrets = z.union([
  z.strictObject({ accountName: z.string().regex(ACCOUNT, 'a storage account name'), accountKey: z.string().min(1) }),
  z.strictObject({ sasToken: z.string().min(1).describe('A service or account SAS, with or without its leading "?"; needs create and write on the container.') }),
]);
export type AzblobSecrets = z.output<typeof azblobSecrets>;

/**
 * `destinations.azblob` in the local policy: the account's endpoint (scheme, and account path if
 * any, included) and container pinned, and the prefixes deliveries may land under. A job naming any
 * other endpoint or container is refused before a connection is made.
 */
export const azblobDestinationPolicy = z.strictObject({
  endpoint,
  container,
  prefixes: z.array(absolutePath()).min(1).default(['/']),
  ...policyRecipients,
});
export type AzblobDestinationPolicy = z.output<typeof azblobDestinationPolicy>;

/** `host:port` of an endpoint, the default port filled in, as claims name it. */
export function authorityOf(url: string): string {
  const parsed = new URL(url);
  const port = parsed.port === '' ? (parsed.protocol === 'https:' ? '443' : '80') : parsed.port;
  return `${parsed.hostname.replace(/^\[|\]$/g, '')}:${port}`;
}

/**
 * `[/<account>]/<container><prefix>`: the blobs' own URL path, so scopes and policies name the
 * container, and the account too where it is in the path rather than the host name.
 */
export function pathOf(endpointUrl: string, containerName: string, prefix: string): string {
  const account = new URL(endpointUrl).pathname.replace(/\/$/, '');
  return prefix === '/' ? `${account}/${containerName}` : `${account}/${containerName}${prefix}`;
}

export const azblobDestinationDefinition = destinationDefinition<AzblobDestinationConfig, AzblobDestinationPolicy>({
  id: 'azblob',
  version: 1,
  title: 'Azure Blob Storage',
  config: azblobDestinationConfig,
  secrets: azblobSecrets,
  claims: (config) => [{ action: 'write', scheme: 'azblob', authority: authorityOf(config.endpoint), path: pathOf(config.endpoint, config.container, config.prefix) }],
  scheme: { name: 'azblob', form: 'network', defaultPort: 443 },
  policy: {
    entry: azblobDestinationPolicy,
    grant: (entry, claim: ResourceClaim) =>
      claim.scheme === 'azblob' && claim.authority === authorityOf(entry.endpoint)
        ? { paths: entry.prefixes.map((prefix) => pathOf(entry.endpoint, entry.container, prefix)), recipients: entry.recipients }
        : undefined,
  },
});
