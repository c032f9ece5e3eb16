/**
 * CPU time the whole machine spent busy (every process, every core), from /proc/stat: during one
 * benchmark step it counts the sshd processes and gpg as well as the process being measured.
 */
import { readFile } from 'node:fs/promises';

/** Linux reports /proc/stat in USER_HZ ticks, 100 per second on every common configuration. */
const TICKS_PER_SECOND = 100;

export async function machineBusySeconds(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0] ?? '';
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  if (fields.length < 4 || fields.some((field) => !Number.isFinite(field))) throw new Error('unexpected /proc/stat');
  // user nice system idle iowait irq softirq steal ...: busy is everything but idle and iowait.
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  const total = fields.slice(0, 8).reduce((sum, field) => sum + field, 0);
  return (total - idle) / TICKS_PER_SECOND;
}

