/**
 * The Airlock side of the transfer benchmark, in its own process so its peak memory can be
 * measured: reads one JSON line on stdin (the prepared job and the SSH client key), runs the real
 * data path once, prints one JSON line with the report, the time and its own peak RSS, then waits
 * for stdin to close so the parent can read VmHWM from /proc before it exits.
 */
import { createInterface } from 'node:readline';
import { runJob } from '@airlock/agent';
import { agentDeps, type PreparedJob } from '../src/agent-job.ts';
import { machineBusySeconds } from './machine-cpu.ts';
import { peakRssKb } from './memory.ts';

const EXIT_WAIT_MS = 30_000;

function parseInput(line: string): { prepared: PreparedJob; privateKey: string } {
  const value: unknown = JSON.parse(line);
  if (typeof value !== 'object' || value === null || !('prepared' in value) || !('privateKey' in value)) {
    throw new Error('expected {"prepared": ..., "privateKey": ...} on stdin');
  }
  const { prepared, privateKey } = value;
  if (typeof privateKey !== 'string' || typeof prepared !== 'object' || prepared === null) throw new Error('malformed benchmark input');
  // The parent built this with prepareJob(); runJob and LocalPolicy check it again.
  return { prepared: prepared as PreparedJob, privateKey };
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const first = await lines.next();
if (first.done === true) throw new Error('no input on stdin');
const { prepared, privateKey } = parseInput(first.value);

const logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: (meta: Record<string, unknown>, message: string) => process.stderr.write(`${message} ${JSON.stringify(meta)}\n`),
  error: (meta: Record<string, unknown>, message: string) => process.stderr.write(`${message} ${JSON.stringify(meta)}\n`),
};
const baselineRssKb = Math.round(process.memoryUsage.rss() / 1024);
/**
 * Where the resident memory goes during the run, sampled every 20 ms: the JavaScript heap, and the
 * memory of buffers outside it (`external`, of which `arrayBuffers`). Dead buffers stay counted there
 * until V8's next full collection.
 */
const memoryPeakKb = { heapUsed: 0, external: 0, arrayBuffers: 0 };
const sampleMemory = (): void => {
  const usage = process.memoryUsage();
  memoryPeakKb.heapUsed = Math.max(memoryPeakKb.heapUsed, Math.round(usage.heapUsed / 1024));
  memoryPeakKb.external = Math.max(memoryPeakKb.external, Math.round(usage.external / 1024));
  memoryPeakKb.arrayBuffers = Math.max(memoryPeakKb.arrayBuffers, Math.round(usage.arrayBuffers / 1024));
};
const sampler = setInterval(sampleMemory, 20);
const started = process.hrtime.bigint();
const cpuBefore = process.cpuUsage();
const machineBefore = await machineBusySeconds();
const report = await runJob(prepared.job, agentDeps(prepared, privateKey, logger));
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
clearInterval(sampler);
sampleMemory();
// Every thread of the process: the main thread and the seal worker.
const cpu = process.cpuUsage(cpuBefore);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const machineCpuSeconds = (await machineBusySeconds()) - machineBefore;

process.stdout.write(
  `${JSON.stringify({ report, seconds, cpuSeconds, userCpuSeconds: cpu.user / 1e6, systemCpuSeconds: cpu.system / 1e6, machineCpuSeconds, baselineRssKb, memoryPeakKb, maxRssKb: process.resourceUsage().maxRSS, vmHwmKb: await peakRssKb('self') })}\n`,
);
// Bounded: the parent closes stdin once it has read our VmHWM, or we leave anyway.
await Promise.race([lines.next(), new Promise((resolve) => setTimeout(resolve, EXIT_WAIT_MS).unref())]);
process.stdin.destroy();
