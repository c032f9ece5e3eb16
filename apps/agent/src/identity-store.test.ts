import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keyForEnrollment, loadIdentity, saveIdentity } from './identity-store.ts';

describe('agent identity on disk', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-identity-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the private key at mode 0600 and reuses it after a failed enrollment', async () => {
    const first = await keyForEnrollment(dir);
    expect((await stat(path.join(dir, 'agent.key'))).mode & 0o777).toBe(0o600);
    const retry = await keyForEnrollment(dir);
    expect(retry.publicKey).toEqual(first.publicKey);
  });

  it('refuses to enroll twice and loads what enrollment saved', async () => {
    await expect(loadIdentity(dir)).rejects.toThrow(/enroll/);
    const keyPair = await keyForEnrollment(dir);
    const identity = {
      agentId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
      tenantId: '7f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
      controlPlaneUrl: 'https://airlock.example.com',
      enrolledAt: new Date().toISOString(),
    };
    await saveIdentity(dir, identity);
    await expect(keyForEnrollment(dir)).rejects.toThrow(/already enrolled/);
    const loaded = await loadIdentity(dir);
    expect(loaded.identity).toEqual(identity);
    expect(loaded.keyPair.publicKey).toEqual(keyPair.publicKey);
  });
});
