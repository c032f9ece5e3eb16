import { describe, expect, it } from 'vitest';
import { checkPasswordPolicy, DEFAULT_SCRYPT, hashPassword, needsRehash, verifyPassword } from './passwords.ts';
import { csrfRefusal, csrfTokenFor, sessionTokenOf } from './sessions.ts';

const cheap = { N: 2 ** 10, r: 8, p: 1 };

describe('password hashes', () => {
  it('are self-describing, salted, and verify only the right password', async () => {
    const a = await hashPassword('correct horse battery', cheap);
    const b = await hashPassword('correct horse battery', cheap);
    expect(a).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse battery', a)).toBe(true);
    expect(await verifyPassword('correct horse batterY', a)).toBe(false);
    // The same text in another Unicode form is the same password.
    const composed = await hashPassword('caf\u00e9 au lait, bitte', cheap);
    expect(await verifyPassword('cafe\u0301 au lait, bitte', composed)).toBe(true);
  });

  it('refuses stored hashes that are malformed or ask for absurd work', async () => {
    const good = await hashPassword('correct horse battery', cheap);
    const parts = good.split('$');
    const withN = (n: string) => [parts[0], n, ...parts.slice(2)].join('$');
    for (const bad of ['', 'bcrypt$x', withN('1000'), withN(String(2 ** 24)), good.replace(/\$[^$]+$/, '$AAAA')]) {
      expect(await verifyPassword('correct horse battery', bad)).toBe(false);
    }
  });

  it('ask for a rehash when cheaper than the current cost', async () => {
    const old = await hashPassword('correct horse battery', cheap);
    expect(needsRehash(old, DEFAULT_SCRYPT)).toBe(true);
    expect(needsRehash(old, cheap)).toBe(false);
  });

  it('follow the policy: 12 to 1024 characters', () => {
    expect(() => checkPasswordPolicy('eleven chars')).not.toThrow();
    expect(() => checkPasswordPolicy('only eleven')).toThrow(/at least 12/);
    expect(() => checkPasswordPolicy('x'.repeat(1025))).toThrow(/at most 1024/);
  });
});

describe('session cookie and CSRF checks', () => {
  const token = 'A'.repeat(43);
  const facts = (headers: Record<string, string>) => ({ method: 'POST', pathAndQuery: '/trpc/x', headers: new Headers(headers), body: new Uint8Array(), sourceIp: null });

  it('reads the token from among other cookies and ignores malformed ones', () => {
    expect(sessionTokenOf(new Headers({ cookie: `a=1; airlock_session=${token}; b=2` }), false)).toBe(token);
    expect(sessionTokenOf(new Headers({ cookie: 'airlock_session=short' }), false)).toBeNull();
    expect(sessionTokenOf(new Headers({ cookie: `xairlock_session=${token}` }), false)).toBeNull();
    expect(sessionTokenOf(new Headers(), false)).toBeNull();
  });

  it('accepts the token from the same origin and refuses everything else', () => {
    const csrf = csrfTokenFor(token);
    expect(csrfRefusal(facts({ host: 'cp:7443', origin: 'https://cp:7443', 'x-airlock-csrf': csrf }), token)).toBeNull();
    expect(csrfRefusal(facts({ host: 'cp:7443', 'x-airlock-csrf': csrf }), token)).toBeNull();
    expect(csrfRefusal(facts({ host: 'cp:7443', origin: 'https://cp.evil:7443', 'x-airlock-csrf': csrf }), token)).toBe('foreign-origin');
    expect(csrfRefusal(facts({ host: 'cp:7443', origin: 'not a url', 'x-airlock-csrf': csrf }), token)).toBe('foreign-origin');
    expect(csrfRefusal(facts({ host: 'cp:7443' }), token)).toBe('missing-csrf-token');
    expect(csrfRefusal(facts({ host: 'cp:7443', 'x-airlock-csrf': csrfTokenFor('B'.repeat(43)) }), token)).toBe('wrong-csrf-token');
    expect(csrfRefusal(facts({ host: 'cp:7443', 'x-airlock-csrf': 'short' }), token)).toBe('wrong-csrf-token');
  });
});
