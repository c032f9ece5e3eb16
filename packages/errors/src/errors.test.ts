import { describe as suite, expect, it } from 'vitest';
import { classify, ConflictError, describe, OperationalError, PolicyViolationError, UserError } from './index.ts';

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
});
