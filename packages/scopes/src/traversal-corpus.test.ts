/**
 * Path-traversal corpus: every payload is built to climb out of, or sidestep, a granted root.
 * For each one the grammar must refuse it, or the grant must deny it, or — if allowed — an
 * independent, maximally suspicious decoder must agree the path stays inside the root.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { schemesOf } from '@airlock/connector-api/definition';
import { explain, type Grant, parseScope as parseWith } from './index.ts';

const schemes = schemesOf([
  { id: 'sftp', version: 1, scheme: { name: 'sftp', form: 'network', defaultPort: 22 } },
  { id: 'local', version: 1, scheme: { name: 'file', form: 'path' } },
]);
const parseScope = (text: string) => parseWith(text, schemes);

const grants: Grant[] = [
  { id: 'file', tenantId: 't', subject: { type: 'agent', id: 'a' }, ...parseScope('read file:///srv/out/**') },
  { id: 'sftp', tenantId: 't', subject: { type: 'agent', id: 'a' }, ...parseScope('read sftp://files.internal:22/exports/**') },
];

const climbs = [
  '..', '%2e%2e', '%2E%2E', '.%2e', '%2e.', '%252e%252e', '%25252e%25252e', '..%2f', '%2e%2e%2f', '..%5c', '%2e%2e%5c',
  '..\\', '..%255c', '....', '....//', '..;', '%c0%ae%c0%ae', '%e0%80%ae%e0%80%ae', '%uff0e%uff0e', '．．', '..%00', '%00',
  '\u0000', '%0a..', '..%0d', '. .', '.../', '..%c0%af', '%c0%2e%c0%2e', '..\u2215', '%2e%2e%252f', '..%u2215',
];

const shapes = (root: string) => [
  (t: string) => `${root}/${t}/etc/passwd`,
  (t: string) => `${root}/a/${t}/${t}/etc/shadow`,
  (t: string) => `${root}/${t}`,
];

function payloads(scheme: 'file' | 'sftp'): string[] {
  const root = scheme === 'file' ? '/srv/out' : '/exports';
  const prefix = scheme === 'file' ? 'read file://' : 'read sftp://files.internal:22';
  const list = shapes(root).flatMap((shape) => climbs.map((t) => `${prefix}${shape(t)}`));
  const siblings = scheme === 'file'
    ? ['/srv/outx/a', '/srv/out-old/a', '/srv/ou', '/srv', '/', '/srv/out/../out/a', '/srv/out/./a', '/srv//out/a', '/SRV/out/a', '/srv/out%2fa/../../etc']
    : ['/exportsx/a', '/export/a', '/', '/exports/../exports/a', '/exports%2f..%2fetc/passwd'];
  list.push(...siblings.map((p) => `${prefix}${p}`));
  if (scheme === 'sftp') {
    list.push(
      'read sftp://files.internal:2222/exports/a',
      'read sftp://files.internal.evil.example:22/exports/a',
      'read sftp://evil@files.internal:22/exports/a',
      'read sftp://files.internal:22@evil.example/exports/a',
      'read sftp://files.internal%2eevil:22/exports/a',
      'read sftp://127.0.0.1:22/exports/a',
      'write sftp://files.internal:22/exports/a',
    );
  }
  return list;
}

/** Decodes until nothing changes, treats backslashes and fullwidth dots as what a lax system might, then resolves. */
function suspiciousResolve(pathText: string): string {
  let text = pathText;
  for (let i = 0; i < 5; i++) {
    let next: string;
    try {
      next = decodeURIComponent(text);
    } catch {
      next = unescape(text);
    }
    if (next === text) break;
    text = next;
  }
  text = text.replace(/\\/g, '/').replace(/\u2215/g, '/').replace(/．/g, '.').split('\u0000')[0] ?? '';
  return path.posix.resolve('/', text);
}

function inside(root: string, resolved: string): boolean {
  const rootParts = root.split('/').filter(Boolean);
  const parts = resolved.split('/').filter(Boolean);
  return rootParts.every((part, i) => parts[i] === part);
}

describe('path-traversal corpus', () => {
  const corpus = [...payloads('file'), ...payloads('sftp')];

  it('has at least 100 payloads', () => {
    expect(new Set(corpus).size).toBeGreaterThanOrEqual(100);
  });

  it('lets none of them escape', () => {
    const escapes: string[] = [];
    let refused = 0;
    let denied = 0;
    for (const payload of corpus) {
      let request;
      try {
        request = parseScope(payload);
      } catch {
        refused += 1;
        continue;
      }
      const verdict = explain(grants, { tenantId: 't', agentId: 'a', ...request });
      if (!verdict.allowed) {
        denied += 1;
        continue;
      }
      const pathText = payload.replace(/^read (file:\/\/|sftp:\/\/files\.internal:22)/, '');
      const root = verdict.grant.id === 'file' ? '/srv/out' : '/exports';
      if (!inside(root, suspiciousResolve(pathText))) escapes.push(payload);
    }
    expect(escapes).toEqual([]);
    expect(refused + denied).toBeGreaterThan(corpus.length / 2);
  });
});
