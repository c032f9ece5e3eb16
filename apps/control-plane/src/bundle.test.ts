import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleNode } from '@airlock/agent/bundle';
import { PAGE_WORKERS } from '@airlock/audit';
import { buildControlPlaneCli } from './bundle.ts';
import packageJson from '../package.json' with { type: 'json' };

const run = promisify(execFile);
const app = path.join(import.meta.dirname, '..');
// A copy of the bin beside a fresh bundle and no src/: it can only answer by running the bundle,
// since falling back to tsx would look for ../src/cli.ts. Inside the app, so node_modules resolves.
await mkdir(path.join(app, 'dist'), { recursive: true });
const scratch = await mkdtemp(path.join(app, 'dist', 'bundle-test-'));
afterAll(() => rm(scratch, { recursive: true, force: true }));

async function prepare(): Promise<string> {
  await buildControlPlaneCli(path.join(scratch, 'dist'));
  await mkdir(path.join(scratch, 'bin'), { recursive: true });
  const bin = path.join(scratch, 'bin', 'airlock.js');
  await copyFile(path.join(app, 'bin', 'airlock.js'), bin);
  return bin;
}

describe('the airlock bin', () => {
  it('runs dist/cli.js, without tsx, while the bundle is newer than its sources', async () => {
    const bin = await prepare();
    const { stdout } = await run(process.execPath, [bin, '--version'], { timeout: 30_000 });
    expect(stdout.trim()).toBe(packageJson.version);
  });

  it('does not run a bundle older than one of its sources', async () => {
    const bin = await prepare();
    const changed = path.join(scratch, 'changed-source.ts');
    await writeFile(changed, '');
    const later = new Date(Date.now() + 60_000);
    await utimes(changed, later, later);
    await writeFile(path.join(scratch, 'dist', 'inputs.json'), JSON.stringify([changed]));
    await expect(run(process.execPath, [bin, '--version'], { timeout: 30_000 })).rejects.toThrow(/src\/cli\.ts/);
  });
});

describe('a bundle with the page workers', () => {
  it.each([['external', {}], ['self-contained (the release)', { mode: 'self-contained' as const }]])('verifies audit pages on worker threads, without tsx: %s', async (name, options) => {
    const probe = path.join(scratch, 'probe.ts');
    await writeFile(
      probe,
      `import { openPageVerifier } from '@airlock/audit';
const pages = openPageVerifier({ threads: 2 });
const summary = await pages.verify(new Uint8Array(3));
process.stdout.write(JSON.stringify({ threads: pages.threads, summary }));
await pages.close();
`,
    );
    const outfile = path.join(scratch, `probe-${name.split(' ')[0]}`, 'probe.js');
    await bundleNode(probe, outfile, { ...options, workers: PAGE_WORKERS });
    const { stdout } = await run(process.execPath, [outfile], { timeout: 30_000 });
    // Three bytes are no page: a worker read them and said so.
    expect(JSON.parse(stdout)).toEqual({ threads: 2, summary: { ok: false, tenantId: null, seq: 0, reason: 'a page of records could not be read' } });
  });
});
