/**
 * The conformance suite can fail: run against a destination that breaks its promises, exactly the
 * cases about those promises fail, and the one it keeps (pure claims) passes.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));

it('fails a leaky destination on every promise it breaks', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'airlock-contract-self-'));
  try {
    const report = path.join(dir, 'report.json');
    const args = ['vitest', 'run', '--config', 'src/fixtures/vitest.fixture.config.ts', '--reporter=json', `--outputFile.json=${report}`];
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn('npx', args, { cwd: packageDir, stdio: 'ignore' });
      child.once('error', reject);
      child.once('close', (exit) => resolve(exit ?? 1));
    });
    expect(code).not.toBe(0);
    const parsed: { testResults: Array<{ assertionResults: Array<{ title: string; status: string }> }> } = JSON.parse(await readFile(report, 'utf8'));
    const outcome = Object.fromEntries(parsed.testResults.flatMap((file) => file.assertionResults.map((test) => [test.title, test.status])));
    expect(outcome).toEqual({
      'computes its claims without I/O: plain values of its own scheme, the same every time': 'passed',
      'shows nothing under the final name before commit, then exactly the bytes written': 'failed',
      'aborts safely twice, before and after writing, and leaves nothing': 'failed',
      'never replaces an existing object: commit fails with ConflictError and the original stays': 'failed',
      'holds the writer back and takes 64 MiB in bounded memory': 'failed',
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
