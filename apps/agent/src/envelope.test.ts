import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, signDetached, signStatement } from '@airlock/identity';
import { EnvelopeRefusal, openEnvelope } from './envelope.ts';
import { NonceStore } from './nonce-store.ts';

const controlPlane = generateKeyPair();
const agentId = randomUUID();
const tenantId = randomUUID();
let dir: string;
let nonces: NonceStore;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-envelope-'));
  nonces = new NonceStore(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function envelope(overrides: Record<string, unknown> = {}, secretKey = controlPlane.secretKey) {
  const now = Date.now();
  const payload = {
    v: 1,
    tenantId,
    agentId,
    runId: randomUUID(),
    integrationId: randomUUID(),
    integrationVersion: 3,
    spec: {
      name: 'nightly',
      agentId,
      source: { connector: 'local@1', config: { path: '/in/*.csv' } },
      destination: { connector: 'local@1', config: { directory: '/out' } },
      recipients: ['-----BEGIN PGP PUBLIC KEY BLOCK-----'],
    },
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 60_000).toISOString(),
    nonce: randomUUID().replaceAll('-', ''),
    ...overrides,
  };
  return signStatement('job', payload, (message) => signDetached(message, secretKey));
}

async function refusal(raw: unknown): Promise<string> {
  try {
    await openEnvelope(raw, { pin: controlPlane.publicKey, agentId, tenantId, nonces, now: new Date() });
  } catch (error) {
    if (error instanceof EnvelopeRefusal) return error.kind;
    throw error;
  }
  return 'accepted';
}

describe('job envelopes', () => {
  it('opens a signed, addressed, fresh envelope once, and refuses it the second time', async () => {
    const signed = envelope();
    const job = await openEnvelope(signed, { pin: controlPlane.publicKey, agentId, tenantId, nonces, now: new Date() });
    expect(job).toMatchObject({ integrationVersion: 3, spec: { name: 'nightly' } });
    expect(await refusal(signed)).toBe('envelope-replayed');
  });

  it('refuses unsigned, wrongly signed and altered envelopes', async () => {
    expect(await refusal({ job: { runId: randomUUID() } })).toBe('envelope-unsigned');
    expect(await refusal(envelope({}, generateKeyPair().secretKey))).toBe('envelope-bad-signature');
    const signed = envelope();
    expect(await refusal({ ...signed, payload: signed.payload.replace('nightly', 'hourly') })).toBe('envelope-bad-signature');
  });

  it('refuses expired, future and overlong envelopes', async () => {
    const at = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();
    expect(await refusal(envelope({ issuedAt: at(-600_000), expiresAt: at(-300_000) }))).toBe('envelope-expired');
    expect(await refusal(envelope({ issuedAt: at(600_000), expiresAt: at(900_000) }))).toBe('envelope-expired');
    expect(await refusal(envelope({ expiresAt: at(2 * 24 * 3600_000) }))).toBe('envelope-expired');
  });

  it('refuses an envelope for another agent or tenant', async () => {
    const other = randomUUID();
    expect(await refusal(envelope({ agentId: other }))).toBe('envelope-other-agent');
    expect(await refusal(envelope({ tenantId: other }))).toBe('envelope-other-agent');
  });

  it('refuses an envelope whose spec names another agent or only a group: a group run must be sealed for its claimant', async () => {
    const spec = (fields: Record<string, unknown>) => ({
      name: 'nightly',
      ...fields,
      source: { connector: 'local@1', config: { path: '/in/*.csv' } },
      destination: { connector: 'local@1', config: { directory: '/out' } },
      recipients: ['-----BEGIN PGP PUBLIC KEY BLOCK-----'],
    });
    expect(await refusal(envelope({ spec: spec({ agentId: randomUUID() }) }))).toBe('envelope-other-agent');
    expect(await refusal(envelope({ spec: spec({ group: 'pair' }) }))).toBe('envelope-other-agent');
    expect(await refusal(envelope({ spec: spec({ agentId }) }))).toBe('accepted');
  });
});
