import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { encryptStream, generateDemoKey, inspectRecipientKeys, loadRecipients, type RecipientKey } from './index.ts';

interface GpgResult {
  code: number | null;
  stdout: string;
  stdoutSha256: string;
  stderr: string;
}

/** Runs gpg with an argv array (no shell). Stdout is hashed, and kept as text only where it is a public key or a listing. */
function gpg(home: string, args: string[], stdin = ''): Promise<GpgResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('gpg', ['--homedir', home, '--batch', '--no-tty', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const hash = createHash('sha256');
    const keep = !args.includes('--decrypt');
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      if (keep) stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stdoutSha256: hash.digest('hex'), stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
}

const dirs: string[] = [];

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  dirs.push(dir);
  await chmod(dir, 0o700);
  return dir;
}

afterAll(async () => {
  for (const dir of dirs) {
    await new Promise<void>((resolve) => {
      const child = spawn('gpgconf', ['--homedir', dir, '--kill', 'gpg-agent'], { stdio: 'ignore' });
      child.on('error', () => resolve());
      child.on('close', () => resolve());
    });
    await rm(dir, { recursive: true, force: true });
  }
});

async function ok(result: Promise<GpgResult>): Promise<GpgResult> {
  const done = await result;
  expect(done.code, done.stderr).toBe(0);
  return done;
}

/** A fresh GNUPGHOME with a new key pair made by gpg itself: `algo` signs, `encryptAlgo` is the encryption subkey. */
async function gpgKey(uid: string, algo: string, encryptAlgo: string): Promise<{ home: string; fingerprint: string; armoredPublicKey: string }> {
  const home = await tempDir('airlock-gnupg-');
  await ok(gpg(home, ['--quick-gen-key', uid, algo, 'sign', 'never']));
  const listing = await ok(gpg(home, ['--with-colons', '--list-keys', uid]));
  const fingerprint = /^fpr:(?:[^:]*:){8}([0-9A-F]{40}):/m.exec(listing.stdout)?.[1];
  if (fingerprint === undefined) throw new Error('gpg listed no fingerprint');
  await ok(gpg(home, ['--quick-add-key', fingerprint, encryptAlgo, 'encr', 'never']));
  return { home, fingerprint, armoredPublicKey: (await ok(gpg(home, ['--armor', '--export', fingerprint]))).stdout };
}

async function encryptToFile(plaintext: Buffer, recipients: RecipientKey[]): Promise<string> {
  const file = path.join(await tempDir('airlock-pgp-'), 'out.pgp');
  await pipeline(await encryptStream(Readable.from([plaintext]), recipients), createWriteStream(file));
  return file;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('GnuPG and recipient key files', () => {
  it('[integrity #10] a file holding two keys encrypts to both, and each decrypts alone with gpg', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    const b = await generateDemoKey('B', 'b@example.com');
    const recipients = await loadRecipients([`${a.armoredPublicKey}\n${b.armoredPublicKey}`]);
    expect(recipients.map((r) => r.fingerprint)).toEqual([a.fingerprint, b.fingerprint]);
    const plaintext = randomBytes(100_000);
    const file = await encryptToFile(plaintext, recipients);
    for (const key of [a, b]) {
      const home = await tempDir('airlock-gnupg-');
      await ok(gpg(home, ['--import'], key.armoredSecretKey));
      const result = await ok(gpg(home, ['--yes', '--decrypt', file]));
      expect(result.stdoutSha256).toBe(sha256(plaintext));
    }
  });

  it('[integrity #12] GnuPG decrypts a message to the brainpoolP256r1 key it made', async () => {
    const key = await gpgKey('Brainpool Partner <bp@example.com>', 'brainpoolP256r1', 'brainpoolP256r1');
    const [recipient] = await inspectRecipientKeys(key.armoredPublicKey);
    expect(recipient?.fingerprint).toBe(key.fingerprint);
    expect(recipient?.algorithm).toBe('ecdh-brainpoolp256r1');
    const plaintext = randomBytes(50_000);
    const file = await encryptToFile(plaintext, await loadRecipients([key.armoredPublicKey]));
    const result = await ok(gpg(key.home, ['--yes', '--decrypt', file]));
    expect(result.stdoutSha256).toBe(sha256(plaintext));
  });

  it('[integrity #13] a gpg key that prefers only 3DES and CAST5 is warned about and gets AES-128, which gpg decrypts', async () => {
    const key = await gpgKey('Old Ciphers <old@example.com>', 'rsa2048', 'rsa2048');
    await ok(gpg(key.home, ['--command-fd', '0', '--edit-key', key.fingerprint], 'setpref 3DES CAST5 SHA256 Uncompressed\ny\nsave\n'));
    const armored = (await ok(gpg(key.home, ['--armor', '--export', key.fingerprint]))).stdout;
    const [recipient] = await inspectRecipientKeys(armored);
    expect(recipient?.warnings.join('\n')).toMatch(/prefers only 3DES, CAST5; .* AES-128/);
    const plaintext = randomBytes(50_000);
    const file = await encryptToFile(plaintext, await loadRecipients([armored]));
    const result = await ok(gpg(key.home, ['--yes', '--status-fd', '2', '--decrypt', file]));
    expect(result.stdoutSha256).toBe(sha256(plaintext));
    // DECRYPTION_INFO <mdc method> <cipher>: 7 is AES-128 (RFC 4880 9.2), and an MDC is present.
    expect(result.stderr).toMatch(/\[GNUPG:\] DECRYPTION_INFO 2 7\b/);
  });
});
