/**
 * Serves the console's built files from one directory, with the security headers every response
 * of the control plane carries. Only files that exist inside the directory at start-up are served:
 * the request path is looked up in that list, never joined onto the filesystem, so no path can
 * climb out of it. The console's own routes, which its build lists in routes.json, get index.html;
 * every other path gets 404, so a probe or a typo is never answered with the console's page.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ServerResponse } from 'node:http';

/**
 * Same-origin only, no inline script or style, never framed. The console needs nothing else:
 * its scripts, styles and the API are all served from this origin.
 */
export const securityHeaders: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
};

const contentTypes: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** Bounds the walk of the build directory: a console build holds a few dozen files. */
const MAX_FILES = 2_000;
const MAX_DEPTH = 8;

interface StaticFile {
  body: Buffer;
  type: string;
  immutable: boolean;
}

async function collect(root: string, dir: string, depth: number, files: Map<string, StaticFile>): Promise<void> {
  if (depth > MAX_DEPTH) return;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (files.size >= MAX_FILES) return;
    const full = path.join(dir, entry.name);
    // Symlinks are skipped: only regular files that physically live under the root are served.
    if (entry.isDirectory()) await collect(root, full, depth + 1, files);
    else if (entry.isFile()) {
      const type = contentTypes[path.extname(entry.name).toLowerCase()];
      if (!type) continue;
      const key = `/${path.relative(root, full).split(path.sep).join('/')}`;
      // Vite puts content-hashed names under /assets; those can be cached for good.
      files.set(key, { body: await readFile(full), type, immutable: key.startsWith('/assets/') });
    }
  }
}

/**
 * The console's routes from its build's routes.json (written by its Vite config from the list its
 * shell renders). A build without one is served at `/` only: its other pages still work once
 * loaded, as the console navigates without asking the server.
 */
function routesOf(file: StaticFile | undefined, dir: string): Set<string> {
  if (!file) return new Set(['/']);
  let parsed: unknown;
  try {
    parsed = JSON.parse(file.body.toString('utf8'));
  } catch {
    throw new Error(`${dir}/routes.json is not JSON; rebuild the console`);
  }
  if (!Array.isArray(parsed) || !parsed.every((route): route is string => typeof route === 'string' && route.startsWith('/'))) {
    throw new Error(`${dir}/routes.json must list the console's paths, each starting with /; rebuild the console`);
  }
  return new Set(['/', ...parsed]);
}

export type StaticHandler = (method: string, pathname: string, res: ServerResponse) => void;

/** Loads the build once; a rebuilt console is picked up at the next start. */
export async function createStaticHandler(dir: string): Promise<StaticHandler> {
  const root = await realpath(dir);
  if (!(await stat(root)).isDirectory()) throw new Error(`${dir} is not a directory`);
  const files = new Map<string, StaticFile>();
  await collect(root, root, 0, files);
  const index = files.get('/index.html');
  if (!index) throw new Error(`${dir} has no index.html; build the console first (npm run build -w @airlock/console)`);
  const routes = routesOf(files.get('/routes.json'), dir);
  return (method, pathname, res) => {
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { ...securityHeaders, allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end('method not allowed');
      return;
    }
    let file = files.get(pathname);
    if (!file && routes.has(pathname)) file = index;
    if (!file) {
      res.writeHead(404, { ...securityHeaders, 'content-type': 'text/plain; charset=utf-8' });
      res.end('not found');
      return;
    }
    res.writeHead(200, {
      ...securityHeaders,
      'content-type': file.type,
      'content-length': String(file.body.length),
      'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    res.end(method === 'HEAD' ? undefined : file.body);
  };
}
