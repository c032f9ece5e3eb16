/**
 * The control plane's configuration: read from the environment once, here, validated with zod,
 * and failing with every problem listed. Nothing else reads process.env.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRequire } from 'node:module';
import { z } from 'zod';
import {
  DEFAULT_MAX_BATCH_SIZE,
  DEFAULT_RATE_LIMITS,
  generateTokenKeyPem,
  type SecretBox,
  secretBoxFromKey,
  type Signer,
  signerFromSecretKey,
  type TokenKeys,
  tokenKeysFromPems,
  verifierFor,
} from '@airlock/api';
import { formatIssues, UserError } from '@airlock/errors';
import { ACCESS_TOKEN_TTL_SECONDS, AGENT_LOST_AFTER_MS, MAX_ACCESS_TOKEN_TTL_SECONDS } from '@airlock/protocol';
import { encodeKey, generateKeyPair } from '@airlock/identity';

const serverSchema = z.object({
  /** PostgreSQL connection URL. Secret (may hold a password). Unset: embedded PGlite in `dataDir`. */
  DATABASE_URL: z.string().url().optional(),
  /** Where the embedded database lives when DATABASE_URL is unset. Default `./.airlock/control-plane`. */
  AIRLOCK_DATA_DIR: z.string().min(1).default('.airlock/control-plane'),
  /** Listen address. Default loopback only. */
  AIRLOCK_HOST: z.string().min(1).default('127.0.0.1'),
  /** Listen port. Default 7443; 0 picks a free one. */
  AIRLOCK_PORT: z.coerce.number().int().min(0).max(65535).default(7443),
  /** PEM certificate chain and key paths; with both set the server speaks HTTPS only. */
  AIRLOCK_TLS_CERT: z.string().min(1).optional(),
  AIRLOCK_TLS_KEY: z.string().min(1).optional(),
  /**
   * Connections the listen queue holds before the kernel drops new ones. A fleet reconnects at
   * once after a restart, so the default is sized for it; the kernel caps it at
   * net.core.somaxconn. Default 4_096.
   */
  AIRLOCK_LISTEN_BACKLOG: z.coerce.number().int().min(16).max(65_535).default(4_096),
  /**
   * PostgreSQL connections per replica, half for authenticating signed requests and half for
   * tenant work. Default 10.
   */
  AIRLOCK_DB_POOL_SIZE: z.coerce.number().int().min(2).max(1_000).default(10),
  /**
   * Requests that may wait for a database connection at once; past it the server answers 503
   * with Retry-After instead of queueing without bound. Default 1_000.
   */
  AIRLOCK_DB_MAX_QUEUE: z.coerce.number().int().min(1).max(1_000_000).default(1_000),
  /** The longest a request waits for a database connection, in ms, before it gets 503. Default 10_000. */
  AIRLOCK_DB_QUEUE_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  /** Largest request body in bytes. Default 1 MiB. */
  AIRLOCK_MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /** How often the scheduler looks for due schedules, in ms. Default 5_000. */
  AIRLOCK_SCHEDULER_TICK_MS: z.coerce.number().int().min(100).max(60_000).default(5_000),
  /**
   * The control plane's Ed25519 signing key (audit checkpoints): a file holding the base64 64-byte
   * secret key, mode 0600. Secret. Unset: `<AIRLOCK_DATA_DIR>/signing.key`, generated on first start.
   */
  AIRLOCK_SIGNING_KEY_FILE: z.string().min(1).optional(),
  /** How often the server signs a checkpoint of the audit chain if it moved, in ms. Default 60_000. */
  AIRLOCK_CHECKPOINT_INTERVAL_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(60_000),
  /**
   * The console's built files (`vite build` output), served from the API's origin. Default: the
   * repository's `apps/console/dist` when it holds a build; `off` serves no console.
   */
  AIRLOCK_CONSOLE_DIR: z.string().min(1).optional(),
  /** The URL agents and admins reach this control plane at, shown in enroll commands. Default: the listen URL. */
  AIRLOCK_PUBLIC_URL: z.string().url().optional(),
  /**
   * The key that seals alert webhook URLs and HMAC secrets in the database: a file holding 32 random
   * bytes in base64, mode 0600. Secret; every replica needs the same one. Unset:
   * `<AIRLOCK_DATA_DIR>/alert.key`, generated on first start.
   */
  AIRLOCK_ALERT_KEY_FILE: z.string().min(1).optional(),
  /** How often the alert engine reads new audit events and sends due webhooks, in ms. Default 5_000. */
  AIRLOCK_ALERT_TICK_MS: z.coerce.number().int().min(100).max(60_000).default(5_000),
  /** How often agents, API keys and the TLS certificate are checked, in ms. Default 60_000. */
  AIRLOCK_ALERT_CHECK_INTERVAL_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(60_000),
  /** Allow http:// webhooks to non-loopback hosts (closed networks only). Default false. */
  AIRLOCK_ALERT_ALLOW_HTTP: z.enum(['true', 'false']).default('false'),
  AIRLOCK_ALERT_ALLOW_LOOPBACK: z.enum(['true', 'false']).default('false'),
  /** One webhook request, connect to last byte, in ms. Default 10_000. */
  AIRLOCK_ALERT_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  /** Attempts per webhook delivery before it is given up. Default 6. */
  AIRLOCK_ALERT_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(6),
  /** Burst alerts (refused agent requests, failed logins): events within the window, and the window in ms. Defaults 10 and 300_000. */
  AIRLOCK_ALERT_BURST_COUNT: z.coerce.number().int().min(1).max(100_000).default(10),
  AIRLOCK_ALERT_BURST_WINDOW_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(300_000),
  /** An active agent not seen for this long is offline, in ms. Default 900_000 (`AGENT_LOST_AFTER_MS`, when its runs are given up too). */
  AIRLOCK_ALERT_AGENT_OFFLINE_MS: z.coerce.number().int().min(10_000).max(30 * 86_400_000).default(AGENT_LOST_AFTER_MS),
  /** Warn this many days before an API key or the TLS certificate expires. Defaults 7 and 14. */
  AIRLOCK_ALERT_KEY_EXPIRY_DAYS: z.coerce.number().int().min(1).max(90).default(7),
  AIRLOCK_ALERT_TLS_EXPIRY_DAYS: z.coerce.number().int().min(1).max(365).default(14),
  /** Repeats of one alert within this many ms are counted, not sent again. Default 3_600_000. */
  AIRLOCK_ALERT_DEDUPE_WINDOW_MS: z.coerce.number().int().min(1_000).max(30 * 86_400_000).default(3_600_000),
  /** At most this many deliveries per destination per window (ms); the rest are recorded as throttled. Defaults 20 and 600_000. */
  AIRLOCK_ALERT_THROTTLE_MAX: z.coerce.number().int().min(1).max(10_000).default(20),
  AIRLOCK_ALERT_THROTTLE_WINDOW_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(600_000),
  AIRLOCK_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Most calls in one batched tRPC request; larger batches get 400 before any call runs. Default 16. */
  AIRLOCK_MAX_BATCH_SIZE: z.coerce.number().int().min(1).max(1_000).default(DEFAULT_MAX_BATCH_SIZE),
  /** Operations per window per admin API key. Default 1_200. */
  AIRLOCK_RATE_LIMIT_API_KEY: z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_RATE_LIMITS['api-key'].points),
  /** Operations per window per console user, over all of that user's sessions. Default 1_200. */
  AIRLOCK_RATE_LIMIT_SESSION: z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_RATE_LIMITS.session.points),
  /** Operations per window per agent. Default 600. */
  AIRLOCK_RATE_LIMIT_AGENT: z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_RATE_LIMITS.agent.points),
  /** Unauthenticated operations (public calls and failed authentications) per window per source IP. Default 120. */
  AIRLOCK_RATE_LIMIT_IP: z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_RATE_LIMITS.ip.points),
  /** Operations per window per OAuth client (its API calls and its token requests). Default 1_200. */
  AIRLOCK_RATE_LIMIT_OAUTH_CLIENT: z.coerce.number().int().min(1).max(1_000_000).default(DEFAULT_RATE_LIMITS['oauth-client'].points),
  /**
   * The key that signs OAuth access tokens: a file holding an Ed25519 private key (PKCS#8 PEM),
   * mode 0600. Secret; every replica needs the same one. Unset: `<AIRLOCK_DATA_DIR>/oauth-token.key`,
   * generated on first start. Kept apart from AIRLOCK_SIGNING_KEY_FILE, which signs audit checkpoints.
   */
  AIRLOCK_OAUTH_KEY_FILE: z.string().min(1).optional(),
  /**
   * After a rotation, the key that signed tokens before it (same format): verify-only and listed in
   * the JWKS, so tokens it signed last until they expire. Drop it one token lifetime after the rotation.
   */
  AIRLOCK_OAUTH_PREVIOUS_KEY_FILE: z.string().min(1).optional(),
  /** OAuth access token lifetime in seconds. Default 600; at most 900. */
  AIRLOCK_OAUTH_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(MAX_ACCESS_TOKEN_TTL_SECONDS).default(ACCESS_TOKEN_TTL_SECONDS),
  /** Most request-log entries waiting to be written; beyond it entries are dropped and counted. Default 10_000. */
  AIRLOCK_REQUEST_LOG_QUEUE: z.coerce.number().int().min(100).max(1_000_000).default(10_000),
  /**
   * The metrics listener (`/metrics` in Prometheus text format, and `/healthz`, `/readyz`): its own
   * address, apart from the API, so it is reachable from the monitoring network only and needs no
   * credential. Plain HTTP. Unset port: no metrics listener; 0 picks a free one. Host default loopback.
   */
  AIRLOCK_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  AIRLOCK_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** The rate-limit window, in seconds, for all the limits. Default 60. */
  AIRLOCK_RATE_LIMIT_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
});

