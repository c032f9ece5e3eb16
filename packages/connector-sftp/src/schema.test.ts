import { describe, expect, it } from 'vitest';
import { UserError } from '@airlock/errors';
import { sftpSource } from './source.ts';
import { fingerprintOf, fingerprintsEqual } from './fingerprint.ts';

const pin = 'SHA256:' + 'A'.repeat(43);
const valid = { host: 'sftp.example.com', hostKey: pin, username: 'export', credentialRef: 'sftp-prod', path: '/exports/*.csv' };

describe('sftp source config', () => {
  it('accepts a valid config and fills the defaults', () => {
    const parsed = sftpSource.config.parse(valid);
    expect(parsed).toEqual({ ...valid, port: 22, connectTimeoutMs: 20_000 });
  });

  it('declares claims without any I/O', () => {
    const config = sftpSource.config.parse({ ...valid, port: 2222 });
    expect(sftpSource.claims(config)).toEqual([
      { action: 'read', scheme: 'sftp', authority: 'sftp.example.com:2222', path: '/exports/*.csv', hostKey: pin },
    ]);
    expect(sftpSource.claimFor(config, { path: '/exports/a.csv', name: 'a.csv', size: 1, mtimeMs: 0 })).toEqual({
      action: 'read',
      scheme: 'sftp',
      authority: 'sftp.example.com:2222',
      path: '/exports/a.csv',
      hostKey: pin,
    });
  });

  it.each([
    ['a bad fingerprint', { hostKey: 'SHA256:short' }],
    ['an MD5 fingerprint', { hostKey: 'MD5:aa:bb:cc' }],
    ['a relative path', { path: 'exports/*.csv' }],
    ['a path with ..', { path: '/exports/../etc/*' }],
    ['a NUL in the path', { path: '/exports/\u0000/x' }],
    ['a port out of range', { port: 70_000 }],
    ['an unknown key', { tofu: true }],
    ['a host with a slash', { host: 'evil/host' }],
  ])('refuses %s', (_label, change) => {
    expect(() => sftpSource.bind({ ...valid, ...change })).toThrow(UserError);
  });

  it('normalizes redundant separators in the path', () => {
    expect(sftpSource.config.parse({ ...valid, path: '/exports//./x.csv' }).path).toBe('/exports/x.csv');
  });
});

describe('fingerprintOf', () => {
  it('is SHA256 over the key blob in unpadded base64', () => {
    const fingerprint = fingerprintOf(Buffer.from('not really a key'));
    expect(fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(fingerprintsEqual(fingerprint, fingerprintOf(Buffer.from('not really a key')))).toBe(true);
    expect(fingerprintsEqual(fingerprint, fingerprintOf(Buffer.from('another key')))).toBe(false);
    expect(fingerprintsEqual(fingerprint, 'SHA256:x')).toBe(false);
  });
});
