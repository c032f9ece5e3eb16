/**
 * `npm run -s bench:cli -- --json [--runs 7]`
 *
 * Start-up time of the installed CLIs against bare Node, each run as its own process:
 *   airlock --version, airlock --help, airlock-agent --version, node -e 0  (median ms each)
 *   ratio_airlock  the slower of the two `airlock` medians over the `node -e 0` median
 *   ratio_agent    the `airlock-agent --version` median over the `node -e 0` median
 * Builds either CLI's bundle first when it is missing or older than its sources, since that is
 * what `scripts/setup.sh` leaves behind; the runs take turns so a burst of load spreads over all.
 * Prints exactly one JSON object on stdout; progress goes to stderr.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { buildCli, cliIsCurrent } from '@airlock/agent/bundle';
import { setUpCli } from './cli.ts';

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const run = promisify(execFile);

setUpCli();
const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    runs: { type: 'string', default: '7' },
  },
});
const runs = Number(values.runs);
if (!Number.isSafeInteger(runs) || runs < 5 || runs > 100) throw new Error('--runs: 5 to 100');

const round = (value: number, digits = 1): number => Number(value.toFixed(digits));
const require = createRequire(import.meta.url);
const appDir = (name: string): string => path.dirname(require.resolve(`${name}/package.json`));
const controlPlane = appDir('@airlock/control-plane');
const agent = appDir('@airlock/agent');

for (const dir of [controlPlane, agent]) {
  if (await cliIsCurrent(dir)) continue;
  log(`building ${path.join(dir, 'dist', 'cli.js')}`);
  await buildCli(dir);
}

const commands = {
  airlock_version: [path.join(controlPlane, 'bin', 'airlock.js'), '--version'],
  airlock_help: [path.join(controlPlane, 'bin', 'airlock.js'), '--help'],
  agent_version: [path.join(agent, 'bin', 'airlock-agent.js'), '--version'],
  node: ['-e', '0'],
} satisfies Record<string, string[]>;
type Name = keyof typeof commands;
const names: Name[] = ['airlock_version', 'airlock_help', 'agent_version', 'node'];

async function timeOnce(args: string[]): Promise<number> {
  const started = process.hrtime.bigint();
  await run(process.execPath, args, { timeout: 60_000 });
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? NaN) : ((sorted[middle - 1] ?? NaN) + (sorted[middle] ?? NaN)) / 2;
}

const loadBefore = loadavg();
const samples: Record<Name, number[]> = { airlock_version: [], airlock_help: [], agent_version: [], node: [] };
// One untimed round first: the first start after a build also pays for the page cache.
for (const name of names) await timeOnce(commands[name]);
for (let pass = 0; pass < runs; pass += 1) {
  for (const name of names) samples[name].push(await timeOnce(commands[name]));
}

const medians = { airlock_version: median(samples.airlock_version), airlock_help: median(samples.airlock_help), agent_version: median(samples.agent_version), node: median(samples.node) };
const result = {
  runs,
  median_ms: {
    'airlock --version': round(medians.airlock_version),
    'airlock --help': round(medians.airlock_help),
    'airlock-agent --version': round(medians.agent_version),
    'node -e 0': round(medians.node),
  },
  ratio_airlock: round(Math.max(medians.airlock_version, medians.airlock_help) / medians.node, 2),
  ratio_agent: round(medians.agent_version / medians.node, 2),
  target_ratio: 3,
  env: {
    node: process.version,
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    loadavg_before: loadBefore.map((l) => round(l, 2)),
    loadavg_after: loadavg().map((l) => round(l, 2)),
  },
};
process.stdout.write(`${values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2)}\n`);
