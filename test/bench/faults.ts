/**
 * `npm run -s test:faults -- --json [--seed N] [--cuts 24] [--kills 3] [--size 2MiB] [--no-disk-full]`
 *
 * Runs the fault suite (src/faults.ts) and prints one JSON object on stdout; progress, the seed and
 * every cut offset go to stderr. Exits 1 when anything wrong was visible or reported, or a partial
 * file was left behind.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { runFaultSuite } from '../src/faults.ts';
import { setUpCli } from './cli.ts';
import { parseSize } from './sizes.ts';

setUpCli();
const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    seed: { type: 'string' },
    cuts: { type: 'string', default: '24' },
    'upload-cuts': { type: 'string', default: '24' },
    kills: { type: 'string', default: '3' },
    size: { type: 'string', default: '2MiB' },
    'no-disk-full': { type: 'boolean', default: false },
    'case-timeout-ms': { type: 'string', default: '30000' },
  },
});

function count(text: string, name: string, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > max) throw new Error(`--${name} must be an integer from 0 to ${max}`);
  return value;
}

const seed = values.seed === undefined ? randomInt(2 ** 31) : count(values.seed, 'seed', 2 ** 32 - 1);
const result = await runFaultSuite({
  seed,
  fileSize: parseSize(values.size),
  downloadCuts: count(values.cuts, 'cuts', 1_000),
  uploadCuts: count(values['upload-cuts'], 'upload-cuts', 1_000),
  serverKills: count(values.kills, 'kills', 100),
  diskFull: !values['no-disk-full'],
  caseTimeoutMs: count(values['case-timeout-ms'], 'case-timeout-ms', 600_000),
  log: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write(`${values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2)}\n`);
const failed =
  result.partial_files + result.corrupt_files + result.misreported + result.temp_leftovers + result.bad_outcomes + result.uncaught_errors.length > 0;
process.exitCode = failed ? 1 : 0;
