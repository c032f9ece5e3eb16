import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm, stat, symlink, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPair, signDetached, signStatement } from '@airlock/identity';
import { compareVersions } from '@airlock/protocol';
import { guardStart, installUpdate, readPending, readRolledBack, thisPlatform, UpdateRefusal, vetOffer } from './updates.ts';

const releaseKey = generateKeyPair();
const otherKey = generateKeyPair();
const manifest = (extra: Record<string, unknown> = {}) => ({
  v: 1,
  product: 'airlock-agent',
  version: '1.0.0',
  platform: thisPlatform(),
  artifact: { sha256: 'a'.repeat(64), size: 10 },
  downgradeAllowed: false,
  issuedAt: new Date().toISOString(),
  ...extra,
});
const offer = (payload: object, key = releaseKey, downgrade = false) => ({
  rolloutId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
  releaseId: '7f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
  release: signStatement('release', payload, (message) => signDetached(message, key.secretKey)),
  downgrade,
});
const refusalOf = (raw: unknown, deps: Partial<Parameters<typeof vetOffer>[1]> = {}): string => {
  try {
    vetOffer(raw, { version: '0.5.0', releaseKey: releaseKey.publicKey, updatesAllowed: () => 'remote', ...deps });
  } catch (error) {
    if (error instanceof UpdateRefusal) return error.kind;
    throw error;
  }
  return 'accepted';
};

describe('vetting an update offer', () => {
  it('accepts a newer release the release key signed', () => {
    expect(refusalOf(offer(manifest()))).toBe('accepted');
  });

  it('refuses a manifest signed by any other key, a malformed offer, and every offer under updates: manual or without a release key', () => {
    expect(refusalOf(offer(manifest(), otherKey))).toBe('update-bad-signature');
    expect(refusalOf({ release: 'x' })).toBe('update-refused');
    expect(refusalOf(offer(manifest()), { updatesAllowed: () => 'manual' })).toBe('update-refused');
    expect(refusalOf(offer(manifest()), { releaseKey: null })).toBe('update-refused');
  });

  it('refuses a downgrade unless the release key signed one and the control plane asked for it', () => {
    const older = manifest({ version: '0.4.0' });
    expect(refusalOf(offer(older, releaseKey, true))).toBe('update-downgrade');
    expect(refusalOf(offer(manifest({ version: '0.4.0', downgradeAllowed: true })))).toBe('update-downgrade');
    expect(refusalOf(offer(manifest({ version: '0.4.0', downgradeAllowed: true }), releaseKey, true))).toBe('accepted');
  });

  it('refuses the running version, another platform, and versions outside min/max', () => {
    expect(refusalOf(offer(manifest({ version: '0.5.0' })))).toBe('update-refused');
    expect(refusalOf(offer(manifest({ platform: thisPlatform() === 'linux-x64' ? 'linux-arm64' : 'linux-x64' })))).toBe('update-refused');
    expect(refusalOf(offer(manifest({ minVersion: '0.6.0' })))).toBe('update-refused');
    expect(refusalOf(offer(manifest({ maxVersion: '0.4.9' })))).toBe('update-refused');
  });

  it('orders versions as semantic versioning does', () => {
    expect(['1.0.0', '0.10.0', '0.9.1', '1.0.0-rc.2', '1.0.0-rc.10', '1.0.0-alpha'].sort(compareVersions)).toEqual(['0.9.1', '0.10.0', '1.0.0-alpha', '1.0.0-rc.2', '1.0.0-rc.10', '1.0.0']);
  });
});

