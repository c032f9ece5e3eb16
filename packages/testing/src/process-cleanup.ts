/**
 * Last-resort cleanup when the test process exits without calling `stop()`: kills the fixtures'
 * child processes and removes their temporary directories. Only synchronous work runs in an
 * `exit` handler, so each fixture registers a synchronous undo.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

type Undo = () => void;

const pending = new Set<Undo>();
let installed = false;

function runAll(): void {
  for (const undo of pending) {
    try {
      undo();
    } catch {
      // Best effort: the process is going away anyway.
    }
  }
  pending.clear();
}

/** Registers a synchronous undo to run on process exit; returns a function that unregisters it. */
export function onProcessExit(undo: Undo): () => void {
  if (!installed) {
    installed = true;
    process.once('exit', runAll);
  }
  pending.add(undo);
  return () => {
    pending.delete(undo);
  };
}

export function killOnExit(child: ChildProcess): () => void {
  return onProcessExit(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
}

export function removeOnExit(dir: string): () => void {
  return onProcessExit(() => {
    rmSync(dir, { recursive: true, force: true });
  });
}

/** Runs a command synchronously from an exit handler; argv only, never a shell. */
export function runSyncQuietly(file: string, args: readonly string[]): void {
  execFileSync(file, args, { stdio: 'ignore', timeout: 10_000 });
}
