import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleNode, OPTIONAL_NATIVE_MODULES } from './bundle.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const scratch = await mkdtemp(path.join(os.tmpdir(), 'airlock-bundle-'));
afterAll(() => rm(scratch, { recursive: true, force: true }));

/** The code of `file` and of every chunk it imports statically (`import(...)` is left out). */
async function staticallyImported(file: string, seen = new Set<string>()): Promise<string> {
  if (seen.has(file)) return '';
  seen.add(file);
  const code = await readFile(file, 'utf8');
  const chunks = [...code.matchAll(/from "(\.{1,2}\/[^"]+)"/g)].map((match) => path.resolve(path.dirname(file), match[1] ?? ''));
  return [code, ...(await Promise.all(chunks.map((chunk) => staticallyImported(chunk, seen))))].join('\n');
}

describe('the agent bundle', () => {
  it('compiles the workspace sources in and leaves third-party packages to node_modules', async () => {
    const outfile = path.join(scratch, 'cli.js');
    const { inputs } = await bundleNode(path.join(here, 'cli.ts'), outfile);
    expect(inputs).toContain(path.join(here, 'transfer-file.ts'));
    expect(inputs.some((input) => input.endsWith(path.join('packages', 'connector-sftp', 'src', 'reader.ts')))).toBe(true);
    expect(inputs.filter((input) => input.includes(`${path.sep}node_modules${path.sep}`))).toEqual([]);
    const files = (await readdir(scratch, { recursive: true })).filter((file) => file.endsWith('.js'));
    const code = (await Promise.all(files.map((file) => readFile(path.join(scratch, file), 'utf8')))).join('\n');
    expect(code).toMatch(/from "ssh2"/);
    expect(code).toMatch(/from "openpgp"/);
  });

  it('leaves what only a command uses to a chunk loaded when that command runs', async () => {
    const outfile = path.join(scratch, 'lazy', 'cli.js');
    await bundleNode(path.join(here, 'cli.ts'), outfile);
    const loadedAtStart = await staticallyImported(outfile);
    expect(loadedAtStart).toMatch(/from "commander"/);
    for (const heavy of ['ssh2', 'openpgp', 'pino', '@trpc/client']) expect(loadedAtStart).not.toContain(`from "${heavy}"`);
  });
});

describe('the self-contained bundle (the release)', () => {
  it('is one CommonJS file with every package compiled in but native addons, and runs outside the repository', async () => {
    const dir = path.join(scratch, 'release');
    const entry = path.join(here, '..', `release-entry-${process.pid}.ts`);
    await writeFile(entry, "import { main } from './src/cli.ts';\nvoid main(process.argv);\n");
    let externals: string[];
    try {
      ({ externals } = await bundleNode(entry, path.join(dir, 'airlock-agent.js'), { mode: 'self-contained', format: 'cjs' }));
    } finally {
      await rm(entry, { force: true });
    }
    expect(await readdir(dir)).toEqual(['airlock-agent.js']);
    // Only Node's own modules, native addons (ssh2 tries its own inside a try) and the optional
    // native modules (pg's libpq binding, ssh2's cpu-features, each tried inside a try) are left to require().
    const { builtinModules } = await import('node:module');
    expect(externals.length).toBeGreaterThan(0);
    for (const name of externals) {
      expect(name.startsWith('node:') || builtinModules.includes(name) || name.endsWith('.node') || OPTIONAL_NATIVE_MODULES.includes(name), name).toBe(true);
    }
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(dir, 'airlock-agent.js'), '--version'], { cwd: os.tmpdir() });
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

