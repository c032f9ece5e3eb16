import { readFile } from 'node:fs/promises';

/** A process's peak resident set size (VmHWM) in kB, from /proc; null where /proc cannot tell. */
export async function peakRssKb(pid: number | 'self'): Promise<number | null> {
  const status = await readFile(`/proc/${String(pid)}/status`, 'utf8').catch(() => '');
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  return match?.[1] === undefined ? null : Number(match[1]);
}