describe('the start guard', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-guard-'));
    await mkdir(path.join(dir, 'versions'));
    await symlink('/opt/new/airlock-agent', path.join(dir, 'versions', 'current'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const pending = (switchedAt = new Date()) =>
    writeFile(
      path.join(dir, 'versions', 'pending.json'),
      JSON.stringify({ rolloutId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d', releaseId: '7f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d', version: '1.0.0', previous: '/usr/bin/airlock-agent', switchedAt: switchedAt.toISOString(), starts: 0 }),
    );
  const settings = { confirmWithinMs: 60_000, maxStarts: 2 };

  it('does nothing without a pending switch', async () => {
    expect(await guardStart(dir, settings)).toEqual({ action: 'none' });
    expect(await readlink(path.join(dir, 'versions', 'current'))).toBe('/opt/new/airlock-agent');
  });

  it('counts the starts of an unconfirmed version, then points current back at the previous one', async () => {
    await pending();
    expect(await guardStart(dir, settings)).toEqual({ action: 'counted', starts: 1 });
    expect(await guardStart(dir, settings)).toEqual({ action: 'counted', starts: 2 });
    expect(await guardStart(dir, settings)).toMatchObject({ action: 'rolled-back' });
    expect(await readlink(path.join(dir, 'versions', 'current'))).toBe('/usr/bin/airlock-agent');
    expect(await readPending(dir)).toBeUndefined();
    expect(await readRolledBack(dir)).toMatchObject({ version: '1.0.0', reason: expect.stringMatching(/started 2 times/) });
    expect((await readdir(path.join(dir, 'versions'))).sort()).toEqual(['current', 'rolled-back.json']);
  });

  it('rolls back a version that has not heartbeated in time, whatever its starts', async () => {
    await pending(new Date(Date.now() - 61_000));
    expect(await guardStart(dir, settings)).toMatchObject({ action: 'rolled-back', reason: expect.stringMatching(/did not heartbeat within 60 s/) });
  });
});

describe('installing an offered release [operations:update]', () => {
  let dir: string;
  const previous = '/usr/lib/airlock-agent/airlock-agent';
  const artifact = Buffer.from('#!/bin/sh\necho 1.0.0\n');
  const signed = (bytes: Buffer) => offer(manifest({ artifact: { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length } }));
  const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-install-'));
    await mkdir(path.join(dir, 'versions'));
    await symlink(previous, path.join(dir, 'versions', 'current'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  /** What the agent had on disk when it said it was installing. */
  interface Seen {
    rolloutId: string;
    version: string;
    current: string;
    installed: string;
    mode: number;
    pending: boolean;
  }
  const install = (raw: unknown, served: Buffer, seen: Seen[]) =>
    installUpdate(raw, {
      dataDir: dir,
      version: '0.5.0',
      releaseKey: releaseKey.publicKey,
      updatesAllowed: () => 'remote',
      fetchChunk: async () => served.toString('base64'),
      installing: async (accepted, release) => {
        const installed = path.join(dir, 'versions', release.version, 'airlock-agent');
        seen.push({
          rolloutId: accepted.rolloutId,
          version: release.version,
          current: await readlink(path.join(dir, 'versions', 'current')),
          installed: await readFile(installed, 'utf8'),
          mode: (await stat(installed)).mode & 0o777,
          pending: existsSync(path.join(dir, 'versions', 'pending.json')),
        });
      },
      logger: silent,
    });

  it('says it is installing once the verified artifact sits beside the running version, before the switch', async () => {
    const seen: Seen[] = [];
    await install(signed(artifact), artifact, seen);
    expect(seen).toEqual([{ rolloutId: offer(manifest()).rolloutId, version: '1.0.0', current: previous, installed: artifact.toString('utf8'), mode: 0o700, pending: false }]);
    expect(await readlink(path.join(dir, 'versions', 'current'))).toBe(path.join(dir, 'versions', '1.0.0', 'airlock-agent'));
    expect(await readPending(dir)).toMatchObject({ version: '1.0.0', previous });
  });

  it('says nothing of installing when the artifact does not match what was signed', async () => {
    const seen: Seen[] = [];
    const tampered = Buffer.from(artifact.toString('utf8').replace('1.0.0', '6.6.6'));
    await expect(install(signed(artifact), tampered, seen)).rejects.toMatchObject({ kind: 'update-artifact-mismatch' });
    expect(seen).toEqual([]);
    expect(await readlink(path.join(dir, 'versions', 'current'))).toBe(previous);
    expect(await readdir(path.join(dir, 'versions'))).toEqual(['current']);
  });
});
