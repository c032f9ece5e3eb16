/**
 * `npm run -s test:compromised -- [--json]`
 *
 * Runs the compromised-control-plane suite (e2e/compromised-control-plane.test.ts, also part of
 * `npm test`) through vitest, with vitest's own report on stderr, and prints the suite's summary
 * `{ "attacks": N, "prevented": N }` as the last line on stdout. Exits 1 unless every attack was
 * prevented and every test passed.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setUpCli } from './cli.ts';

setUpCli();
const { values } = parseArgs({ options: { json: { type: 'boolean', default: false } } });
const testDir = fileURLToPath(new URL('../', import.meta.url));
const vitest = path.join(path.dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
const SUMMARY = /^\{"attacks":\d+,"prevented":\d+\}$/;

const child = spawn(process.execPath, [vitest, 'run', 'e2e/compromised-control-plane.test.ts'], { cwd: testDir, stdio: ['ignore', 'pipe', 'inherit'] });
let summary: string | undefined;
let buffered = '';
child.stdout.setEncoding('utf8');
child.stdout.on('data', (chunk: string) => {
  buffered += chunk;
  const lines = buffered.split('\n');
  buffered = lines.pop() ?? '';
  for (const line of lines) {
    if (SUMMARY.test(line.trim())) summary = line.trim();
    else process.stderr.write(`${line}\n`);
  }
});
const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
if (SUMMARY.test(buffered.trim())) summary = buffered.trim();
const parsed = summary === undefined ? { attacks: 0, prevented: 0 } : (JSON.parse(summary) as { attacks: number; prevented: number });
if (!values.json) process.stderr.write(`${parsed.prevented} of ${parsed.attacks} attacks prevented\n`);
process.stdout.write(`${JSON.stringify(parsed)}\n`);
process.exitCode = code === 0 && parsed.attacks > 0 && parsed.prevented === parsed.attacks ? 0 : 1;
