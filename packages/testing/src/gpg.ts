import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from './exec.ts';
import { removeOnExit } from './process-cleanup.ts';

const GPG = '/usr/bin/gpg';

/**
 * Decrypts `ciphertextFile` with GnuPG and the given secret key, hashing the plaintext as it streams
 * out of gpg: the plaintext is never written to disk. Uses a throwaway GNUPGHOME.
 */
export async function gpgDecrypt(ciphertextFile: string, armoredSecretKey: string): Promise<{ sha256: string; bytes: number }> {
  const home = await mkdtemp(path.join(tmpdir(), 'airlock-gpg-'));
  const forget = removeOnExit(home);
  const env = { ...process.env, GNUPGHOME: home };
  try {
    // mkdtemp already creates the directory with mode 0700, which gpg requires.
    await run(GPG, ['--batch', '--import'], { input: armoredSecretKey, env });
    return await new Promise((resolve, reject) => {
      const child = spawn(GPG, ['--batch', '--yes', '--pinentry-mode', 'loopback', '--decrypt', ciphertextFile], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const hash = createHash('sha256');
      let bytes = 0;
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        stderr += chunk;
      });
      child.once('error', reject);
      child.once('close', (code) => {
        if (code === 0) resolve({ sha256: hash.digest('hex'), bytes });
        else reject(new Error(`gpg --decrypt exited with ${String(code)}: ${stderr.trim()}`));
      });
    });
  } finally {
    await run('gpgconf', ['--kill', 'all'], { env }).catch(() => undefined);
    await rm(home, { recursive: true, force: true });
    forget();
  }
}
