/**
 * A real OpenSSH `sshd` serving SFTP on a free loopback port, with a fresh host key and a fresh
 * client key. Used by integration and e2e tests wherever "a real SFTP server" is meant.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isWithin } from '@airlock/connector-api';
import { run } from './exec.ts';
import { freePort, waitForPort } from './ports.ts';
import { killOnExit, removeOnExit } from './process-cleanup.ts';
import { fingerprintOfFile, generateEd25519 } from './ssh-keys.ts';

const SSHD = '/usr/sbin/sshd';
const READY_TIMEOUT_MS = 10_000;
/** The system user that password-login tests authenticate as. */
export const SFTP_TEST_USER = 'airlock-sftp';

export interface TestSshd extends AsyncDisposable {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `SHA256:...` of the host key, as `ssh-keygen -lf` prints it. */
  readonly hostKeyFingerprint: string;
  /** Log in as this user with `privateKey`. */
  readonly username: 'root';
  /** OpenSSH private key text of the client key. */
  readonly privateKey: string;
  /** Absolute path of the served directory (the server's own file system, no chroot). */
  readonly root: string;
  /** sshd's stderr so far. */
  logs(): string;
  /**
   * Ensures the system user `airlock-sftp` exists with `password`, so tests can log in with a
   * password. Returns the user name.
   */
  createSftpUser(password: string): Promise<string>;
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  /** Files to serve, by relative path (subdirectories are created). */
  files?: Record<string, string | Buffer>;
}

export async function writeFiles(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    const target = path.resolve(root, name);
    if (target === path.resolve(root) || !isWithin(path.resolve(root), target)) {
      throw new Error(`fixture file ${JSON.stringify(name)} is outside the served directory`);
    }
    await mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
    await writeFile(target, content, { mode: 0o644 });
  }
}

export async function startSshd(options: StartSshdOptions = {}): Promise<TestSshd> {
  if (!existsSync(SSHD)) {
    throw new Error(`${SSHD} not found: install OpenSSH's server (apt-get install openssh-server)`);
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'airlock-sshd-'));
  const forgetDir = removeOnExit(dir);
  // The served tree must be reachable by the password-login user; the keys directory is not.
  await chmod(dir, 0o755);
  const keys = path.join(dir, 'keys');
  const root = path.join(dir, 'root');
  await mkdir(keys, { mode: 0o700 });
  await mkdir(root, { mode: 0o755 });
  await writeFiles(root, options.files ?? {});

  // sshd insists on its privilege separation directory.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

  const hostKey = path.join(keys, 'host_ed25519');
  const clientKey = path.join(keys, 'client_ed25519');
  await generateEd25519(hostKey, 'airlock-test-host');
  await generateEd25519(clientKey, 'airlock-test-client');
  const authorizedKeys = path.join(keys, 'authorized_keys');
  await writeFile(authorizedKeys, await readFile(`${clientKey}.pub`), { mode: 0o644 });
  const hostKeyFingerprint = await fingerprintOfFile(`${hostKey}.pub`);
  const privateKey = await readFile(clientKey, 'utf8');

  const port = await freePort();
  const config = path.join(keys, 'sshd_config');
  await writeFile(
    config,
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      'StrictModes no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      'AllowTcpForwarding no',
      'AllowAgentForwarding no',
      'X11Forwarding no',
      'PermitTTY no',
      'Subsystem sftp internal-sftp',
      'ForceCommand internal-sftp',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );

  const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  const forgetChild = killOnExit(child);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
  });
  child.once('error', (error) => {
    stderr += `\nspawn error: ${error.message}`;
  });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    }
    forgetChild();
    await rm(dir, { recursive: true, force: true });
    forgetDir();
  };

  try {
    await Promise.race([
      waitForPort('127.0.0.1', port, READY_TIMEOUT_MS, () => `sshd log:\n${stderr}`),
      exited.then(() => {
        throw new Error(`sshd exited at start-up:\n${stderr}`);
      }),
    ]);
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    host: '127.0.0.1',
    port,
    hostKeyFingerprint,
    username: 'root',
    privateKey,
    root,
    logs: () => stderr,
    createSftpUser: async (password) => {
      await ensureSftpUser(password);
      return SFTP_TEST_USER;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * Creates (once) the system user `airlock-sftp` and sets its password. The password goes to
 * chpasswd on stdin, never into argv where `ps` would show it.
 */
export async function ensureSftpUser(password: string): Promise<void> {
  if (/[:\n]/.test(password)) throw new Error('chpasswd cannot take a password with ":" or a newline');
  const exists = await run('id', ['-u', SFTP_TEST_USER]).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await run('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', SFTP_TEST_USER]).catch(
      async (error: unknown) => {
        // Another test process may have created it concurrently.
        const nowExists = await run('id', ['-u', SFTP_TEST_USER]).then(
          () => true,
          () => false,
        );
        if (!nowExists) throw error;
      },
    );
  }
  await run('chpasswd', [], { input: `${SFTP_TEST_USER}:${password}\n` });
}
