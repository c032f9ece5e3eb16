import { describe, expect, it } from 'vitest';
import { ed25519PublicKey, encodeKey, generateKeyPair } from '@airlock/identity';
import { AgentKeyCache } from './agent-auth.ts';

function entry() {
  const pair = generateKeyPair();
  const key = ed25519PublicKey(pair.publicKey);
  if (key === null) throw new Error('a generated key did not parse');
  return { tenantId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d', publicKey: encodeKey(pair.publicKey), key };
}

describe('agent key cache', () => {
  it('holds at most maxEntries, dropping the least recently stored', () => {
    const cache = new AgentKeyCache(2);
    const [a, b, c] = [entry(), entry(), entry()];
    cache.remember('a', a);
    cache.remember('b', b);
    cache.remember('a', a);
    cache.remember('c', c);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(a);
    expect(cache.get('c')).toBe(c);
  });

  it('forgets an agent', () => {
    const cache = new AgentKeyCache();
    cache.remember('a', entry());
    cache.forget('a');
    expect(cache.get('a')).toBeUndefined();
  });
});
