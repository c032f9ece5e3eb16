/**
 * Runs the tests whose titles carry a tag, in whichever workspaces they live, and reads their
 * verdicts back. One vitest run per workspace with that workspace's own config (so its PostgreSQL,
 * sshd, gpg and Chromium fixtures are set up as in `npm test`), filtered by `-t`, each writing a JSON
 * report that `reportedTests` parses. The tag runners (`test:integrity`, `test:identity`) are built on it.
 * Given the reports `npm test` just wrote (`--reports`, see vitest.shared.ts), it reads those instead
 * of running the tests a second time.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { reportFileFor } from '../../vitest.shared.ts';

export type TestStatus = 'passed' | 'failed' | 'skipped';

/** One test of a vitest JSON report: its full name (describe blocks included), file and status. */
export interface ReportedTest {
  name: string;
  file: string;
  status: TestStatus;
}

function record(value: unknown): Readonly<Record<string, unknown>> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** Every test in one vitest `--reporter=json` report; tests filtered out by `-t` come back skipped. */
export function reportedTests(report: unknown): ReportedTest[] {
  const files = record(report)?.['testResults'];
  if (!Array.isArray(files)) throw new Error('the vitest report has no testResults');
  const tests: ReportedTest[] = [];
  for (const file of files) {
    const fileRecord = record(file);
    const fileName = typeof fileRecord?.['name'] === 'string' ? fileRecord['name'] : '(unknown file)';
    const assertions = fileRecord?.['assertionResults'];
    if (!Array.isArray(assertions)) continue;
    for (const assertion of assertions) {
      const entry = record(assertion);
      const fullName = entry?.['fullName'];
      const status = entry?.['status'];
      if (typeof fullName !== 'string') continue;
      tests.push({ name: fullName, file: fileName, status: status === 'passed' ? 'passed' : status === 'failed' ? 'failed' : 'skipped' });
    }
  }
  return tests;
}

function run(command: string, args: readonly string[], cwd: string, capture: boolean): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', capture ? 'pipe' : process.stderr, process.stderr] });
    let stdout = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, stdout }));
  });
}

/** Test files containing `marker`, grouped by the workspace (nearest package.json) that runs them. */
async function filesByWorkspace(root: string, marker: string): Promise<Map<string, string[]>> {
  const { code, stdout } = await run('git', ['grep', '--untracked', '-l', '-F', marker, '--', '*.test.ts'], root, true);
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

export interface TaggedRun {
  /** The tests vitest ran or skipped in the files that carry the marker. */
  tests: ReportedTest[];
  /** Runs that broke without a failing test to show for it (no report, a crash, a failed setup). */
  broken: string[];
}

/**
 * Runs, in every workspace of the repository at `root`, the test files containing the literal
 * `marker`, keeping only the tests whose full name matches `namePattern` (a vitest `-t` regex).
 * Vitest's output goes to stderr, prefixed per workspace by `label`.
 */
export async function runTaggedTests(options: { root: string; marker: string; namePattern: string; label: string; reports?: string | undefined }): Promise<TaggedRun> {
  const { root, marker, namePattern, label } = options;
  if (options.reports !== undefined) return readTaggedTests(root, marker, options.reports);
  const tests: ReportedTest[] = [];
  const broken: string[] = [];
  const reports = await mkdtemp(path.join(tmpdir(), `airlock-${label}-`));
  try {
    let index = 0;
    for (const [workspace, files] of await filesByWorkspace(root, marker)) {
      const out = path.join(reports, `report-${(index += 1)}.json`);
      process.stderr.write(`${label}: ${path.relative(root, workspace)}: ${files.length} file(s)\n`);
      const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, '-t', namePattern, ...files];
      const { code } = await run('npx', args, workspace, false);
      let found: ReportedTest[] = [];
      try {
        found = reportedTests(JSON.parse(await readFile(out, 'utf8')));
      } catch {
        broken.push(`${path.relative(root, workspace)}: vitest wrote no report (exit ${code})`);
      }
      if (code !== 0 && !found.some((test) => test.status === 'failed')) broken.push(`${path.relative(root, workspace)}: vitest exited ${code}`);
      tests.push(...found);
    }
  } finally {
    await rm(reports, { recursive: true, force: true });
  }
  return { tests, broken };
}

/**
 * The tests of the files containing `marker`, from the reports a full run wrote into `reports`
 * (one per workspace, named by `reportFileFor`). A workspace with tagged files and no report broke.
 */
export async function readTaggedTests(root: string, marker: string, reports: string): Promise<TaggedRun> {
  const tests: ReportedTest[] = [];
  const broken: string[] = [];
  for (const [workspace, files] of await filesByWorkspace(root, marker)) {
    const tagged = new Set(files.map((file) => path.resolve(workspace, file)));
    try {
      const found = reportedTests(JSON.parse(await readFile(reportFileFor(reports, workspace, root), 'utf8')));
      tests.push(...found.filter((test) => tagged.has(path.resolve(test.file))));
    } catch {
      broken.push(`${path.relative(root, workspace)}: no readable report in ${reports}`);
    }
  }
  return { tests, broken };
}
