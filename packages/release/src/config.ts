/** The only place the release tooling reads the environment. */

/** CI=true: a missing part (root, dpkg, systemd-analyze) is an error, never a skip. */
export function underCi(env: NodeJS.ProcessEnv = process.env): boolean {
  return env['CI'] === 'true';
}
