/**
 * The SSH connection shared by the SFTP source and destination: pinned host key, credential from
 * the agent's local secrets, TCP_NODELAY, and the few SFTP calls both sides need, as promises.
 */
import ssh2 from 'ssh2';
import SftpClient from 'ssh2-sftp-client';
import type { ClientErrorExtensions, SFTPWrapper, Stats } from 'ssh2';
import type { ConnectorContext } from '@airlock/connector-api';
import { AuthenticationError, ConflictError, HostKeyMismatchError, OperationalError, UnexpectedError, UserError, isAirlockError } from '@airlock/errors';
import { batchingSocket, batchWrites } from './batching-socket.ts';
import { connectThroughProxy, shownProxy, sftpProxyPolicy, type SftpProxyPolicy } from './http-tunnel.ts';
import { fingerprintOf, fingerprintsEqual } from './fingerprint.ts';
import { authorityOf, sftpSecrets, type SftpConnectionConfig, type SftpSecrets } from './schema.ts';

const { Client } = ssh2;
const { STATUS_CODE } = ssh2.utils.sftp;

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export { authorityOf };

/** Wraps a failure of a remote operation as retryable, keeping the cause; Airlock errors pass through. */
export function remoteError(action: string, path: string, authority: string, error: unknown): Error {
  if (isAirlockError(error)) return error;
  return new OperationalError(`${action} ${JSON.stringify(path)} on ${authority} failed: ${describeError(error)}`, {
    cause: error,
  });
}

async function readSecrets(ctx: ConnectorContext, ref: string): Promise<SftpSecrets> {
  const raw = await ctx.secret(ref);
  const parsed = sftpSecrets.safeParse(raw);
  // Neither the values nor zod's issues (which may echo them) go into the error.
  if (!parsed.success) {
    const message = `credential ${JSON.stringify(ref)} must hold either "password" or "privateKey" (with an optional "passphrase")`;
    throw new UserError(message, { safeReason: message });
  }
  if ('privateKey' in parsed.data) {
    const key = ssh2.utils.parseKey(parsed.data.privateKey, parsed.data.passphrase);
    if (key instanceof Error) {
      const message = `credential ${JSON.stringify(ref)}: the private key cannot be read (wrong format or passphrase)`;
      throw new UserError(message, { safeReason: message });
    }
  }
  return parsed.data;
}

/** What ssh2 learned from the server's SFTP VERSION packet and its `limits@openssh.com` reply. */
export interface SftpCapabilities {
  /** The largest READ the server answers in full. */
  readonly maxReadLength: number;
  /** The largest WRITE the server accepts. */
  readonly maxWriteLength: number;
  /** The server offers `fsync@openssh.com`. */
  readonly fsync: boolean;
}

function positiveNumber(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : fallback;
}

/** The spec's floor: every SFTP server must accept packets of 34000 bytes, so 32 KiB of data. */
const SAFE_IO_LENGTH = 32 * 1024;

/**
 * ssh2 keeps the negotiated limits and extensions in private fields; this reads them defensively,
 * falling back to the spec's minimum and no extensions if a future ssh2 renames them.
 */
export function capabilitiesOf(sftp: SFTPWrapper): SftpCapabilities {
  const extensions: unknown = Reflect.get(sftp, '_extensions');
  const offered = (name: string): boolean =>
    typeof extensions === 'object' && extensions !== null && Reflect.get(extensions, name) === '1';
  return {
    maxReadLength: positiveNumber(Reflect.get(sftp, '_maxReadLen'), SAFE_IO_LENGTH),
    maxWriteLength: positiveNumber(Reflect.get(sftp, '_maxWriteLen'), SAFE_IO_LENGTH),
    fsync: offered('fsync@openssh.com'),
  };
}

/** Whether an SFTP error is the server's SSH_FX_NO_SUCH_FILE. */
export function isNoSuchFile(error: unknown): boolean {
  return typeof error === 'object' && error !== null && Reflect.get(error, 'code') === STATUS_CODE.NO_SUCH_FILE;
}

/**
 * Whether the SFTP channel can still carry requests. ssh2 silently drops a request sent on a dead
 * channel and never calls it back, so every request is guarded by this check. When the connection
 * drops, ssh2 marks only the incoming side closed, so both sides are checked.
 */
export function channelIsOpen(sftp: SFTPWrapper): boolean {
  const state = (side: string): unknown => {
    const value: unknown = Reflect.get(sftp, side);
    return typeof value === 'object' && value !== null ? Reflect.get(value, 'state') : undefined;
  };
  return state('outgoing') === 'open' && state('incoming') === 'open';
}