const clientSchema = z.object({
  /** The control plane's base URL for admin commands. */
  AIRLOCK_URL: z.string().url().default('http://127.0.0.1:7443'),
  /** An admin API key. Secret: pass it in the environment, never on the command line. */
  AIRLOCK_API_KEY: z.string().min(1).optional(),
  /** How long one admin request may take before the command gives up and says so, in ms. Default 30 000. */
  AIRLOCK_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
});

export type ServerConfig = ReturnType<typeof loadServerConfig>;
export type ClientConfig = z.infer<typeof clientSchema>;

function parse<T>(schema: z.ZodType<T>, env: NodeJS.ProcessEnv): T {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  throw new UserError(`configuration: ${formatIssues(result.error.issues)}`);
}

export function loadServerConfig(env: NodeJS.ProcessEnv = process.env) {
  const raw = parse(serverSchema, env);
  if (Boolean(raw.AIRLOCK_TLS_CERT) !== Boolean(raw.AIRLOCK_TLS_KEY)) {
    throw new UserError('configuration: AIRLOCK_TLS_CERT and AIRLOCK_TLS_KEY go together');
  }
  return {
    databaseUrl: raw.DATABASE_URL,
    dataDir: path.resolve(raw.AIRLOCK_DATA_DIR),
    host: raw.AIRLOCK_HOST,
    port: raw.AIRLOCK_PORT,
    tls: raw.AIRLOCK_TLS_CERT && raw.AIRLOCK_TLS_KEY ? { certFile: raw.AIRLOCK_TLS_CERT, keyFile: raw.AIRLOCK_TLS_KEY } : null,
    listenBacklog: raw.AIRLOCK_LISTEN_BACKLOG,
    pool: { maxConnections: raw.AIRLOCK_DB_POOL_SIZE, maxQueue: raw.AIRLOCK_DB_MAX_QUEUE, queueTimeoutMs: raw.AIRLOCK_DB_QUEUE_TIMEOUT_MS },
    maxBodyBytes: raw.AIRLOCK_MAX_BODY_BYTES,
    logLevel: raw.AIRLOCK_LOG_LEVEL,
    schedulerTickMs: raw.AIRLOCK_SCHEDULER_TICK_MS,
    signingKeyFile: raw.AIRLOCK_SIGNING_KEY_FILE ? path.resolve(raw.AIRLOCK_SIGNING_KEY_FILE) : null,
    checkpointIntervalMs: raw.AIRLOCK_CHECKPOINT_INTERVAL_MS,
    maxBatchSize: raw.AIRLOCK_MAX_BATCH_SIZE,
    rateLimits: {
      'api-key': { points: raw.AIRLOCK_RATE_LIMIT_API_KEY, durationSeconds: raw.AIRLOCK_RATE_LIMIT_WINDOW_SECONDS },
      'oauth-client': { points: raw.AIRLOCK_RATE_LIMIT_OAUTH_CLIENT, durationSeconds: raw.AIRLOCK_RATE_LIMIT_WINDOW_SECONDS },
      session: { points: raw.AIRLOCK_RATE_LIMIT_SESSION, durationSeconds: raw.AIRLOCK_RATE_LIMIT_WINDOW_SECONDS },
      agent: { points: raw.AIRLOCK_RATE_LIMIT_AGENT, durationSeconds: raw.AIRLOCK_RATE_LIMIT_WINDOW_SECONDS },
      ip: { points: raw.AIRLOCK_RATE_LIMIT_IP, durationSeconds: raw.AIRLOCK_RATE_LIMIT_WINDOW_SECONDS },
    },
    consoleDir: consoleDir(raw.AIRLOCK_CONSOLE_DIR),
    oauth: {
      keyFile: raw.AIRLOCK_OAUTH_KEY_FILE ? path.resolve(raw.AIRLOCK_OAUTH_KEY_FILE) : null,
      previousKeyFile: raw.AIRLOCK_OAUTH_PREVIOUS_KEY_FILE ? path.resolve(raw.AIRLOCK_OAUTH_PREVIOUS_KEY_FILE) : null,
      tokenTtlSeconds: raw.AIRLOCK_OAUTH_TOKEN_TTL_SECONDS,
    },
    requestLogQueue: raw.AIRLOCK_REQUEST_LOG_QUEUE,
    metrics: raw.AIRLOCK_METRICS_PORT === undefined ? null : { host: raw.AIRLOCK_METRICS_HOST, port: raw.AIRLOCK_METRICS_PORT },
    publicUrl: raw.AIRLOCK_PUBLIC_URL ? new URL(raw.AIRLOCK_PUBLIC_URL).origin : null,
    alerts: {
      keyFile: raw.AIRLOCK_ALERT_KEY_FILE ? path.resolve(raw.AIRLOCK_ALERT_KEY_FILE) : null,
      tickMs: raw.AIRLOCK_ALERT_TICK_MS,
      checkIntervalMs: raw.AIRLOCK_ALERT_CHECK_INTERVAL_MS,
      webhook: { allowHttp: raw.AIRLOCK_ALERT_ALLOW_HTTP === 'true', allowLoopback: raw.AIRLOCK_ALERT_ALLOW_LOOPBACK === 'true', timeoutMs: raw.AIRLOCK_ALERT_TIMEOUT_MS },
      maxAttempts: raw.AIRLOCK_ALERT_MAX_ATTEMPTS,
      thresholds: {
        burst: { count: raw.AIRLOCK_ALERT_BURST_COUNT, windowMs: raw.AIRLOCK_ALERT_BURST_WINDOW_MS },
        agentOfflineMs: raw.AIRLOCK_ALERT_AGENT_OFFLINE_MS,
        apiKeyExpiryMs: raw.AIRLOCK_ALERT_KEY_EXPIRY_DAYS * 86_400_000,
        tlsExpiryMs: raw.AIRLOCK_ALERT_TLS_EXPIRY_DAYS * 86_400_000,
      },
      policy: {
        dedupeWindowMs: raw.AIRLOCK_ALERT_DEDUPE_WINDOW_MS,
        throttle: { maxDeliveries: raw.AIRLOCK_ALERT_THROTTLE_MAX, windowMs: raw.AIRLOCK_ALERT_THROTTLE_WINDOW_MS },
      },
    },
  };
}

