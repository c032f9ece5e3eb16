/**
 * `npm run -s test:integrity -- [--json]`
 *
 * Runs every regression test of the integrity findings (tests titled `[integrity #N]`, in any
 * workspace), one vitest run per workspace with that workspace's own config (so its PostgreSQL,
 * sshd and gpg fixtures are set up as in `npm test`), and reads the verdicts back from vitest's
 * JSON reports. Vitest's own output and the per-finding list go to stderr; stdout ends with
 * `{"findings": 23, "fixed": N, "open": [...]}`. Exits 1 when a tagged test failed or a run broke.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { summarize, TAG_PATTERN, taggedTests, type TaggedTest, verdicts } from '../src/integrity.ts';
import { setUpCli } from './cli.ts';

setUpCli();
const { values } = parseArgs({ options: { json: { type: 'boolean', default: false } } });
const root = fileURLToPath(new URL('../../', import.meta.url));

function run(command: string, args: readonly string[], cwd: string, capture: boolean): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', capture ? 'pipe' : process.stderr, process.stderr] });
    let stdout = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, stdout }));
  });
}

/** Test files that carry a tag, grouped by the workspace (nearest package.json) that runs them. */
async function taggedFilesByWorkspace(): Promise<Map<string, string[]>> {
  const { code, stdout } = await run('git', ['grep', '--untracked', '-l', '-F', '[integrity #', '--', '*.test.ts'], root, true);
  if (code > 1) throw new Error('git grep failed to list the tagged test files');
  const byWorkspace = new Map<string, string[]>();
  for (const file of stdout.split('\n').filter((line) => line !== '')) {
    let dir = path.dirname(path.join(root, file));
    // git lists files below the repository root, so walking up always reaches it.
    while (dir !== path.dirname(dir) && path.resolve(dir) !== path.resolve(root) && !existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
    if (path.resolve(dir) === path.resolve(root)) throw new Error(`${file} is in no workspace`);
    byWorkspace.set(dir, [...(byWorkspace.get(dir) ?? []), path.relative(dir, path.join(root, file))]);
  }
  return byWorkspace;
}

const tests: TaggedTest[] = [];
const broken: string[] = [];
const reports = await mkdtemp(path.join(tmpdir(), 'airlock-integrity-'));
try {
  let index = 0;
  for (const [workspace, files] of await taggedFilesByWorkspace()) {
    const out = path.join(reports, `report-${(index += 1)}.json`);
    process.stderr.write(`integrity: ${path.relative(root, workspace)}: ${files.length} file(s)\n`);
    const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, '-t', TAG_PATTERN, ...files];
    const { code } = await run('npx', args, workspace, false);
    let found: TaggedTest[] = [];
    try {
      found = taggedTests(JSON.parse(await readFile(out, 'utf8')));
    } catch {
      broken.push(`${path.relative(root, workspace)}: vitest wrote no report (exit ${code})`);
    }
    if (code !== 0 && !found.some((test) => test.status === 'failed')) broken.push(`${path.relative(root, workspace)}: vitest exited ${code}`);
    tests.push(...found);
  }
} finally {
  await rm(reports, { recursive: true, force: true });
}

const found = verdicts(tests);
for (const verdict of found) {
  const counts = `${verdict.tests.filter((test) => test.status === 'passed').length}/${verdict.tests.length} passed`;
  process.stderr.write(`#${verdict.finding} ${verdict.fixed ? 'fixed' : 'OPEN '} ${counts}  ${verdict.title}\n`);
  for (const test of verdict.tests) process.stderr.write(`    ${test.status.padEnd(7)} ${test.name}\n`);
}
for (const line of broken) process.stderr.write(`integrity: ${line}\n`);
const summary = summarize(found);
process.stdout.write(`${values.json ? JSON.stringify(summary) : JSON.stringify(summary, null, 2)}\n`);
process.exitCode = broken.length > 0 || tests.some((test) => test.status === 'failed') ? 1 : 0;