/** Calls `listener` once when the channel ends or closes; returns a function that stops listening. */
export function onChannelGone(sftp: SFTPWrapper, listener: () => void): () => void {
  let fired = false;
  const once = (): void => {
    if (fired) return;
    fired = true;
    listener();
  };
  sftp.on('end', once);
  sftp.on('close', once);
  return () => {
    sftp.off('end', once);
    sftp.off('close', once);
  };
}

/** Sent on a dead channel, a request would never be answered, so it is refused up front. */
function refuseIfClosed(sftp: SFTPWrapper): Error | undefined {
  return channelIsOpen(sftp) ? undefined : new Error('the connection is closed');
}

/** One SFTP request as a promise. */
export function call<T>(
  sftp: SFTPWrapper,
  start: (callback: (error: Error | null | undefined, value: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const closed = refuseIfClosed(sftp);
    if (closed !== undefined) reject(closed);
    else start((error, value) => (error ? reject(error) : resolve(value)));
  });
}

/** One SFTP request that answers only with a status, as a promise. */
export function callVoid(sftp: SFTPWrapper, start: (callback: (error: Error | null | undefined) => void) => void): Promise<void> {
  return call<undefined>(sftp, (callback) => start((error) => callback(error, undefined)));
}

export const sftpStat = (sftp: SFTPWrapper, path: string): Promise<Stats> => call<Stats>(sftp, (cb) => sftp.lstat(path, cb));

/**
 * Refuses, with `ConflictError`, a name that already exists (as anything, symlinks included). Called
 * before a RENAME, and again after one fails, since most servers answer a RENAME onto an existing
 * name with a bare FAILURE.
 */
export async function refuseExisting(connection: SftpConnection, path: string, cause?: unknown): Promise<void> {
  try {
    await sftpStat(connection.sftp, path);
  } catch (error) {
    if (isNoSuchFile(error)) return;
    throw error;
  }
  throw new ConflictError(`${path} already exists on ${connection.authority}`, { cause });
}

export interface SftpConnection {
  readonly sftp: SFTPWrapper;
  readonly authority: string;
  readonly capabilities: SftpCapabilities;
  /** Ends the SSH connection and waits for it to close. Safe to call more than once. */
  end(): Promise<void>;
}

const END_TIMEOUT_MS = 5_000;

/**
 * The proxy the local policy names for this server: the policy entries that allowed the run are
 * the only place it may come from, so a job cannot send traffic through a proxy of its choosing.
 */
function proxyFromPolicy(ctx: ConnectorContext, config: SftpConnectionConfig): SftpProxyPolicy | undefined {
  for (const entry of ctx.policy ?? []) {
    if (typeof entry !== 'object' || entry === null) continue;
    if (Reflect.get(entry, 'host') !== config.host || Reflect.get(entry, 'port') !== config.port) continue;
    const parsed = sftpProxyPolicy.optional().safeParse(Reflect.get(entry, 'proxy'));
    if (parsed.success && parsed.data !== undefined) return parsed.data;
  }
  return undefined;
}
const KEEPALIVE_INTERVAL_MS = 15_000;

/**
 * Opens an SSH connection and its SFTP channel. The host key is checked against the pin during key
 * exchange, before any credential is sent; `ctx.signal` cancels the attempt.
 */
