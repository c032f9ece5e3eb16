import { describe, expect, it } from 'vitest';
import { UserError } from '@airlock/errors';
import type { IntegrationSpec } from '@airlock/protocol';
import { formatScope } from '@airlock/scopes';
import { requiredScopes } from './required-scopes.ts';

type Parts = Pick<IntegrationSpec, 'source' | 'destination' | 'afterDelivery'>;

const hostKey = `SHA256:${'A'.repeat(43)}`;
const login = { hostKey, username: 'u', credentialRef: 'c' };
const sftpSource = { connector: 'sftp@1', config: { host: 'Files.Example.com', port: 2222, ...login, path: '/exports/*.csv' } };
const localDestination = { connector: 'local@1', config: { directory: '/srv/out' } };

function scopes(spec: Parts): string[] {
  return requiredScopes(spec).map(formatScope);
}

describe('requiredScopes', () => {
  it('reads an SFTP source and writes under a local destination directory', () => {
    expect(scopes({ source: sftpSource, destination: localDestination })).toEqual([
      'read sftp://files.example.com:2222/exports/*.csv',
      'write file:///srv/out/**',
    ]);
  });

  it('defaults the SFTP port to 22 and maps an SFTP destination', () => {
    const source = { connector: 'sftp@1', config: { host: '10.0.0.5', ...login, path: '/a/b.csv' } };
    const destination = { connector: 'sftp@1', config: { host: 'partner.example.com', port: 22, ...login, directory: '/incoming' } };
    expect(scopes({ source, destination })).toEqual(['read sftp://10.0.0.5:22/a/b.csv', 'write sftp://partner.example.com:22/incoming/**']);
  });

  it('maps local and script sources', () => {
    expect(scopes({ source: { connector: 'local@1', config: { path: '/srv/in/**/*.json' } }, destination: localDestination })[0]).toBe(
      'read file:///srv/in/**/*.json',
    );
    expect(scopes({ source: { connector: 'script@1', config: { name: 'erp-nightly', params: {} } }, destination: localDestination })[0]).toBe(
      'execute script:erp-nightly',
    );
  });

  it('adds delete of the source, or write under the archive directory on the same server', () => {
    expect(scopes({ source: sftpSource, destination: localDestination, afterDelivery: { action: 'delete' } })).toContain(
      'delete sftp://files.example.com:2222/exports/*.csv',
    );
    const archived = scopes({
      source: { connector: 'local@1', config: { path: '/srv/in/*.csv' } },
      destination: localDestination,
      afterDelivery: { action: 'archive', archiveDirectory: '/srv/done' },
    });
    expect(archived).toEqual(['read file:///srv/in/*.csv', 'write file:///srv/out/**', 'write file:///srv/done/**']);
    expect(scopes({ source: sftpSource, destination: localDestination, afterDelivery: { action: 'archive', archiveDirectory: '/done' } })).toContain(
      'write sftp://files.example.com:2222/done/**',
    );
    expect(scopes({ source: sftpSource, destination: localDestination, afterDelivery: { action: 'keep' } })).toHaveLength(2);
  });

  it('deduplicates: archiving into the delivery directory needs its write once', () => {
    const spec = { source: { connector: 'local@1', config: { path: '/srv/out/in.csv' } }, destination: localDestination };
    expect(scopes({ ...spec, afterDelivery: { action: 'archive', archiveDirectory: '/srv/out' } })).toEqual([
      'read file:///srv/out/in.csv',
      'write file:///srv/out/**',
    ]);
  });

  it('refuses a connector it has no mapping for', () => {
    expect(() => requiredScopes({ source: { connector: 'ftp@1', config: {} }, destination: localDestination })).toThrow(
      new UserError('no scope mapping for connector ftp@1'),
    );
    expect(() => requiredScopes({ source: sftpSource, destination: { connector: 'sftp@2', config: {} } })).toThrow(/no scope mapping for connector sftp@2/);
    // A name that is a property of every object is not a mapping either.
    expect(() => requiredScopes({ source: { connector: 'constructor@1', config: {} }, destination: localDestination })).toThrow(UserError);
  });

  it('refuses paths that climb out and configs that name no resource', () => {
    const climbing = { connector: 'local@1', config: { path: '/srv/in/../../etc/passwd' } };
    expect(() => requiredScopes({ source: climbing, destination: localDestination })).toThrow(/source\.config\.path: must be an absolute path without `\.\.`/);
    expect(() => requiredScopes({ source: sftpSource, destination: { connector: 'local@1', config: { directory: '/srv/out/..' } } })).toThrow(/destination\.config\.directory: /);
    expect(() => requiredScopes({ source: { connector: 'local@1', config: {} }, destination: localDestination })).toThrow(/invalid local@1 config: source\.config\.path: /);
    expect(() => requiredScopes({ source: { connector: 'sftp@1', config: { host: 'bad host!', ...login, path: '/x' } }, destination: localDestination })).toThrow(UserError);
    expect(() => requiredScopes({ source: { connector: 'script@1', config: { name: 'x' } }, destination: localDestination, afterDelivery: { action: 'delete' } })).toThrow(
      /needs a file source/,
    );
  });

  it('[integrity #3] checks each config with its connector\'s own schema: a misspelled key is refused, never dropped', () => {
    const { credentialRef, ...rest } = sftpSource.config;
    const typo = { connector: 'sftp@1', config: { ...rest, credentialsRef: credentialRef } };
    expect(() => requiredScopes({ source: typo, destination: localDestination })).toThrow(UserError);
    expect(() => requiredScopes({ source: typo, destination: localDestination })).toThrow(/source\.config: Unrecognized key: "credentialsRef"/);
    // Problems in both configs are reported together, each under its own path.
    const both = () => requiredScopes({ source: typo, destination: { connector: 'local@1', config: { directory: 'relative' } } });
    expect(both).toThrow(/source\.config\.credentialRef: .*destination\.config\.directory: /);
    expect(() => requiredScopes({ source: { connector: 'script@1', config: { name: 'x', outputName: '../x' } }, destination: localDestination })).toThrow(
      /source\.config\.outputName: /,
    );
  });

  it('keeps names with spaces and percent signs literal in the canonical text', () => {
    const [read] = scopes({ source: { connector: 'local@1', config: { path: '/srv/in/a b%41.csv' } }, destination: localDestination });
    expect(read).toBe('read file:///srv/in/a%20b%2541.csv');
  });
});
