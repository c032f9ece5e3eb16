/**
 * A worker thread of `openPageVerifier`: verifies the pages it is sent, one at a time, and answers
 * each with its summary. Pure CPU work on the bytes it is given; it opens nothing.
 */
import { parentPort } from 'node:worker_threads';
import { verifyPage } from './page-verify.ts';
import type { PageTask } from './page-pool.ts';

parentPort?.on('message', (task: PageTask) => {
  parentPort?.postMessage({ id: task.id, summary: verifyPage(task.page) });
});
