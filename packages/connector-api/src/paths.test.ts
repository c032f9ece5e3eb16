import { describe, expect, it } from 'vitest';
import { isSafeName, isWithin, joinInside, matchPath, normalizePath, partialName, splitGlob } from './paths.ts';

describe('isSafeName', () => {
  it.each(['report.csv', 'a b', '.hidden', 'ü.txt', '%2e%2e'])('accepts %j', (name) => {
    expect(isSafeName(name)).toBe(true);
  });
  it.each(['', '.', '..', '../x', '/etc/passwd', 'a/b', 'a\\b', 'nul\u0000byte', 'line\nbreak', 'x'.repeat(256), '．．', 'a／b', '\u2024\u2024'])(
    'refuses %j',
    (name) => {
      expect(isSafeName(name)).toBe(false);
    },
  );
});

describe('paths', () => {
  it('normalizes and refuses traversal', () => {
    expect(normalizePath('/srv//out/./a')).toBe('/srv/out/a');
    expect(() => normalizePath('/srv/out/../etc')).toThrow(/unsafe path/);
    expect(() => normalizePath('srv/out')).toThrow(/absolute/);
    expect(() => normalizePath('/srv/\u0000/x')).toThrow(/unsafe path/);
  });

  it('compares components, not prefixes', () => {
    expect(isWithin('/srv/out', '/srv/out')).toBe(true);
    expect(isWithin('/srv/out', '/srv/out/a/b')).toBe(true);
    expect(isWithin('/srv/out', '/srv/outx')).toBe(false);
    expect(isWithin('/srv/out', '/srv')).toBe(false);
    expect(() => isWithin('/srv/out', '/srv/out/../../etc')).toThrow();
  });

  it('splits a glob into its literal base', () => {
    expect(splitGlob('/exports/*.csv')).toEqual({ base: '/exports', glob: ['*.csv'] });
    expect(splitGlob('/exports/daily/report.csv')).toEqual({ base: '/exports/daily/report.csv', glob: [] });
    expect(splitGlob('/**')).toEqual({ base: '/', glob: ['**'] });
  });

  it('matches globs per component', () => {
    expect(matchPath('/exports/*.csv', '/exports/a.csv')).toBe(true);
    expect(matchPath('/exports/*.csv', '/exports/sub/a.csv')).toBe(false);
    expect(matchPath('/exports/**', '/exports/sub/a.csv')).toBe(true);
    expect(matchPath('/exports/**', '/exports')).toBe(true);
    expect(matchPath('/exports/**', '/exportsx/a.csv')).toBe(false);
    expect(matchPath('/exports/*', '/exports/.ssh')).toBe(false);
    expect(matchPath('/exports/**', '/exports/.ssh/id_rsa')).toBe(false);
    expect(matchPath('/exports/**', '/exports/a/.env')).toBe(false);
    expect(matchPath('/exports/**/.env', '/exports/a/.env')).toBe(true);
    expect(matchPath('/exports/a?.csv', '/exports/ab.csv')).toBe(true);
    expect(matchPath('/exports/a.csv', '/exports/aXcsv')).toBe(false);
  });

  it('joins only single safe names inside a root', () => {
    expect(joinInside('/srv/out', 'a.pgp')).toBe('/srv/out/a.pgp');
    for (const name of ['../a', '..', '/etc/passwd', 'a/b', '', '.']) {
      expect(() => joinInside('/srv/out', name)).toThrow();
    }
  });
});

describe('partialName', () => {
  it('is a fresh, hidden, safe name beside the final one', () => {
    const first = partialName('a.pgp');
    expect(first).toMatch(/^\.a\.pgp\.[0-9a-f]{16}\.airlock-partial$/);
    expect(partialName('a.pgp')).not.toBe(first);
    expect(isSafeName(partialName('x'.repeat(255)))).toBe(true);
    expect(partialName('x'.repeat(255))).toMatch(/^\.airlock\.[0-9a-f]{16}\.airlock-partial$/);
    expect(() => partialName('../a')).toThrow();
  });
});
