/**
 * A real OpenSSH `sshd` serving SFTP on a free loopback port, with a fresh host key and a fresh
 * client key. Used by integration and e2e tests wherever "a real SFTP server" is meant.
 */
import { spawn, type ChildProcess } from 'node:child_process';
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
  /** OpenSSH public key line of the client key. */
  readonly publicKey: string;
  /** Absolute path of the served directory (the server's own file system, no chroot). */
  readonly root: string;
  /** sshd's stderr so far. */
  logs(): string;
  /**
   * Ensures the system user `airlock-sftp` exists with `password`, so tests can log in with a
   * password. Returns the user name.
   */
  createSftpUser(password: string): Promise<string>;
  /**
   * Starts sshd again on the same port with the same keys, config and files, as after a crash:
   * first kills it (SIGKILL) if it still runs, then waits until it accepts connections again.
   */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  /** Files to serve, by relative path (subdirectories are created). */
  files?: Record<string, string | Buffer>;
  /** More client public keys (OpenSSH lines) to accept, besides the fixture's own. */
  authorizedKeys?: readonly string[];
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
  const publicKey = (await readFile(`${clientKey}.pub`, 'utf8')).trim();
  await writeFile(authorizedKeys, [publicKey, ...(options.authorizedKeys ?? [])].map((line) => `${line.trim()}\n`).join(''), {
    mode: 0o644,
  });
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

  let stderr = '';
  let stopped = false;
  let child: ChildProcess;
  let exited: Promise<void>;
  let forgetChild: () => void;
  const launch = (): void => {
    const started = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = started;
    forgetChild = killOnExit(started);
    started.stderr.setEncoding('utf8');
    started.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    exited = new Promise<void>((resolve) => {
      started.once('exit', () => resolve());
    });
    started.once('error', (error) => {
      stderr += `\nspawn error: ${error.message}`;
    });
  };
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const ready = (): Promise<void> =>
    Promise.race([
      waitForPort('127.0.0.1', port, READY_TIMEOUT_MS, () => `sshd log:\n${stderr}`),
      exited.then(() => {
        throw new Error(`sshd exited at start-up:\n${stderr}`);
      }),
    ]);
  launch();

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (running()) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    }
    forgetChild();
    await rm(dir, { recursive: true, force: true });
    forgetDir();
  };

  const restart = async (): Promise<void> => {
    if (stopped) throw new Error('sshd was stopped; it cannot be restarted');
    if (running()) child.kill('SIGKILL');
    await exited;
    forgetChild();
    launch();
    await ready();
  };

  try {
    await ready();
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
    publicKey,
    root,
    logs: () => stderr,
    createSftpUser: async (password) => {
      await ensureSftpUser(password);
      return SFTP_TEST_USER;
    },
    restart,
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