// Found through the package, not this file's URL: the bundled CLI runs this code from dist/.
const BUILT_CONSOLE = path.join(path.dirname(createRequire(import.meta.url).resolve('@airlock/control-plane/package.json')), '..', 'console', 'dist');

function consoleDir(configured: string | undefined): string | null {
  if (configured === 'off') return null;
  if (configured) return path.resolve(configured);
  return existsSync(path.join(BUILT_CONSOLE, 'index.html')) ? BUILT_CONSOLE : null;
}

const SIGNING_KEY_FILE = 'signing.key';

function hasCode(error: unknown, code: string): boolean {
  return error instanceof Error && 'code' in error && error.code === code;
}

async function readSigningKey(file: string): Promise<Signer> {
  // Anyone who can read this key can sign checkpoints over a rewritten audit trail.
  const { mode } = await stat(file);
  if ((mode & 0o077) !== 0) {
    throw new UserError(`${file}: mode ${(mode & 0o777).toString(8)} lets other users read the control plane's signing key; chmod 600 it`);
  }
  const text = (await readFile(file, 'utf8')).trim();
  const secretKey = Buffer.from(text, 'base64');
  if (secretKey.length !== 64 || secretKey.toString('base64') !== text) {
    throw new UserError(`${file}: expected a base64 Ed25519 secret key of 64 bytes`);
  }
  const signer = signerFromSecretKey(new Uint8Array(secretKey));
  // The 64 bytes hold the seed and the public key; halves that do not belong together sign nothing verifiable.
  const probe = randomBytes(32);
  if (!verifierFor(signer.publicKey)(probe, signer.sign(probe))) throw new UserError(`${file}: the secret key and its public half do not match`);
  return signer;
}

