/**
 * The control plane's configuration: read from the environment once, here, validated with zod,
 * and failing with every problem listed. Nothing else reads process.env.
 */
import path from 'node:path';
import { z } from 'zod';
import { UserError } from '@airlock/errors';

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
  /** Largest request body in bytes. Default 1 MiB. */
  AIRLOCK_MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /** How often the scheduler looks for due schedules, in ms. Default 5_000. */
  AIRLOCK_SCHEDULER_TICK_MS: z.coerce.number().int().min(100).max(60_000).default(5_000),
  AIRLOCK_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

const clientSchema = z.object({
  /** The control plane's base URL for admin commands. */
  AIRLOCK_URL: z.string().url().default('http://127.0.0.1:7443'),
  /** An admin API key. Secret: pass it in the environment, never on the command line. */
  AIRLOCK_API_KEY: z.string().min(1).optional(),
});

export type ServerConfig = ReturnType<typeof loadServerConfig>;
export type ClientConfig = z.infer<typeof clientSchema>;

function parse<T>(schema: z.ZodType<T>, env: NodeJS.ProcessEnv): T {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  throw new UserError(`configuration: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
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
    maxBodyBytes: raw.AIRLOCK_MAX_BODY_BYTES,
    logLevel: raw.AIRLOCK_LOG_LEVEL,
    schedulerTickMs: raw.AIRLOCK_SCHEDULER_TICK_MS,
  };
}

export function loadClientConfig(env: NodeJS.ProcessEnv = process.env): ClientConfig {
  return parse(clientSchema, env);
}
