/**
 * A worker thread of `openPageVerifier`: verifies the pages it is sent, one at a time, and answers
 * each with its summary and the page's buffer. Pure CPU work on the bytes it is given; it opens nothing.
 */
import { parentPort } from 'node:worker_threads';
import { verifyPage } from './page-verify.ts';
import type { PageTask } from './page-pool.ts';

parentPort?.on('message', (task: PageTask) => {
  const summary = verifyPage(new Uint8Array(task.buffer, 0, task.length));
  // The buffer goes back, to be read into again.
  parentPort?.postMessage({ id: task.id, summary, buffer: task.buffer }, [task.buffer]);
});
