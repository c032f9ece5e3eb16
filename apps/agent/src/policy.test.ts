import { describe, expect, it } from 'vitest';
import type { ResourceClaim } from '@airlock/connector-api';
import { LocalPolicy, PolicyRefusal } from './policy.ts';

const hostKey = `SHA256:${'A'.repeat(43)}`;
const policy = LocalPolicy.parse(`
sources:
  sftp:
    - host: sftp.internal
      port: 2222
      hostKey: "${hostKey}"
      paths: ["/exports/**", "/reports/*.csv"]
destinations:
  local:
    - root: /srv/out
  sftp:
    - host: partner.example
      hostKey: "${hostKey}"
      roots: ["/incoming"]
`);

const sftp = (path: string, overrides: Partial<ResourceClaim> = {}): ResourceClaim => ({
  action: 'read',
  scheme: 'sftp',
  authority: 'sftp.internal:2222',
  hostKey,
  path,
  ...overrides,
});

function refusal(fn: () => void): PolicyRefusal | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof PolicyRefusal) return error;
    throw error;
  }
  return undefined;
}

describe('local policy', () => {
  it('allows sources and files inside the listed paths', () => {
    expect(refusal(() => policy.checkSource([sftp('/exports/*.csv')]))).toBeUndefined();
    expect(refusal(() => policy.checkSource([sftp('/exports/daily/**')]))).toBeUndefined();
    expect(refusal(() => policy.checkFile(sftp('/exports/daily/a.csv')))).toBeUndefined();
    expect(refusal(() => policy.checkFile(sftp('/reports/q1.csv')))).toBeUndefined();
  });

  it.each([
    ['another host', sftp('/exports/*.csv', { authority: 'evil.example:2222' })],
    ['another port', sftp('/exports/*.csv', { authority: 'sftp.internal:22' })],
    ['another host key', sftp('/exports/*.csv', { hostKey: `SHA256:${'B'.repeat(43)}` })],
    ['a sibling prefix', sftp('/exportsx/*.csv')],
    ['a parent directory', sftp('/*')],
    ['the root', sftp('/**')],
    ['a local path', { action: 'read', scheme: 'file', path: '/exports/a.csv' } satisfies ResourceClaim],
  ])('refuses %s before connecting', (_what, claim) => {
    expect(refusal(() => policy.checkSource([claim]))?.kind).toBe('source');
  });

  it('refuses files that do not match a pattern', () => {
    expect(refusal(() => policy.checkFile(sftp('/reports/q1.txt')))?.kind).toBe('file');
    expect(refusal(() => policy.checkFile(sftp('/reports/sub/q1.csv')))?.kind).toBe('file');
    expect(refusal(() => policy.checkFile(sftp('/exports/.ssh/id_rsa')))?.kind).toBe('file');
    expect(() => policy.checkFile(sftp('/exports/../etc/passwd'))).toThrow();
  });

  it('allows destinations only under a root, by component', () => {
    expect(refusal(() => policy.checkDestination([{ action: 'write', scheme: 'file', path: '/srv/out/partner' }]))).toBeUndefined();
    expect(refusal(() => policy.checkDestination([{ action: 'write', scheme: 'file', path: '/srv/outx' }]))?.kind).toBe('destination');
    expect(refusal(() => policy.checkDestination([{ action: 'write', scheme: 'file', path: '/srv' }]))?.kind).toBe('destination');
    expect(refusal(() => policy.checkDestination([{ action: 'write', scheme: 'sftp', authority: 'x:22', path: '/srv/out' }]))?.kind).toBe('destination');
    expect(refusal(() => policy.checkDestination([{ action: 'write', scheme: 'sftp', authority: 'partner.example:22', hostKey, path: '/incoming/acme' }]))).toBeUndefined();
    expect(refusal(() => policy.checkDestination([{ action: 'write', scheme: 'sftp', authority: 'partner.example:22', hostKey, path: '/incomingx' }]))?.kind).toBe('destination');
    expect(refusal(() => policy.checkDestination([{ action: 'write', scheme: 'sftp', authority: 'partner.example:22', hostKey: `SHA256:${'C'.repeat(43)}`, path: '/incoming' }]))?.kind).toBe('destination');
    expect(refusal(() => policy.checkDestination([{ action: 'write', scheme: 'sftp', authority: 'partner.example:2222', hostKey, path: '/incoming' }]))?.kind).toBe('destination');
  });

  it('explains every problem in a bad policy file', () => {
    expect(() => LocalPolicy.parse('sources:\n  sftp:\n    - host: h\n      paths: ["relative"]\n')).toThrow(/hostKey.*\n?.*|paths/);
    expect(() => LocalPolicy.parse('destinations: {local: [{root: /a}], ftp: []}')).toThrow(/ftp|Unrecognized/i);
    expect(() => LocalPolicy.parse(': : :')).toThrow(/YAML/);
  });

  it('is empty, and so refuses everything, by default', () => {
    const empty = LocalPolicy.parse('');
    expect(refusal(() => empty.checkSource([sftp('/exports/*.csv')]))?.kind).toBe('source');
    expect(refusal(() => empty.checkDestination([{ action: 'write', scheme: 'file', path: '/srv/out' }]))?.kind).toBe('destination');
  });
});

