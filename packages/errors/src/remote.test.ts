import { describe, expect, it } from 'vitest';
import { ConflictError, errorOfClass, fromRemote, OperationalError, remoteErrorClass, UserError } from './index.ts';

/** The shape of a tRPC client error: a message and the server's `data`. */
const answered = (data: unknown) => Object.assign(new Error('the server said so'), { data });

describe('errors across the wire', () => {
  it('reads the class the server sent, whatever the status', () => {
    expect(remoteErrorClass(answered({ errorClass: 'policy-violation', httpStatus: 403 }))).toBe('policy-violation');
    expect(remoteErrorClass(answered({ errorClass: 'conflict', httpStatus: 409 }))).toBe('conflict');
  });

  it('falls back to the status only when no class came along', () => {
    expect(remoteErrorClass(answered({ httpStatus: 401 }))).toBe('authentication');
    expect(remoteErrorClass(answered({ httpStatus: 429 }))).toBe('operational');
    expect(remoteErrorClass(answered({ httpStatus: 400 }))).toBe('user');
    expect(remoteErrorClass(answered({ errorClass: 'made-up', httpStatus: 500 }))).toBe('unexpected');
  });

  it('says nothing of errors no server answered', () => {
    expect(remoteErrorClass(new Error('fetch failed'))).toBeUndefined();
    expect(remoteErrorClass('a string')).toBeUndefined();
  });

  it('rebuilds the class with the server message and keeps the original as cause', () => {
    const original = answered({ errorClass: 'conflict' });
    const rebuilt = fromRemote(original);
    expect(rebuilt).toBeInstanceOf(ConflictError);
    expect((rebuilt as Error).message).toBe('the server said so');
    expect((rebuilt as Error).cause).toBe(original);
    const local = new Error('socket hang up');
    expect(fromRemote(local)).toBe(local);
    expect(errorOfClass('operational', 'x')).toBeInstanceOf(OperationalError);
    expect(errorOfClass('user', 'x')).toBeInstanceOf(UserError);
  });
});
