/**
 * Compiles a CLI entry point and the workspace packages it imports into ESM files, so `airlock`
 * and `airlock-agent` run as plain JavaScript instead of through the tsx loader: measured, that is
 * about 40 MB less resident memory before the first byte moves, and no transform work at start.
 * Third-party packages stay external and load from node_modules as they are (ssh2 has a native
 * binding). Code reached only through a dynamic `import()` goes into its own chunk, so a command
 * loads what it needs and `--help` loads none of the database or OpenPGP code.
 * Used by each app's `npm run build` (dist/cli.js, which its bin prefers), by the transfer
 * benchmark, which compiles its child process the same way, and by `npm run release`
 * (@airlock/release), which compiles the third-party packages in too (`self-contained`).
 */
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

/** Bare imports outside the workspace: left for Node to resolve at run time. */
const thirdPartyExternal: Plugin = {
  name: 'third-party-external',
  setup(builder) {
    builder.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('@airlock/') ? undefined : { path: args.path, external: true }));
  },
};

/**
 * How a bundle treats third-party packages. `external` (the default, for the clone's bins) leaves
 * every one to node_modules. `self-contained` (the release) compiles them in as well, except the
 * names in `keepExternal`; native addons (`*.node`) always stay out, so code that tries one in a
 * `try` (ssh2's `sshcrypto.node`, `cpu-features`) takes its pure-JavaScript path.
 */
export interface BundleOptions {
  mode?: 'external' | 'self-contained';
  /** `cjs` yields one file with no chunks: what Node 20's single-executable applications run. */
  format?: 'esm' | 'cjs';
  keepExternal?: readonly string[];
  /**
   * Worker threads' entry points, by name: each is built to `<name>.js` at the bundle's root, beside
   * `outfile`, sharing its chunks. Code that starts such a worker looks for it there, from the
   * root or from `chunks/` one level below.
   */
  workers?: Readonly<Record<string, string>>;
}

/**
 * Optional native modules a compiled-in package loads only inside a `try`, and works without:
 * `pg` tries `pg-native` (libpq) only when `pg.native` is read; ssh2 asks `cpu-features` whether
 * the CPU has AES instructions, to order its ciphers, and keeps its default order without it. Like
 * native addons they stay out of a self-contained bundle, so a package that needs no database
 * driver of its own still bundles `pg`, and the bundle is the same whether or not `npm ci` could
 * compile `cpu-features` on the build machine.
 */
export const OPTIONAL_NATIVE_MODULES: readonly string[] = ['pg-native', 'cpu-features'];

function selfContained(keepExternal: readonly string[]): Plugin {
  const external = [...OPTIONAL_NATIVE_MODULES, ...keepExternal];
  return {
    name: 'self-contained',
    setup(builder) {
      builder.onResolve({ filter: /\.node$/ }, (args) => ({ path: args.path, external: true }));
      builder.onResolve({ filter: /^[^./]/ }, (args) =>
        external.some((name) => args.path === name || args.path.startsWith(`${name}/`)) ? { path: args.path, external: true } : undefined,
      );
    },
  };
}

export interface Bundled {
  /** The source files it was built from, so a caller can tell when the bundle is older than its sources. */
  inputs: string[];
  /** What the bundle leaves to require() or import() at run time, as esbuild resolved it. */
  externals: string[];
}

/** Bundles `entry` into `outfile` (with its lazily loaded chunks beside it). */
export async function bundleNode(entry: string, outfile: string, options: BundleOptions = {}): Promise<Bundled> {
  const format = options.format ?? 'esm';
  const result = await build({
    entryPoints: { [path.basename(outfile, '.js')]: entry, ...options.workers },
    outdir: path.dirname(outfile),
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: format === 'esm',
    platform: 'node',
    format,
    target: 'node20',
    // A release ships no source maps: they would carry the sources a second time.
    sourcemap: options.mode === 'self-contained' ? false : 'linked',
    metafile: true,
    logLevel: 'warning',
    // CommonJS has no import.meta: packages that call createRequire(import.meta.url) (openpgp)
    // get this file's own URL instead of undefined.
    ...(format === 'cjs' ? { banner: { js: 'var __bundleUrl = require("node:url").pathToFileURL(__filename).href;' }, define: { 'import.meta.url': '__bundleUrl' } } : {}),
    // CommonJS packages compiled into an ES module still call require() for Node's built-ins.
    ...(format === 'esm' && options.mode === 'self-contained'
      ? { banner: { js: 'import { createRequire as __bundleCreateRequire } from "node:module"; const require = __bundleCreateRequire(import.meta.url);' } }
      : {}),
    plugins: [options.mode === 'self-contained' ? selfContained(options.keepExternal ?? []) : thirdPartyExternal],
  });
  const root = process.cwd();
  const externals = new Set(Object.values(result.metafile.outputs).flatMap((output) => output.imports.filter((imported) => imported.external).map((imported) => imported.path)));
  return { inputs: Object.keys(result.metafile.inputs).map((input) => path.resolve(root, input)), externals: [...externals] };
}

/**
 * Builds an app's `src/cli.ts` into `dist/cli.js` (or into `dist`) and records its sources in
 * `inputs.json` beside it; the app's bin runs the bundle only while no source is newer.
 */
export async function buildCli(appDir: string, dist = path.join(appDir, 'dist'), options: Pick<BundleOptions, 'workers'> = {}): Promise<void> {
  // Chunk names carry a content hash: without this, every build would leave the previous ones behind.
  await rm(path.join(dist, 'chunks'), { recursive: true, force: true });
  const { inputs } = await bundleNode(path.join(appDir, 'src', 'cli.ts'), path.join(dist, 'cli.js'), options);
  await writeFile(path.join(dist, 'inputs.json'), `${JSON.stringify(inputs)}\n`);
}

/** What each app's bin checks before it runs `dist/cli.js`: built, and no source changed since. */
export async function cliIsCurrent(appDir: string): Promise<boolean> {
  const dist = path.join(appDir, 'dist');
  try {
    const built = (await stat(path.join(dist, 'cli.js'))).mtimeMs;
    const inputs: unknown = JSON.parse(await readFile(path.join(dist, 'inputs.json'), 'utf8'));
    if (!Array.isArray(inputs) || inputs.length === 0) return false;
    const times = await Promise.all(inputs.map(async (input: unknown) => (typeof input === 'string' ? (await stat(input)).mtimeMs : Infinity)));
    return times.every((time) => time <= built);
  } catch {
    return false;
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildCli(path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
}
