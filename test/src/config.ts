/**
 * The only place the system tests and the demo read the environment. Child processes inherit the
 * caller's environment (PATH, HOME, proxies) minus every Airlock variable, so a DATABASE_URL or
 * API key set in the developer's shell can never leak into a run that expects a fresh system.
 */
const OWN_VARIABLE = /^(AIRLOCK_|DATABASE_URL$|PGHOST$|PGPORT$|PGUSER$|PGPASSWORD$|PGDATABASE$)/;

export function inheritedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !OWN_VARIABLE.test(name)) env[name] = value;
  }
  return env;
}

/** CI=true: a missing part (root for dpkg -i, systemd-analyze) is an error, never a skip. */
export function underCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env['CI'] === 'true';
}