describe('post-delivery actions in the local policy', () => {
  const withRights = LocalPolicy.parse(`
sources:
  sftp:
    - host: sftp.internal
      port: 2222
      hostKey: "${hostKey}"
      paths: ["/exports/**"]
      allowDelete: true
      allowArchiveTo: ["/done"]
    - host: sftp.internal
      port: 2222
      hostKey: "${hostKey}"
      paths: ["/reports/*.csv"]
`);
  const archive = (archiveDirectory: string) => ({ action: 'archive' as const, archiveDirectory });

  it('defaults to neither delete nor archive', () => {
    expect(refusal(() => policy.checkSource([sftp('/exports/*.csv')], { action: 'delete' }))?.kind).toBe('source');
    expect(refusal(() => policy.checkSource([sftp('/exports/*.csv')], archive('/exports')))?.kind).toBe('source');
    expect(refusal(() => policy.checkSource([sftp('/exports/*.csv')], { action: 'keep' }))).toBeUndefined();
  });

  it('allows them only for the entry that grants them, and archives only below the allowed directories', () => {
    expect(refusal(() => withRights.checkSource([sftp('/exports/*.csv')], { action: 'delete' }))).toBeUndefined();
    expect(refusal(() => withRights.checkSource([sftp('/exports/*.csv')], archive('/done/2026')))).toBeUndefined();
    expect(refusal(() => withRights.checkSource([sftp('/exports/*.csv')], archive('/donex')))?.kind).toBe('source');
    expect(refusal(() => withRights.checkSource([sftp('/exports/*.csv')], archive('/')))?.kind).toBe('source');
    expect(refusal(() => withRights.checkSource([sftp('/reports/*.csv')], { action: 'delete' }))?.kind).toBe('source');
    expect(refusal(() => withRights.checkFile(sftp('/exports/a.csv'), { action: 'delete' }))).toBeUndefined();
    expect(refusal(() => withRights.checkFile(sftp('/reports/a.csv'), { action: 'delete' }))?.kind).toBe('file');
    expect(refusal(() => withRights.checkFile(sftp('/reports/a.csv'), { action: 'keep' }))).toBeUndefined();
  });

  it('refuses unknown or malformed rights', () => {
    expect(() => LocalPolicy.parse('sources:\n  local:\n    - paths: ["/in/**"]\n      allowArchiveTo: ["relative"]\n')).toThrow(/allowArchiveTo/);
    expect(() => LocalPolicy.parse('sources:\n  local:\n    - paths: ["/in/**"]\n      allowShred: true\n')).toThrow();
  });
});

describe('recipient pins', () => {
  const partner = 'A'.repeat(40);
  const archive = 'B'.repeat(40);
  const pinned = LocalPolicy.parse(`
recipients: ["${partner.toLowerCase().replace(/(.{4})/g, '$1 ')}"]
destinations:
  local:
    - root: /srv/out
    - root: /srv/archive
      recipients: ["${archive}"]
`);
  const local = (path: string): ResourceClaim => ({ action: 'write', scheme: 'file', path });

  it('allows a key pinned globally, in gpg spacing and case', () => {
    expect(refusal(() => pinned.checkRecipients([partner], [local('/srv/out/x')]))).toBeUndefined();
  });

  it('allows a per-destination key only for that destination', () => {
    expect(refusal(() => pinned.checkRecipients([partner, archive], [local('/srv/archive/x')]))).toBeUndefined();
    expect(refusal(() => pinned.checkRecipients([archive], [local('/srv/out/x')]))?.kind).toBe('recipient');
  });

  it('refuses any key that is not pinned, and every key when nothing is pinned', () => {
    expect(refusal(() => pinned.checkRecipients([partner, 'C'.repeat(40)], [local('/srv/out/x')]))?.message).toContain('C'.repeat(40));
    expect(refusal(() => policy.checkRecipients([partner], [local('/srv/out/x')]))?.kind).toBe('recipient');
  });
});