export async function connectSftp(ctx: ConnectorContext, config: SftpConnectionConfig): Promise<SftpConnection> {
  ctx.signal.throwIfAborted();
  const secrets = await readSecrets(ctx, config.credentialRef);
  const authority = authorityOf(config);
  // ssh2-sftp-client owns the connection's life cycle; the pipelined transfers use its SFTP channel.
  // Its default handlers print unexpected connection events to stdout; ours log them as metadata.
  const unexpected = (event: string) => () => ctx.logger.debug({ authority, event }, 'sftp connection event');
  const sftpClient = new SftpClient('airlock', { error: unexpected('error'), end: unexpected('end'), close: unexpected('close') });
  const client: unknown = Reflect.get(sftpClient, 'client');
  if (!(client instanceof Client)) throw new UnexpectedError('ssh2-sftp-client no longer exposes its ssh2 client');
  let offeredKey: string | undefined;
  // Sticky: once the server has refused the credential, a reset or close that follows (servers
  // often drop the connection right after the last USERAUTH_FAILURE) must not turn the refusal
  // into a retryable failure. ssh2 gives this level only to a refusal by the server, or to a key it
  // cannot sign with; a connection lost during authentication comes as 'client-socket' or no error.
  let credentialRefused = false;
  let closed = false;
  const whenClosed = new Promise<void>((resolve) => {
    client.once('close', () => {
      closed = true;
      ctx.logger.debug({ authority }, 'sftp connection closed');
      resolve();
    });
  });
  // A listener must stay for the connection's lifetime: an unhandled 'error' would crash the agent.
  client.on('error', (error: Error & ClientErrorExtensions) => {
    if (error.level === 'client-authentication') credentialRefused = true;
    // ssh2's messages carry no secrets, but they are still kept at debug level.
    ctx.logger.debug({ authority, level: error.level, error: describeError(error) }, 'sftp connection error');
  });
  // Pipelined requests are small packets sent back to back; Nagle would hold them for ACKs.
  client.once('ready', () => client.setNoDelay(true));
  const end = async (): Promise<void> => {
    if (!closed) void sftpClient.end().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, END_TIMEOUT_MS);
    });
    await Promise.race([whenClosed, timedOut]);
    clearTimeout(timer);
    if (!closed) client.destroy();
  };
  const abort = (): void => void end();
  ctx.signal.addEventListener('abort', abort, { once: true });
  const proxy = proxyFromPolicy(ctx, config);
  let sock;
  if (proxy === undefined) {
    // Connected here so ssh2 uses it as it is; ssh2 attaches its listeners within the same tick
    // (sftpClient.connect calls it synchronously), before the socket can report anything.
    sock = batchingSocket({ host: config.host, port: config.port });
  } else {
    const credential = proxy.credential === undefined ? undefined : await ctx.secret(proxy.credential);
    const tunnel = await connectThroughProxy({ proxy, host: config.host, port: config.port, credential, timeoutMs: config.connectTimeoutMs, signal: ctx.signal });
    // A tunnel that ends before ssh2 is listening must not throw an unhandled 'error'.
    tunnel.on('error', (error) => ctx.logger.debug({ authority, error: describeError(error) }, 'sftp proxy tunnel error'));
    ctx.logger.info({ authority, proxy: shownProxy(proxy.url) }, 'sftp tunnel opened through the proxy');
    sock = batchWrites(tunnel);
  }
  try {
    const sftp = await sftpClient.connect({
      sock,
      host: config.host,
      port: config.port,
      username: config.username,
      ...('password' in secrets ? { password: secrets.password } : { privateKey: secrets.privateKey, passphrase: secrets.passphrase }),
      readyTimeout: config.connectTimeoutMs,
      // A server that stops answering would otherwise leave requests waiting forever: after three
      // unanswered keepalives ssh2 drops the connection and fails every request in flight.
      keepaliveInterval: KEEPALIVE_INTERVAL_MS,
      keepaliveCountMax: 3,
      agentForward: false,
      tryKeyboard: false,
      // The pin is checked during key exchange, before any credential is sent; there is no
      // trust-on-first-use, so a new or changed key is refused until an admin updates the pin.
      hostVerifier: (key: Buffer): boolean => {
        const offered = fingerprintOf(key);
        if (fingerprintsEqual(offered, config.hostKey)) return true;
        offeredKey = offered;
        return false;
      },
    });
    ctx.logger.info({ authority, hostKey: config.hostKey }, 'sftp connected');
    return {
      sftp,
      authority,
      capabilities: capabilitiesOf(sftp),
      end,
    };
  } catch (error) {
    await end();
    if (offeredKey !== undefined) {
      throw new HostKeyMismatchError(`${authority} presented host key ${offeredKey}, not the pinned ${config.hostKey}`, {
        cause: error,
        safeReason: `host key mismatch for sftp://${authority}: presented ${offeredKey}, pinned ${config.hostKey}`,
      });
    }
    if (credentialRefused) {
      throw new AuthenticationError(`authentication as ${JSON.stringify(config.username)} to ${authority} failed`, {
        cause: error,
        safeReason: `authentication as ${JSON.stringify(config.username)} to sftp://${authority} failed`,
      });
    }
    if (ctx.signal.aborted) throw new OperationalError(`connecting to ${authority} was aborted`, { cause: ctx.signal.reason, safeReason: `connecting to sftp://${authority} was aborted` });
    // The reason carries the system code only: a server's banner or refusal text is not ours to pass on.
    const code: unknown = error instanceof Error ? Reflect.get(error, 'code') : undefined;
    throw new OperationalError(`could not connect to ${authority}: ${describeError(error)}`, {
      cause: error,
      safeReason: `could not connect to sftp://${authority}${typeof code === 'string' && /^[A-Z_]+$/.test(code) ? ` (${code})` : ''}`,
    });
  } finally {
    ctx.signal.removeEventListener('abort', abort);
  }
}
