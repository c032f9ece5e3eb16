/**
 * OpenSSH's own `sftp` client against a test sshd, the way a cron script would use it: batch mode,
 * a pinned known_hosts entry and a key file. The reference point the benchmarks compare Airlock to.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sshKeygenFingerprint, type TestSshd } from '@airlock/testing';
import { runCommand } from './processes.ts';
import { inheritedEnv } from './config.ts';

const SFTP = '/usr/bin/sftp';
const SSH_KEYSCAN = '/usr/bin/ssh-keyscan';

export interface SftpClientFiles {
  readonly port: number;
  readonly knownHosts: string;
  readonly identity: string;
}

/**
 * Writes the client key (0600) and a known_hosts file into `dir`. The host key line comes from
 * ssh-keyscan and is accepted only if its fingerprint is the one the fixture generated, so the
 * client's StrictHostKeyChecking really pins the fixture's key.
 */
export async function sftpClientFiles(sshd: TestSshd, dir: string): Promise<SftpClientFiles> {
  const scan = await runCommand(SSH_KEYSCAN, ['-T', '5', '-t', 'ed25519', '-p', String(sshd.port), sshd.host], {
    env: inheritedEnv(),
    timeoutMs: 15_000,
  });
  const line = scan.stdout.split('\n').find((l) => l.startsWith(`[${sshd.host}]:${sshd.port} ssh-ed25519 `));
  if (line === undefined) throw new Error(`ssh-keyscan found no ed25519 host key on port ${sshd.port}: ${scan.stderr.trim()}`);
  const keyPart = line.slice(line.indexOf(' ') + 1);
  if ((await sshKeygenFingerprint(keyPart)) !== sshd.hostKeyFingerprint) {
    throw new Error('ssh-keyscan returned a host key other than the fixture\'s');
  }
  const knownHosts = path.join(dir, 'known_hosts');
  const identity = path.join(dir, 'id_ed25519');
  await writeFile(knownHosts, `${line}\n`, { mode: 0o600 });
  await writeFile(identity, sshd.privateKey, { mode: 0o600 });
  return { port: sshd.port, knownHosts, identity };
}

/** sftp's batch language splits on white space and treats quotes and `#` specially: keep paths plain. */
function batchPath(file: string): string {
  if (!/^\/[A-Za-z0-9._/-]+$/.test(file)) throw new Error(`refusing an sftp batch path with special characters: ${JSON.stringify(file)}`);
  return file;
}

export type SftpCommand = { op: 'get'; remote: string; local: string } | { op: 'put'; local: string; remote: string };

/** Runs `sftp -b -` with the commands on stdin; throws with sftp's stderr unless it exits 0. */
export async function sftpBatch(files: SftpClientFiles, commands: readonly SftpCommand[], timeoutMs: number): Promise<void> {
  const script = commands
    .map((c) => (c.op === 'get' ? `get ${batchPath(c.remote)} ${batchPath(c.local)}` : `put ${batchPath(c.local)} ${batchPath(c.remote)}`))
    .join('\n');
  const args = [
    '-q',
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${files.knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'IdentitiesOnly=yes',
    '-i', files.identity,
    '-P', String(files.port),
    '-b', '-',
    'root@127.0.0.1',
  ];
  const result = await runCommand(SFTP, args, { env: inheritedEnv(), timeoutMs, input: `${script}\n` });
  if (result.code !== 0) throw new Error(`sftp exited with ${String(result.code)}: ${result.stderr.trim()}`);
}
