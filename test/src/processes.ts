/**
 * Child processes for the system tests and the demo: commands that run to completion with a time
 * limit, and long-running services whose output goes to log files. Every child is argv-only (never
 * a shell) and is killed when its owner stops or, at the latest, when this process exits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Last resort when the owner never got to stop its children (a crash, process.exit).
    process.once('exit', () => {
      for (const running of live) running.kill('SIGKILL');
    });
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** SIGTERM, then SIGKILL if the child is still there after `graceMs`. */
async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited(child);
  clearTimeout(timer);
}

/** Another uid and gid to run a child as (the caller is root), e.g. so a firewall rule can single it out. */
export interface ProcessUser {
  readonly uid: number;
  readonly gid: number;
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion, with `input` on its stdin if given, and collects its output in
 * memory (nothing is written to disk, so outputs that carry a secret, such as a bootstrap key, stay
 * in this process). Rejects only when it cannot start or runs past `timeoutMs`; the caller judges
 * the exit code.
 */
export function runCommand(
  file: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number; input?: string; user?: ProcessUser | undefined },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const stdin = options.input === undefined ? 'ignore' : 'pipe';
    const child = spawn(file, args, { env: options.env, cwd: options.cwd, stdio: [stdin, 'pipe', 'pipe'], ...options.user });
    track(child);
    // A child that exits without reading its input must not crash us with EPIPE.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void terminate(child, 2_000);
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (timedOut) reject(new Error(`${describeCommand(file, args)} did not finish within ${options.timeoutMs} ms: ${stderr.trim()}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

/** The program and its first arguments, for error messages; arguments here never carry secrets. */
export function describeCommand(file: string, args: readonly string[]): string {
  return [file, ...args].join(' ');
}

export interface Service {
  readonly name: string;
  readonly pid: number | undefined;
  /** Resolves with the exit code when the process ends, however it ends. */
  readonly exited: Promise<number | null>;
  isRunning(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts a process whose stdout and stderr go straight to files (opened by us, handed to the
 * child), so the logs survive this process and can be searched afterwards.
 */
export function startService(
  name: string,
  file: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string; stdoutFile: string; stderrFile: string; user?: ProcessUser | undefined },
): Service {
  const out = openSync(options.stdoutFile, 'a', 0o600);
  const err = options.stderrFile === options.stdoutFile ? out : openSync(options.stderrFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(file, args, { env: options.env, cwd: options.cwd, stdio: ['ignore', out, err], ...options.user });
  } finally {
    closeSync(out);
    if (err !== out) closeSync(err);
  }
  track(child);
  const done = new Promise<number | null>((resolve) => {
    child.once('error', () => resolve(null));
    child.once('exit', (code) => resolve(code));
  });
  return {
    name,
    pid: child.pid,
    exited: done,
    isRunning: () => child.exitCode === null && child.signalCode === null && child.pid !== undefined,
    stop: (graceMs = 5_000) => terminate(child, graceMs),
  };
}

/** The last `bytes` of a log file, for error messages. */
export async function tail(file: string, bytes = 2_000): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.length > bytes ? `…${text.slice(-bytes)}` : text;
}

/**
 * Registers a synchronous clean-up (remove a directory, unmount) for when this process exits before
 * its owner got to it; returns the function that unregisters it.
 */
export function cleanUpOnExit(undo: () => void): () => void {
  const run = (): void => {
    try {
      undo();
    } catch {
      // Best effort: the process is going away.
    }
  };
  process.once('exit', run);
  return () => process.off('exit', run);
}
