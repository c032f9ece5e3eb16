/**
 * The one place that spells the command an admin runs on the agent's host to enroll it. The
 * console shows it verbatim; change flags here (and only here) when `airlock-agent enroll` grows.
 */

export interface EnrollCommand {
  /** The program and its arguments, for anything that runs it without a shell. */
  argv: string[];
  /** The same argv as one line for a POSIX shell, each argument quoted when it needs to be. */
  text: string;
}

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one argument for a POSIX shell: single quotes, with embedded single quotes closed and escaped. */
export function shellQuote(word: string): string {
  if (SAFE_WORD.test(word)) return word;
  return `'${word.replaceAll("'", `'"'"'`)}'`;
}

export function enrollCommand(options: { controlPlaneUrl: string; token: string; controlPlaneKey?: string }): EnrollCommand {
  const argv = ['airlock-agent', 'enroll', '--url', options.controlPlaneUrl, '--token', options.token];
  // The signing key the agent pins before it redeems the token, when the agent supports pinning.
  if (options.controlPlaneKey !== undefined) argv.push('--control-plane-key', options.controlPlaneKey);
  return { argv, text: argv.map(shellQuote).join(' ') };
}
