import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptStream, generateDemoKey, loadRecipients } from './index.ts';
import type { DemoKey } from './index.ts';

interface GpgResult {
  code: number | null;
  stdoutSha256: string;
  stderr: string;
}

/** Runs gpg with an argv array (no shell), hashing stdout as it streams so plaintext never touches disk. */
function gpg(home: string, args: string[], stdin?: string): Promise<GpgResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('gpg', ['--homedir', home, '--batch', '--no-tty', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const hash = createHash('sha256');
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => hash.update(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdoutSha256: hash.digest('hex'), stderr }));
    child.stdin.end(stdin ?? '');
  });
}

function killAgent(home: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('gpgconf', ['--homedir', home, '--kill', 'gpg-agent'], { stdio: 'ignore' });
    child.on('error', () => resolve());
    child.on('close', () => resolve());
  });
}

describe('GnuPG decrypts what encryptStream writes', () => {
  let dir: string;
  let home: string;
  let demo: DemoKey;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-pgp-'));
    home = await mkdtemp(path.join(tmpdir(), 'airlock-gnupg-'));
    await chmod(home, 0o700);
    demo = await generateDemoKey('Partner', 'partner@example.com');
    const imported = await gpg(home, ['--import'], demo.armoredSecretKey);
    expect(imported.code, imported.stderr).toBe(0);
  });

  afterAll(async () => {
    await killAgent(home);
    await rm(home, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['binary', false],
    ['armored', true],
  ])('5 MiB, %s', async (_label, armor) => {
    const recipients = await loadRecipients([demo.armoredPublicKey]);
    const plaintext = randomBytes(5 * 1024 * 1024);
    const file = path.join(dir, armor ? 'out.asc' : 'out.gpg');
    const chunks = Array.from({ length: plaintext.length / 65_536 }, (_, i) => plaintext.subarray(i * 65_536, (i + 1) * 65_536));
    await pipeline(await encryptStream(Readable.from(chunks), recipients, { armor, filename: 'data.bin' }), createWriteStream(file));

    const result = await gpg(home, ['--yes', '--pinentry-mode', 'loopback', '--decrypt', file]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdoutSha256).toBe(createHash('sha256').update(plaintext).digest('hex'));
    // GnuPG 2.2 warns when a message lacks integrity protection; SEIPDv1 carries an MDC.
    expect(result.stderr).not.toMatch(/not integrity protected/);
  });
});
