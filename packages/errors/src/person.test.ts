import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { asNetworkError, fetchNamingFailures, forPerson, NotAllowedError, PolicyViolationError, UserError } from './index.ts';

const withCode = (code: string) => Object.assign(new Error(`x ${code}`), { code });
const fetchFailed = (cause: unknown) => new TypeError('fetch failed', { cause });

describe('errors a person reads', () => {
  it('names the URL and the cause of each kind of network failure', () => {
    const cases: Array<[unknown, string]> = [
      [fetchFailed(withCode('ECONNREFUSED')), 'network-refused'],
      [fetchFailed(withCode('ENOTFOUND')), 'network-dns'],
      [fetchFailed(withCode('EAI_AGAIN')), 'network-dns'],
      [fetchFailed(withCode('CERT_HAS_EXPIRED')), 'network-tls'],
      [fetchFailed(withCode('ERR_TLS_CERT_ALTNAME_INVALID')), 'network-tls'],
      [fetchFailed(withCode('DEPTH_ZERO_SELF_SIGNED_CERT')), 'network-tls'],
      [fetchFailed(withCode('UND_ERR_CONNECT_TIMEOUT')), 'network-timeout'],
      [fetchFailed(new AggregateError([withCode('ECONNREFUSED'), withCode('ECONNREFUSED')])), 'network-refused'],
      [Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' }), 'network-timeout'],
      [fetchFailed(new Error('Proxy response (407) !== 200 when HTTP Tunneling')), 'network-proxy-auth'],
      [fetchFailed(new Error('Proxy response (403) !== 200 when HTTP Tunneling')), 'network-proxy'],
      [fetchFailed(new Error('unexpected redirect')), 'network-redirect'],
    ];
    for (const [raw, code] of cases) {
      const shown = forPerson(asNetworkError('https://cp.example:8443/trpc', raw));
      expect(shown.code).toBe(code);
      expect(shown.message).toMatch(/^cannot reach https:\/\/cp\.example:8443\/trpc: /);
      expect(shown.exitCode).toBe(1);
    }
  });

  it('leaves answers and bugs alone: only transport failures become network errors', () => {
    const answered = Object.assign(new Error('no run with that id'), { data: { errorClass: 'not-found' } });
    expect(asNetworkError('https://x', answered)).toBe(answered);
    expect(forPerson(answered)).toEqual({ code: 'not-found', message: 'no run with that id', exitCode: 1 });
  });

  it('finds the network failure a client wrapped, and a real refused connection through fetch', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    await new Promise((resolve) => server.close(resolve));
    const error: unknown = await fetchNamingFailures()(`http://127.0.0.1:${port}/trpc/runs.get?input=x`).catch((e: unknown) => e);
    const wrapped = Object.assign(new Error((error as Error).message), { name: 'TRPCClientError', cause: error });
    expect(forPerson(wrapped)).toEqual({
      code: 'network-refused',
      message: `cannot reach http://127.0.0.1:${port}/trpc/runs.get: connection refused (is the server running, and is this the right port?) (ECONNREFUSED)`,
      exitCode: 1,
    });
  });

  it('exits 3 when refused by policy or permission, 2 for usage, and never shows a class name', () => {
    expect(forPerson(new NotAllowedError('role operator lacks integrations:write'))).toEqual({ code: 'not-allowed', message: 'role operator lacks integrations:write', exitCode: 3 });
    expect(forPerson(new PolicyViolationError('policy refused read file:///x')).exitCode).toBe(3);
    expect(forPerson(Object.assign(new Error('no key'), { data: { errorClass: 'authentication' } })).exitCode).toBe(3);
    expect(forPerson(Object.assign(new Error("error: unknown option '--nope'"), { code: 'commander.unknownOption' }))).toEqual({ code: 'usage', message: "unknown option '--nope'", exitCode: 2 });
    expect(forPerson(new UserError('bad')).message).toBe('bad');
    expect(forPerson(new Error('TRPCClientError: wrapped twice')).message).toBe('wrapped twice');
    // zod's error, by shape: this package depends on no schema library.
    const zod = Object.assign(new Error('[{"path":["a"]}]'), { name: 'ZodError', issues: [{ path: ['a'], message: 'expected number' }] });
    expect(forPerson(zod)).toEqual({ code: 'user', message: 'invalid input: a: expected number', exitCode: 1 });
  });
});
