import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleNode } from './bundle.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const scratch = await mkdtemp(path.join(os.tmpdir(), 'airlock-bundle-'));
afterAll(() => rm(scratch, { recursive: true, force: true }));

describe('the agent bundle', () => {
  it('compiles the workspace sources in and leaves third-party packages to node_modules', async () => {
    const outfile = path.join(scratch, 'cli.js');
    const inputs = await bundleNode(path.join(here, 'cli.ts'), outfile);
    expect(inputs).toContain(path.join(here, 'transfer-file.ts'));
    expect(inputs.some((input) => input.endsWith(path.join('packages', 'connector-sftp', 'src', 'reader.ts')))).toBe(true);
    expect(inputs.filter((input) => input.includes(`${path.sep}node_modules${path.sep}`))).toEqual([]);
    const code = await readFile(outfile, 'utf8');
    expect(code).toMatch(/from "ssh2"/);
    expect(code).toMatch(/from "openpgp"/);
  });
});
