/**
 * A real Debian `squid` on a free loopback port, as a corporate forward proxy: Basic authentication
 * through squid's own `basic_ncsa_auth` helper against an htpasswd file made here, and an ACL that
 * lets through only the ports a test names (the control plane's, an SFTP server's). Its access log
 * is the proof of what went through it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from './exec.ts';
import { freePort, waitForPort } from './ports.ts';
import { killOnExit, removeOnExit } from './process-cleanup.ts';

const SQUID = '/usr/sbin/squid';
const NCSA_AUTH = '/usr/lib/squid/basic_ncsa_auth';
const READY_TIMEOUT_MS = 15_000;
/** Debian's squid drops root for this user; its outgoing connections carry its uid. */
const SQUID_USER = 'proxy';

export interface StartSquidOptions {
  /** The only destination ports CONNECT and plain requests may reach. */
  allowPorts: readonly number[];
  /** The one user the proxy accepts. */
  username: string;
  password: string;
}

export interface TestSquid extends AsyncDisposable {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `http://127.0.0.1:<port>`, without a credential. */
  readonly url: string;
  /** The uid squid's connections leave with (the `proxy` user), for firewall rules. */
  readonly uid: number;
  /** The access log so far, one request a line: `<time> <ms> <client> <code>/<status> <bytes> <method> <url> <user> ...`. */
  accessLog(): Promise<string>;
  /** cache.log so far (start-up and helper messages). */
  cacheLog(): Promise<string>;
  stop(): Promise<void>;
}

/** An htpasswd line with an APR1 (Apache MD5) hash, which basic_ncsa_auth reads; the password goes in on stdin. */
async function htpasswdLine(username: string, password: string): Promise<string> {
  const { stdout } = await run('openssl', ['passwd', '-apr1', '-stdin'], { input: `${password}\n` });
  return `${username}:${stdout.trim()}\n`;
}

async function uidOf(user: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export async function startSquid(options: StartSquidOptions): Promise<TestSquid> {
  if (!existsSync(SQUID)) throw new Error(`${SQUID} not found: install Debian's squid (apt-get install squid)`);
  if (options.allowPorts.length === 0) throw new Error('startSquid: name at least one allowed port');
  const dir = await mkdtemp(path.join(tmpdir(), 'airlock-squid-'));
  const forgetDir = removeOnExit(dir);
  const port = await freePort();
  const owner = await uidOf(SQUID_USER);
  const htpasswd = path.join(dir, 'htpasswd');
  const accessLog = path.join(dir, 'access.log');
  const cacheLog = path.join(dir, 'cache.log');
  const config = path.join(dir, 'squid.conf');
  await writeFile(htpasswd, await htpasswdLine(options.username, options.password), { mode: 0o640 });
  const ports = options.allowPorts.map(String).join(' ');
  await writeFile(
    config,
    [
      `http_port 127.0.0.1:${port}`,
      `visible_hostname airlock-test-proxy`,
      `cache_effective_user ${SQUID_USER}`,
      'pid_filename none',
      `access_log stdio:${accessLog} squid`,
      `cache_log ${cacheLog}`,
      `coredump_dir ${dir}`,
      'cache deny all',
      'cache_mem 8 MB',
      'pinger_enable off',
      'shutdown_lifetime 0 seconds',
      'dns_v4_first on',
      `auth_param basic program ${NCSA_AUTH} ${htpasswd}`,
      'auth_param basic children 2 startup=1 idle=1',
      'auth_param basic realm airlock-test-proxy',
      `acl allowed_ports port ${ports}`,
      'acl authenticated proxy_auth REQUIRED',
      // A port outside the list is refused before any credential is asked for.
      'http_access deny !allowed_ports',
      'http_access allow authenticated',
      'http_access deny all',
      '',
    ].join('\n'),
  );
  for (const file of [dir, htpasswd]) await chown(file, 0, owner.gid);
  await chmod(dir, 0o770);
  // squid checks the config before it starts; a bad directive fails here with its message.
  await run(SQUID, ['-k', 'parse', '-f', config]).catch((error: unknown) => {
    throw new Error(`squid rejected its generated config: ${error instanceof Error ? error.message : String(error)}`);
  });
  const child = spawn(SQUID, ['-N', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  const forgetChild = killOnExit(child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitForPort('127.0.0.1', port, READY_TIMEOUT_MS);
  } catch (error) {
    child.kill('SIGKILL');
    const log = await readFile(cacheLog, 'utf8').catch(() => '');
    throw new Error(`squid did not listen on ${port}: ${stderr.trim()}\n${log.slice(-2000)}`, { cause: error });
  }
  const read = (file: string) => readFile(file, 'utf8').catch(() => '');
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    }
    forgetChild();
    await rm(dir, { recursive: true, force: true });
    forgetDir();
  };
  return {
    host: '127.0.0.1',
    port,
    url: `http://127.0.0.1:${port}`,
    uid: owner.uid,
    accessLog: () => read(accessLog),
    cacheLog: () => read(cacheLog),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
