/**
 * The agent's configuration: its data directory and the local files the on-prem admin owns.
 * Read from the environment once, here, with zod; CLI flags override. Nothing else reads process.env.
 */
import path from 'node:path';
import { z } from 'zod';
import { UserError } from '@airlock/errors';

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
});

export interface AgentConfig {
  dataDir: string;
  policyFile: string;
  secretsFile: string;
  enrollToken: string | undefined;
  logLevel: z.infer<typeof schema>['AIRLOCK_LOG_LEVEL'];
}

export function loadAgentConfig(overrides: { dir?: string; policy?: string; secrets?: string } = {}, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new UserError(`configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const raw = parsed.data;
  const dataDir = path.resolve(overrides.dir ?? raw.AIRLOCK_AGENT_DIR);
  return {
    dataDir,
    policyFile: path.resolve(overrides.policy ?? raw.AIRLOCK_AGENT_POLICY ?? path.join(dataDir, 'policy.yaml')),
    secretsFile: path.resolve(overrides.secrets ?? raw.AIRLOCK_AGENT_SECRETS ?? path.join(dataDir, 'secrets.yaml')),
    enrollToken: raw.AIRLOCK_ENROLL_TOKEN,
    logLevel: raw.AIRLOCK_LOG_LEVEL,
  };
}
