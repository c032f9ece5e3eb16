/**
 * The agent's configuration: its data directory and the local files the on-prem admin owns.
 * Read from the environment once, here, with zod; CLI flags override. Nothing else reads process.env.
 */
import path from 'node:path';
import { z } from 'zod';
import { formatIssues, UserError } from '@airlock/errors';
import { UPDATE_CONFIRM_WITHIN_MS, UPDATE_MAX_STARTS } from '@airlock/protocol';
import { type ProxySettings, proxySettingsFromEnv } from './egress.ts';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.ts';

const schema = z.object({
  /** Holds the identity (agent.json, agent.key with mode 0600). Default `./.airlock/agent`. */
  AIRLOCK_AGENT_DIR: z.string().min(1).default('.airlock/agent'),
  /** The local policy: the ceiling for every job. Default `<dir>/policy.yaml`. */
  AIRLOCK_AGENT_POLICY: z.string().min(1).optional(),
  /** Credentials for sources, by reference. Secret. Default `<dir>/secrets.yaml`. */
  AIRLOCK_AGENT_SECRETS: z.string().min(1).optional(),
  /** A one-time enrollment token, as an alternative to `--token` (keeps it out of the process list). Secret. */
  AIRLOCK_ENROLL_TOKEN: z.string().min(1).optional(),
  AIRLOCK_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /** Attempts per file for transient errors, the first included. Default 4. */
  AIRLOCK_AGENT_RETRY_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(DEFAULT_RETRY.attempts),
  /** Cap of the first backoff in milliseconds; later caps double (full jitter below the cap). Default 1000. */
  AIRLOCK_AGENT_RETRY_BASE_MS: z.coerce.number().int().min(0).max(600_000).default(DEFAULT_RETRY.baseDelayMs),
  /** Longest single backoff in milliseconds. Default 30000. */
  AIRLOCK_AGENT_RETRY_MAX_DELAY_MS: z.coerce.number().int().min(0).max(3_600_000).default(DEFAULT_RETRY.maxDelayMs),
  /** No retry of a file starts after this many milliseconds since its first attempt. Default 120000. */
  AIRLOCK_AGENT_RETRY_MAX_TOTAL_MS: z.coerce.number().int().min(0).max(86_400_000).default(DEFAULT_RETRY.maxTotalMs),
  /** With proxies from the environment: the secrets.yaml entry holding the proxy's Basic credential. */
  AIRLOCK_AGENT_PROXY_CREDENTIAL: z.string().min(1).optional(),
  /**
   * Where the agent writes its metrics for node-exporter's textfile collector: a `.prom` file in the
   * collector's directory, replaced atomically. The agent opens no port. Unset: no file (the
   * heartbeat still carries the summary).
   */
  AIRLOCK_AGENT_METRICS_FILE: z.string().min(1).refine((file) => file.endsWith('.prom'), 'must end in .prom (the textfile collector reads only those)').optional(),
  /** How often the agent witnesses the control plane's audit chain, in milliseconds. Default 300000. */
  AIRLOCK_AGENT_WITNESS_INTERVAL_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(300_000),
  /**
   * The release key's public half (base64 Ed25519, one line), installed by the package: only releases
   * it signed are installed. Without the file, remote updates are refused. Default
   * `/usr/share/airlock/release-key.pub`.
   */
  AIRLOCK_AGENT_RELEASE_KEY: z.string().min(1).default('/usr/share/airlock/release-key.pub'),
  /** A new version that has not heartbeated this many milliseconds after the switch is rolled back. Default 300000. */
  AIRLOCK_AGENT_UPDATE_CONFIRM_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(UPDATE_CONFIRM_WITHIN_MS),
  /** Starts of a new version before the unit's guard rolls it back. Default 3. */
  AIRLOCK_AGENT_UPDATE_MAX_STARTS: z.coerce.number().int().min(1).max(20).default(UPDATE_MAX_STARTS),
});

export interface AgentConfig {
  dataDir: string;
  policyFile: string;
  secretsFile: string;
  enrollToken: string | undefined;
  logLevel: z.infer<typeof schema>['AIRLOCK_LOG_LEVEL'];
  retry: RetryPolicy;
  witnessIntervalMs: number;
  /** HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY (either case), as curl reads them; agent.json's `proxy` replaces them. */
  proxyFromEnv: ProxySettings;
  updates: UpdateSettings;
  /** The textfile collector's file; null: none. */
  metricsFile: string | null;
}

export interface UpdateSettings {
  releaseKeyFile: string;
  confirmWithinMs: number;
  maxStarts: number;
}

export function loadAgentConfig(overrides: { dir?: string; policy?: string; secrets?: string } = {}, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new UserError(`configuration: ${formatIssues(parsed.error.issues)}`);
  }
  const raw = parsed.data;
  const dataDir = path.resolve(overrides.dir ?? raw.AIRLOCK_AGENT_DIR);
  return {
    dataDir,
    policyFile: path.resolve(overrides.policy ?? raw.AIRLOCK_AGENT_POLICY ?? path.join(dataDir, 'policy.yaml')),
    secretsFile: path.resolve(overrides.secrets ?? raw.AIRLOCK_AGENT_SECRETS ?? path.join(dataDir, 'secrets.yaml')),
    enrollToken: raw.AIRLOCK_ENROLL_TOKEN,
    logLevel: raw.AIRLOCK_LOG_LEVEL,
    retry: {
      attempts: raw.AIRLOCK_AGENT_RETRY_ATTEMPTS,
      baseDelayMs: raw.AIRLOCK_AGENT_RETRY_BASE_MS,
      maxDelayMs: raw.AIRLOCK_AGENT_RETRY_MAX_DELAY_MS,
      maxTotalMs: raw.AIRLOCK_AGENT_RETRY_MAX_TOTAL_MS,
    },
    witnessIntervalMs: raw.AIRLOCK_AGENT_WITNESS_INTERVAL_MS,
    proxyFromEnv: { ...proxySettingsFromEnv(env), ...(raw.AIRLOCK_AGENT_PROXY_CREDENTIAL === undefined ? {} : { credential: raw.AIRLOCK_AGENT_PROXY_CREDENTIAL }) },
    updates: { releaseKeyFile: path.resolve(raw.AIRLOCK_AGENT_RELEASE_KEY), confirmWithinMs: raw.AIRLOCK_AGENT_UPDATE_CONFIRM_MS, maxStarts: raw.AIRLOCK_AGENT_UPDATE_MAX_STARTS },
    metricsFile: raw.AIRLOCK_AGENT_METRICS_FILE ? path.resolve(raw.AIRLOCK_AGENT_METRICS_FILE) : null,
  };
}
