import { describe, expect, it } from 'vitest';
import { schemesOf } from '@airlock/connector-api/definition';
import { covers, explain, formatScope, type Grant, parseResource, parseScope as parseWith, pathCovers, ScopeSyntaxError, scopesOfClaims } from './index.ts';

/** What a registry of these connectors declares; the grammar knows no scheme of its own. */
const schemes = schemesOf([
  { id: 'sftp', version: 1, scheme: { name: 'sftp', form: 'network', defaultPort: 22 } },
  { id: 'local', version: 1, scheme: { name: 'file', form: 'path' } },
  { id: 'script', version: 1, scheme: { name: 'script', form: 'name' } },
  { id: 'objects', version: 1, scheme: { name: 's3', form: 'network', defaultPort: 443 } },
]);
const parseScope = (text: string) => parseWith(text, schemes);

describe('scope grammar', () => {
  it.each([
    ['read sftp://Files.Example.com/exports/**', 'read sftp://files.example.com:22/exports/**'],
    ['read sftp://10.0.0.5:2222/exports/*.csv', 'read sftp://10.0.0.5:2222/exports/*.csv'],
    ['write file:///srv/out/', 'write file:///srv/out'],
    ['list file:///', 'list file:///'],
    ['execute script:nightly-export', 'execute script:nightly-export'],
    ['read file:///data/a%20b.csv', 'read file:///data/a%20b.csv'],
    ['delete sftp://[::1]:22/in/*', 'delete sftp://[::1]:22/in/*'],
  ])('parses %j canonically', (text, canonical) => {
    expect(formatScope(parseScope(text))).toBe(canonical);
    expect(formatScope(parseScope(canonical))).toBe(canonical);
  });

  it.each([
    ['grant sftp://h/x', /unknown action/],
    ['read ftp://h/x', /unknown resource/],
    ['read sftp://h:0/x', /bad port/],
    ['read sftp://h:70000/x', /bad port/],
    ['read sftp://bad_host/x', /bad host/],
    ['read sftp://h', /expected sftp:\/\/host:port\/path/],
    ['read file://srv/out', /expected file:\/\/\/path/],
    ['read gopher://h/x', /unknown resource/],
    ['read s3:///bucket', /expected s3:\/\/host:port\/path/],
    ['read file:///srv//out', /empty path component/],
    ['read file:///srv/./out', /unsafe path component/],
    ['execute script:../../bin/sh', /bad script name/],
    ['execute script:Nightly', /bad script name/],
    ['read  file:///a', /expected "<action> <resource>"/],
  ])('refuses %j', (text, message) => {
    expect(() => parseScope(text)).toThrow(ScopeSyntaxError);
    expect(() => parseScope(text)).toThrow(message);
  });
});

describe('registered schemes', () => {
  it('parses a scheme the registry declares, with its default port, and keeps schemes apart', () => {
    expect(formatScope(parseScope('write s3://Minio.Internal/backups/**'))).toBe('write s3://minio.internal:443/backups/**');
    expect(covers(parseScope('write s3://m:9000/backups/**'), parseScope('write s3://m:9000/backups/x'))).toBe(true);
    expect(covers(parseScope('write s3://m:22/backups/**'), parseScope('write sftp://m:22/backups/x'))).toBe(false);
    expect(() => parseWith('write s3://m/backups', new Map())).toThrow(/unknown resource/);
  });

  it('refuses two definitions that spell one scheme differently', () => {
    expect(() =>
      schemesOf([
        { id: 'a', version: 1, scheme: { name: 'x', form: 'network', defaultPort: 1 } },
        { id: 'b', version: 1, scheme: { name: 'x', form: 'path' } },
      ]),
    ).toThrow(/already registered/);
    expect(() => schemesOf([{ id: 'a', version: 1, scheme: { name: 'Bad', form: 'path' } }])).toThrow(/bad scheme name/);
  });

  it('turns claims into scopes through the scheme: network, path and name forms', () => {
    const scopes = scopesOfClaims(
      [
        { action: 'read', scheme: 'sftp', authority: 'files.example:2222', path: '/exports/*.csv', hostKey: 'SHA256:x' },
        { action: 'execute', scheme: 'script', path: '/nightly' },
        { action: 'write', scheme: 's3', authority: '::1:9000', path: '/bucket/in' },
      ],
      schemes,
    );
    expect(scopes.map(formatScope)).toEqual(['read sftp://files.example:2222/exports/*.csv', 'execute script:nightly', 'write s3://[::1]:9000/bucket/in']);
    expect(scopesOfClaims([{ action: 'write', scheme: 'file', path: '/srv/out' }], schemes, { below: true }).map(formatScope)).toEqual(['write file:///srv/out/**']);
    expect(() => scopesOfClaims([{ action: 'read', scheme: 'gopher', path: '/x' }], schemes)).toThrow(/not registered/);
    expect(() => scopesOfClaims([{ action: 'read', scheme: 'sftp', path: '/x' }], schemes)).toThrow(/names no server/);
    expect(() => scopesOfClaims([{ action: 'read', scheme: 'file', path: '/srv/../etc' }], schemes)).toThrow();
  });
});

