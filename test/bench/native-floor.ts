/**
 * The CPU floor of the transfer benchmark: the cryptography the agent cannot avoid for one file,
 * run through `node:crypto` on the same byte counts, with nothing else around it (no streams, no
 * sockets, no packet parsing). The agent's own CPU divided by this is its overhead factor.
 *
 * What the data path must compute, per file:
 *   ssh_in        the SSH transport's cipher (and MAC, unless the cipher is AEAD) over the source bytes;
 *   ssh_out       the same over the delivered ciphertext, when the destination is SFTP;
 *   openpgp_cfb   the OpenPGP session cipher in CFB mode over the plaintext (SEIPDv1);
 *   mdc_sha1      the SEIPDv1 modification detection code (SHA-1) over the plaintext;
 *   hmac_sha256   the keyed plaintext digest the report carries;
 *   sha256        the ciphertext digest the report carries.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';
import { sshKeygenHostVerifier } from '@airlock/testing';

/** Bytes per `update` call: the SFTP request size, so the floor is not flattered by one huge call. */
const CHUNK_BYTES = 256 * 1024;
/**
 * Each primitive first runs unmeasured over this much: a cold process spends its first pass
 * faulting in fresh pages for the outputs, which is allocation, not cryptography.
 */
const WARM_UP_BYTES = 32 * 1024 * 1024;

/** What the SSH client and server agreed on for one direction. */
export interface SshAlgorithms {
  readonly cipher: string;
  readonly mac: string;
}

interface Updatable {
  update(data: Buffer): unknown;
}

/** Node's name for an SSH cipher; AEAD ciphers need no separate MAC. */
function sshCipher(name: string): { node: string; keyBytes: number; ivBytes: number; aead: boolean } {
  switch (name) {
    case 'aes128-gcm@openssh.com':
    case 'aes128-gcm':
      return { node: 'aes-128-gcm', keyBytes: 16, ivBytes: 12, aead: true };
    case 'aes256-gcm@openssh.com':
    case 'aes256-gcm':
      return { node: 'aes-256-gcm', keyBytes: 32, ivBytes: 12, aead: true };
    case 'chacha20-poly1305@openssh.com':
      return { node: 'chacha20-poly1305', keyBytes: 32, ivBytes: 12, aead: true };
    case 'aes128-ctr':
      return { node: 'aes-128-ctr', keyBytes: 16, ivBytes: 16, aead: false };
    case 'aes192-ctr':
      return { node: 'aes-192-ctr', keyBytes: 24, ivBytes: 16, aead: false };
    case 'aes256-ctr':
      return { node: 'aes-256-ctr', keyBytes: 32, ivBytes: 16, aead: false };
    default:
      throw new Error(`no native floor for SSH cipher ${name}`);
  }
}

function sshMac(name: string): string {
  const match = /^hmac-(sha2-256|sha2-512|sha1)(-etm@openssh\.com)?$/.exec(name);
  if (match === null) throw new Error(`no native floor for SSH MAC ${name}`);
  return match[1] === 'sha1' ? 'sha1' : match[1] === 'sha2-256' ? 'sha256' : 'sha512';
}

function feed(bytes: number, data: Buffer, work: Updatable[]): void {
  for (let done = 0; done < bytes; done += data.length) {
    const chunk = bytes - done >= data.length ? data : data.subarray(0, bytes - done);
    for (const step of work) step.update(chunk);
  }
}

/** CPU seconds (user + system, this process) spent feeding `bytes` bytes through `work`, in chunks. */
function cpuOf(bytes: number, data: Buffer, work: Updatable[]): number {
  feed(WARM_UP_BYTES, data, work);
  const before = process.cpuUsage();
  feed(bytes, data, work);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6;
}

function sshDirection(algorithms: SshAlgorithms, decrypt: boolean): Updatable[] {
  const cipher = sshCipher(algorithms.cipher);
  const key = randomBytes(cipher.keyBytes);
  const iv = randomBytes(cipher.ivBytes);
  // A decipher's tag is only checked by final(), which is never called: the bulk work is the same.
  const steps: Updatable[] = [decrypt ? createDecipheriv(cipher.node, key, iv) : createCipheriv(cipher.node, key, iv)];
  if (!cipher.aead) steps.push(createHmac(sshMac(algorithms.mac), randomBytes(32)));
  return steps;
}

export interface NativeFloor {
  readonly seconds: number;
  readonly parts: Record<string, number>;
}

/**
 * Runs the floor once, each primitive on its own so the parts can be reported. `ciphertextBytes`
 * is what went over the outbound SSH channel and into the ciphertext digest; `sshOut` is null when
 * the destination was not SFTP.
 */
export function nativeFloor(options: {
  plaintextBytes: number;
  ciphertextBytes: number;
  sshIn: SshAlgorithms;
  sshOut: SshAlgorithms | null;
  openpgpCipher: 'aes256' | 'aes128';
}): NativeFloor {
  const data = randomBytes(CHUNK_BYTES);
  const cfb = options.openpgpCipher === 'aes256' ? { node: 'aes-256-cfb', keyBytes: 32 } : { node: 'aes-128-cfb', keyBytes: 16 };
  const parts: Record<string, number> = {
    ssh_in: cpuOf(options.plaintextBytes, data, sshDirection(options.sshIn, true)),
    ...(options.sshOut === null ? {} : { ssh_out: cpuOf(options.ciphertextBytes, data, sshDirection(options.sshOut, false)) }),
    // SEIPDv1 is CFB with a zero IV and no resynchronisation (RFC 4880 5.13).
    openpgp_cfb: cpuOf(options.plaintextBytes, data, [createCipheriv(cfb.node, randomBytes(cfb.keyBytes), Buffer.alloc(16))]),
    mdc_sha1: cpuOf(options.plaintextBytes, data, [createHash('sha1')]),
    hmac_sha256: cpuOf(options.plaintextBytes, data, [createHmac('sha256', randomBytes(32))]),
    sha256: cpuOf(options.ciphertextBytes, data, [createHash('sha256')]),
  };
  return { seconds: Object.values(parts).reduce((sum, part) => sum + part, 0), parts };
}

/**
 * The algorithms ssh2, with the defaults the SFTP connector uses, negotiates with this server:
 * one throwaway connection that only completes the key exchange.
 */
export async function negotiatedSsh(
  endpoint: { port: number; privateKey: string; hostKeyFingerprint: string },
  timeoutMs: number,
): Promise<{ toServer: SshAlgorithms; fromServer: SshAlgorithms }> {
  const client = new ssh2.Client();
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('SSH handshake timed out')), timeoutMs);
      client.once('handshake', (negotiated) => {
        clearTimeout(timer);
        resolve({
          toServer: { cipher: negotiated.cs.cipher, mac: negotiated.cs.mac },
          fromServer: { cipher: negotiated.sc.cipher, mac: negotiated.sc.mac },
        });
      });
      client.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      client.connect({
        host: '127.0.0.1',
        port: endpoint.port,
        username: 'root',
        privateKey: endpoint.privateKey,
        hostVerifier: sshKeygenHostVerifier(endpoint.hostKeyFingerprint),
      });
    });
  } finally {
    client.end();
  }
}
