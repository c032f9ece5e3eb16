/**
 * A process that takes the lock when told to: prints `ready`, waits for a line on stdin, then
 * prints `won` (and holds the lock until stdin closes) or `refused <message>`.
 */
import { once } from 'node:events';
import { lockDataDir } from './index.ts';

const dir = process.argv[2] ?? '';
process.stdout.write('ready\n');
await once(process.stdin, 'data');
try {
  const lock = await lockDataDir(dir, { name: 'test.lock', command: 'lock-child', refusal: (holder) => `held by pid ${holder.pid}` });
  process.stdout.write('won\n');
  await once(process.stdin, 'end');
  await lock.release();
} catch (error) {
  process.stdout.write(`refused ${error instanceof Error ? error.message : String(error)}\n`);
}
