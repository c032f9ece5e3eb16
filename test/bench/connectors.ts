/**
 * `npm run -s test:connectors -- [--json] [--reports DIR]`
 *
 * Runs the connector conformance suite for every connector package (`packages/connector-*` with a
 * `src/contract.integration.test.ts`), one vitest run per package with its own config, and reads
 * the cases back from vitest's JSON reports. Vitest's output goes to stderr; stdout ends with
 * `{"connectors": N, "contract_cases": n, "failed": f}`. Exits 1 when a case failed or a run broke.
 * With `--reports DIR` it reads the reports `npm test` wrote there instead (see vitest.shared.ts).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { reportFileFor } from '../../vitest.shared.ts';
import { type ContractCase, contractCases, summarizeContract } from '../src/connector-contract.ts';
import { setUpCli } from './cli.ts';

setUpCli();
const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, reports: { type: 'string' } } });
const root = fileURLToPath(new URL('../../', import.meta.url));
const SUITE_FILE = path.join('src', 'contract.integration.test.ts');

function run(args: readonly string[], cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', args, { cwd, stdio: ['ignore', process.stderr, process.stderr] });
    child.once('error', reject);
    child.once('close', (code) => resolve(code ?? 1));
  });
}

const packages = (await readdir(path.join(root, 'packages')))
  .filter((name) => name.startsWith('connector-'))
  .map((name) => path.join(root, 'packages', name))
  .filter((dir) => existsSync(path.join(dir, SUITE_FILE)))
  .sort();

const cases: ContractCase[] = [];
const broken: string[] = [];
const reports = await mkdtemp(path.join(tmpdir(), 'airlock-contract-'));
try {
  for (const [index, dir] of packages.entries()) {
    const out = values.reports === undefined ? path.join(reports, `report-${index}.json`) : reportFileFor(values.reports, dir, root);
    process.stderr.write(`connectors: ${path.relative(root, dir)}\n`);
    const code = values.reports === undefined ? await run(['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, SUITE_FILE], dir) : 0;
    let found: ContractCase[] = [];
    try {
      found = contractCases(JSON.parse(await readFile(out, 'utf8')));
    } catch {
      broken.push(`${path.relative(root, dir)}: vitest wrote no report (exit ${code})`);
    }
    if (found.length === 0) broken.push(`${path.relative(root, dir)}: no contract cases ran`);
    if (code !== 0 && !found.some((c) => c.status === 'failed')) broken.push(`${path.relative(root, dir)}: vitest exited ${code}`);
    cases.push(...found);
  }
} finally {
  await rm(reports, { recursive: true, force: true });
}

for (const c of cases) process.stderr.write(`${c.status.padEnd(7)} ${c.name}\n`);
for (const line of broken) process.stderr.write(`connectors: ${line}\n`);
const summary = summarizeContract(cases);
process.stdout.write(`${values.json ? JSON.stringify(summary) : JSON.stringify(summary, null, 2)}\n`);
process.exitCode = summary.failed > 0 || broken.length > 0 ? 1 : 0;
