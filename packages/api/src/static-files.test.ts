import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStaticHandler } from './static-files.ts';

/** A raw request: the path goes on the wire exactly as given, `..` and all. */
function get(port: number, rawPath: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: rawPath, method }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('createStaticHandler', () => {
  let root: string;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'airlock-static-'));
    const dist = path.join(root, 'dist');
    await mkdir(path.join(dist, 'assets'), { recursive: true });
    await writeFile(path.join(dist, 'index.html'), '<!doctype html><title>console</title>');
    await writeFile(path.join(dist, 'routes.json'), JSON.stringify(['/', '/agents', '/runs']));
    await writeFile(path.join(dist, 'assets', 'app-1234.js'), 'console.log(1)');
    await writeFile(path.join(root, 'secret.txt'), 'outside the build');
    await symlink(path.join(root, 'secret.txt'), path.join(dist, 'link.txt'));
    const handler = await createStaticHandler(dist);
    // The pathname as sent, without the URL normalisation http.ts does: the lookup alone must hold.
    server = createServer((req, res) => handler(req.method ?? 'GET', (req.url ?? '/').split('?')[0] ?? '/', res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.close();
    await rm(root, { recursive: true, force: true });
  });

  it('serves the build with strict security headers', async () => {
    const index = await get(port, '/');
    expect(index.status).toBe(200);
    expect(index.body).toContain('<title>console</title>');
    expect(index.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(index.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
    expect(index.headers['content-security-policy']).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(index.headers['x-content-type-options']).toBe('nosniff');
    expect(index.headers['referrer-policy']).toBe('no-referrer');
    expect(index.headers['cache-control']).toBe('no-cache');
    const asset = await get(port, '/assets/app-1234.js');
    expect(asset.headers['content-type']).toMatch(/^text\/javascript/);
    expect(asset.headers['cache-control']).toMatch(/immutable/);
  });

  it('[operations:metrics] answers the console routes its build lists with index.html and every other path with 404', async () => {
    expect((await get(port, '/agents')).body).toContain('<title>console</title>');
    expect((await get(port, '/runs?run=1')).status).toBe(200);
    for (const other of ['/metrics', '/assets/missing.js', '/agents/x', '/unknown', '/api', '/index']) {
      const response = await get(port, other);
      expect(response.status, other).toBe(404);
      expect(response.body, other).not.toContain('<title>console</title>');
    }
  });

  it('never serves a file outside the build, however the path is spelled', async () => {
    for (const attempt of ['/../secret.txt', '/assets/../../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '//secret.txt', '/link.txt', '/assets/..\\..\\secret.txt']) {
      const response = await get(port, attempt);
      expect(response.body, attempt).not.toContain('outside the build');
      expect([200, 404], attempt).toContain(response.status);
    }
  });

  it('refuses methods other than GET and HEAD', async () => {
    expect((await get(port, '/', 'POST')).status).toBe(405);
    const head = await get(port, '/', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });

  it('refuses to start without a build', async () => {
    await expect(createStaticHandler(root)).rejects.toThrow(/no index.html/);
  });
});
