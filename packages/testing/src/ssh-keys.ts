import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { run } from './exec.ts';

/**
 * The `SHA256:...` fingerprint of an OpenSSH public key line, as `ssh-keygen -lf` prints it. The
 * fixtures ask ssh-keygen rather than hashing themselves, so tests check the connector's own
 * computation against OpenSSH's.
 */
export async function sshKeygenFingerprint(publicKeyLine: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'airlock-fp-'));
  try {
    const file = path.join(dir, 'key.pub');
    await writeFile(file, `${publicKeyLine.trim()}\n`);
    return await fingerprintOfFile(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function fingerprintOfFile(publicKeyFile: string): Promise<string> {
  const { stdout } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', publicKeyFile]);
  const fingerprint = stdout.split(' ')[1];
  if (fingerprint === undefined || !/^SHA256:[A-Za-z0-9+/]{43}$/.test(fingerprint)) {
    throw new Error('could not read a SHA256 fingerprint from ssh-keygen -l');
  }
  return fingerprint;
}

/** Generates an ed25519 key pair with `ssh-keygen` at `file` and `file.pub`. */
export async function generateEd25519(file: string, comment: string): Promise<void> {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
}

/** The OpenSSH one-line form (`<type> <base64>`) of a raw SSH public key blob. */
export function publicKeyLine(blob: Buffer): string {
  if (blob.length < 4) throw new Error('truncated SSH public key blob');
  const typeLength = blob.readUInt32BE(0);
  if (blob.length < 4 + typeLength) throw new Error('truncated SSH public key blob');
  return `${blob.subarray(4, 4 + typeLength).toString('latin1')} ${blob.toString('base64')}`;
}

/**
 * An ssh2 `hostVerifier` that accepts only the host key whose `ssh-keygen` fingerprint is
 * `expected`. For fixture self-tests; the connector has its own pinned verifier.
 */
export function sshKeygenHostVerifier(expected: string): (key: Buffer, verify: (valid: boolean) => void) => void {
  return (key, verify) => {
    sshKeygenFingerprint(publicKeyLine(key)).then(
      (actual) => verify(actual === expected),
      () => verify(false),
    );
  };
}

/**
 * A fresh ed25519 key pair in OpenSSH format. ssh2's generator now and then (about 1 in 300) emits
 * a private key its own parser rejects; such a pair is thrown away and another made.
 */
export function generateSshKeyPair(): { private: string; public: string } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519');
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error)) return pair;
  }
  throw new Error('could not generate a parsable ed25519 key pair');
}
