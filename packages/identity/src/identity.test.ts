import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { signedHeaders } from '@airlock/protocol';
import { decodePublicKey, encodeKey, generateKeyPair, keyPairFromSecretKey, sha256Hex, signDetached, signRequest, verifyDetached, verifySignature } from './index.ts';

function partsFrom(headers: Record<string, string>, method: string, pathAndQuery: string, body: string) {
  return {
    method,
    pathAndQuery,
    bodySha256: sha256Hex(body),
    created: Number(headers[signedHeaders.created]),
    nonce: headers[signedHeaders.nonce] ?? '',
    agentId: headers[signedHeaders.agent] ?? '',
  };
}

describe('request signing', () => {
  const keys = generateKeyPair();
  const request = { agentId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d', method: 'POST', pathAndQuery: '/trpc/agent.heartbeat', body: '{"a":1}' };
  const headers = signRequest(keys, request);
  const signature = headers[signedHeaders.signature] ?? '';

  it('verifies what it signed', () => {
    expect(verifySignature(partsFrom(headers, 'POST', request.pathAndQuery, request.body), signature, keys.publicKey)).toBe(true);
  });

  it.each([
    ['method', () => partsFrom(headers, 'GET', request.pathAndQuery, request.body)],
    ['path', () => partsFrom(headers, 'POST', '/trpc/agent.nextJob', request.body)],
    ['query', () => partsFrom(headers, 'POST', `${request.pathAndQuery}?x=1`, request.body)],
    ['body', () => partsFrom(headers, 'POST', request.pathAndQuery, '{"a":2}')],
    ['created', () => ({ ...partsFrom(headers, 'POST', request.pathAndQuery, request.body), created: 1 })],
    ['nonce', () => ({ ...partsFrom(headers, 'POST', request.pathAndQuery, request.body), nonce: 'AAAAAAAAAAAAAAAAAAAAAAAA' })],
  ])('refuses a changed %s', (_field, parts) => {
    expect(verifySignature(parts(), signature, keys.publicKey)).toBe(false);
  });

  it('refuses another key and malformed signatures', () => {
    const parts = partsFrom(headers, 'POST', request.pathAndQuery, request.body);
    expect(verifySignature(parts, signature, generateKeyPair().publicKey)).toBe(false);
    expect(verifySignature(parts, 'c2hvcnQ=', keys.publicKey)).toBe(false);
  });

  it('round-trips keys', () => {
    expect(keyPairFromSecretKey(keys.secretKey).publicKey).toEqual(keys.publicKey);
    expect(decodePublicKey(encodeKey(keys.publicKey))).toEqual(keys.publicKey);
    expect(() => decodePublicKey('AAAA')).toThrow();
  });
});

describe('detached signatures', () => {
  it('are byte for byte the signatures tweetnacl makes, from empty messages to large ones', () => {
    for (const size of [0, 1, 31, 32, 64, 200, 4_096, 70_000]) {
      const pair = generateKeyPair();
      const message = randomBytes(size);
      expect(Buffer.from(signDetached(message, pair.secretKey)).toString('hex')).toBe(Buffer.from(nacl.sign.detached(message, pair.secretKey)).toString('hex'));
      // Twice with one key: the parsed key is reused, and changes nothing.
      const again = randomBytes(size);
      expect(Buffer.from(signDetached(again, pair.secretKey)).toString('hex')).toBe(Buffer.from(nacl.sign.detached(again, pair.secretKey)).toString('hex'));
    }
  });

  it('verify with the signer key only, over the exact message', () => {
    const pair = generateKeyPair();
    const other = generateKeyPair();
    const message = Buffer.from('checkpoint 42');
    const signature = signDetached(message, pair.secretKey);
    expect(verifyDetached(message, signature, pair.publicKey)).toBe(true);
    expect(verifyDetached(Buffer.from('checkpoint 43'), signature, pair.publicKey)).toBe(false);
    expect(verifyDetached(message, signature, other.publicKey)).toBe(false);
    expect(verifyDetached(message, signature.slice(1), pair.publicKey)).toBe(false);
  });
});
