import { describe as suite, expect, it } from 'vitest';
import { asOperational, classify, ConflictError, describe, OperationalError, PolicyViolationError, UserError } from './index.ts';

suite('errors', () => {
  it('sets name and keeps cause', () => {
    const cause = new Error('socket closed');
    const error = new OperationalError('SFTP read timed out', { cause });
    expect(error.name).toBe('OperationalError');
    expect(error.cause).toBe(cause);
    expect(error.retryable).toBe(true);
    expect(new UserError('bad').retryable).toBe(false);
  });

  it('classifies known errors and treats anything else as a bug', () => {
    expect(classify(new PolicyViolationError('outside policy'))).toBe('policy-violation');
    expect(classify(new ConflictError('exists'))).toBe('conflict');
    expect(classify(new TypeError('x is undefined'))).toBe('unexpected');
    expect(classify('thrown string')).toBe('unexpected');
  });

  it('describes errors on one line', () => {
    expect(describe(new UserError('missing field host'))).toBe('UserError: missing field host');
    expect(describe(42)).toBe('42');
  });

  it('turns transient system errors into retryable operational errors, and nothing else', () => {
    const full = Object.assign(new Error('no space left on device, write'), { code: 'ENOSPC' });
    const wrapped = asOperational(full);
    expect(wrapped).toBeInstanceOf(OperationalError);
    expect(classify(wrapped)).toBe('operational');
    expect((wrapped as Error).cause).toBe(full);
    const missing = Object.assign(new Error('no such file'), { code: 'ENOENT' });
    expect(asOperational(missing)).toBe(missing);
    const user = new UserError('bad');
    expect(asOperational(user)).toBe(user);
  });
});