/**
 * The control plane's signing key: from AIRLOCK_SIGNING_KEY_FILE, else from the data directory,
 * where it is generated on first start unless `create` is false (commands that only verify).
 */
export async function loadSigner(config: Pick<ServerConfig, 'signingKeyFile' | 'dataDir'>, options: { create: boolean } = { create: true }): Promise<Signer> {
  if (config.signingKeyFile) return readSigningKey(config.signingKeyFile);
  const file = path.join(config.dataDir, SIGNING_KEY_FILE);
  try {
    return await readSigningKey(file);
  } catch (error) {
    if (!hasCode(error, 'ENOENT')) throw error;
    if (!options.create) throw new UserError(`no signing key: ${file} does not exist and AIRLOCK_SIGNING_KEY_FILE is unset`);
  }
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  try {
    // `wx`: a second replica starting at the same moment keeps the first one's key.
    await writeFile(file, `${encodeKey(generateKeyPair().secretKey)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if (!hasCode(error, 'EEXIST')) throw error;
  }
  return readSigningKey(file);
}

const ALERT_KEY_FILE = 'alert.key';

async function readAlertKey(file: string): Promise<SecretBox> {
  // Whoever reads this key and the database can open every webhook URL and signing secret.
  const { mode } = await stat(file);
  if ((mode & 0o077) !== 0) throw new UserError(`${file}: mode ${(mode & 0o777).toString(8)} lets other users read the alert key; chmod 600 it`);
  const text = (await readFile(file, 'utf8')).trim();
  const key = Buffer.from(text, 'base64');
  if (key.length !== 32 || key.toString('base64') !== text) throw new UserError(`${file}: expected 32 bytes in base64`);
  return secretBoxFromKey(new Uint8Array(key));
}

/** The alert key: from AIRLOCK_ALERT_KEY_FILE, else from the data directory, generated there on first start. */
export async function loadAlertKey(config: Pick<ServerConfig, 'alerts' | 'dataDir'>): Promise<SecretBox> {
  if (config.alerts.keyFile) return readAlertKey(config.alerts.keyFile);
  const file = path.join(config.dataDir, ALERT_KEY_FILE);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  try {
    // `wx`: a second replica starting at the same moment keeps the first one's key.
    await writeFile(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if (!hasCode(error, 'EEXIST')) throw error;
  }
  return readAlertKey(file);
}

const OAUTH_KEY_FILE = 'oauth-token.key';

async function readOAuthKey(file: string): Promise<string> {
  // Whoever reads this key can mint access tokens for every OAuth client.
  const { mode } = await stat(file);
  if ((mode & 0o077) !== 0) throw new UserError(`${file}: mode ${(mode & 0o777).toString(8)} lets other users read the OAuth token key; chmod 600 it`);
  return readFile(file, 'utf8');
}

/** The OAuth token keys: the configured file or `<dataDir>/oauth-token.key` (made on first start), and the previous one if set. */
export async function loadOAuthKeys(config: Pick<ServerConfig, 'oauth' | 'dataDir'>): Promise<TokenKeys> {
  let file = config.oauth.keyFile;
  if (file === null) {
    file = path.join(config.dataDir, OAUTH_KEY_FILE);
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
    try {
      // `wx`: a second replica starting at the same moment keeps the first one's key.
      await writeFile(file, generateTokenKeyPem(), { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if (!hasCode(error, 'EEXIST')) throw error;
    }
  }
  const previous = config.oauth.previousKeyFile === null ? [] : [await readOAuthKey(config.oauth.previousKeyFile)];
  try {
    return await tokenKeysFromPems(await readOAuthKey(file), previous);
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`OAuth token key: expected an Ed25519 private key in PKCS#8 PEM (${error instanceof Error ? error.message : String(error)})`);
  }
}

export function loadClientConfig(env: NodeJS.ProcessEnv = process.env): ClientConfig {
  return parse(clientSchema, env);
}