describe('coverage', () => {
  it.each([
    ['/exports/**', '/exports/a.csv', true],
    ['/exports/**', '/exports/deep/er/a.csv', true],
    ['/exports/**', '/exports/*.csv', true],
    ['/exports/**', '/exports/**', true],
    ['/exports/**', '/exports', true],
    ['/exports/*.csv', '/exports/a.csv', true],
    ['/exports/*.csv', '/exports/*.csv', true],
    ['/exports/*.csv', '/exports/*', false],
    ['/exports/*.csv', '/exports/**', false],
    ['/exports/*', '/exports/*.csv', true],
    ['/exports/*', '/exports/sub/a.csv', false],
    ['/exports/**', '/exports/.ssh/id_rsa', false],
    ['/exports/**', '/exports/.*', false],
    ['/exports/.well-known/*', '/exports/.well-known/x', true],
    ['/exports', '/exports/a', false],
    ['/exports/a?.csv', '/exports/ab.csv', true],
    ['/exports/a?.csv', '/exports/a?.csv', true],
    ['/exports/a?.csv', '/exports/a*.csv', false],
    ['/**', '/anything/at/all', true],
  ])('%s covers %s: %s', (grant, request, expected) => {
    const g = parseResource(`file://${grant}`, schemes);
    const r = parseResource(`file://${request}`, schemes);
    expect(g.form === 'path' && r.form === 'path' && pathCovers(g.path, r.path)).toBe(expected);
  });

  it('needs the same action, scheme, host and port', () => {
    const grant = parseScope('read sftp://h:22/exports/**');
    expect(covers(grant, parseScope('read sftp://h:22/exports/a'))).toBe(true);
    expect(covers(grant, parseScope('write sftp://h:22/exports/a'))).toBe(false);
    expect(covers(grant, parseScope('read sftp://h:2222/exports/a'))).toBe(false);
    expect(covers(grant, parseScope('read sftp://h2:22/exports/a'))).toBe(false);
    expect(covers(grant, parseScope('read file:///exports/a'))).toBe(false);
    expect(covers(parseScope('execute script:a'), parseScope('execute script:ab'))).toBe(false);
  });
});

describe('explain', () => {
  const base = { tenantId: 't1' };
  const grants: Grant[] = [
    { ...base, id: 'g1', subject: { type: 'agent', id: 'a1' }, ...parseScope('read sftp://h:22/exports/**') },
    { ...base, id: 'g2', subject: { type: 'group', id: 'dmz' }, ...parseScope('write file:///srv/out/**') },
    { ...base, id: 'g3', subject: { type: 'agent', id: 'a1' }, ...parseScope('execute script:nightly'), expiresAt: new Date('2026-01-01T00:00:00Z') },
    { tenantId: 't2', id: 'g4', subject: { type: 'agent', id: 'a1' }, ...parseScope('delete sftp://h:22/exports/**') },
  ];
  const now = new Date('2026-06-01T00:00:00Z');
  const ask = (text: string, extra: { tenantId?: string; groups?: string[] } = {}) =>
    explain(grants, { tenantId: 't1', agentId: 'a1', ...extra, ...parseScope(text) }, now);

  it('allows with the deciding grant', () => {
    expect(ask('read sftp://h:22/exports/x.csv')).toMatchObject({ allowed: true, grant: { id: 'g1' } });
    expect(ask('write file:///srv/out/p/x.pgp', { groups: ['dmz'] })).toMatchObject({ allowed: true, grant: { id: 'g2' } });
  });

  it('denies by default and says why', () => {
    expect(ask('write file:///srv/out/x.pgp')).toMatchObject({ allowed: false, reason: expect.stringMatching(/no write grant/) });
    expect(ask('read sftp://h:22/imports/x')).toMatchObject({ allowed: false, reason: expect.stringMatching(/not covered by any of 1 read/) });
    expect(ask('execute script:nightly')).toMatchObject({ allowed: false, reason: expect.stringMatching(/expired/) });
    expect(ask('delete sftp://h:22/exports/x')).toMatchObject({ allowed: false });
    expect(ask('read sftp://h:22/exports/x', { tenantId: 't2' })).toMatchObject({ allowed: false });
  });
});
