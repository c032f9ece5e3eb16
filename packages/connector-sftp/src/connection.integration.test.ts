/**
 * How `connectSftp` classifies a failed connection: only a server that rejects the credential is
 * an AuthenticationError (permanent, never retried); a server that goes away or is not yet
 * accepting, before or during authentication, is a retryable OperationalError.
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { AuthContext } from 'ssh2';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthenticationError, OperationalError } from '@airlock/errors';
import { freePort, generateSshKeyPair, sshKeygenFingerprint } from '@airlock/testing';
import { connectSftp } from './connection.ts';
import { mockContext } from './test-context.ts';

const { Server } = ssh2;

/** What the server does when the client offers its password. */
type OnPassword = 'reject' | 'reject-then-reset' | 'reset';

interface Listener {
  readonly port: number;
  readonly hostKey: string;
  close(): Promise<void>;
}

const open: Listener[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((listener) => listener.close()));
});

async function listen(server: NetServer, sockets: Set<Socket>, hostKey: string): Promise<Listener> {
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no listening port');
  const listener: Listener = {
    port: address.port,
    hostKey,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  open.push(listener);
  return listener;
}

/**
 * An SSH server on ssh2 that completes key exchange, refuses `none`, and then treats the password as
 * told. "reset" destroys the TCP connection without an answer, as a server killed mid-authentication would.
 */
async function sshServer(onPassword: OnPassword): Promise<Listener> {
  const keys = generateSshKeyPair();
  const ssh = new Server({ hostKeys: [keys.private] }, (client) => {
    client.on('error', () => undefined);
  });
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    ssh.injectSocket(socket);
    ssh.once('connection', (client) => {
      client.on('authentication', (auth: AuthContext) => {
        if (auth.method !== 'password') {
          auth.reject(['password']);
          return;
        }
        if (onPassword === 'reset') {
          socket.destroy();
          return;
        }
        auth.reject([]);
        if (onPassword === 'reject-then-reset') setImmediate(() => socket.resetAndDestroy());
      });
    });
  });
  return listen(server, sockets, await sshKeygenFingerprint(keys.public));
}

/** A listener that accepts and at once drops every connection: a server starting up or shutting down. */
async function droppingListener(): Promise<Listener> {
  const sockets = new Set<Socket>();
  return listen(createServer((socket) => socket.destroy()), sockets, await sshKeygenFingerprint(generateSshKeyPair().public));
}

function connect(port: number, hostKey: string): Promise<unknown> {
  const config = { host: '127.0.0.1', port, hostKey, username: 'airlock', credentialRef: 'test', connectTimeoutMs: 5_000 };
  return connectSftp(mockContext({ password: 'pw' }), config);
}

describe('connectSftp error classes', () => {
  it('maps a credential the server rejects to AuthenticationError, which is not retried', async () => {
    const server = await sshServer('reject');
    const failure = await connect(server.port, server.hostKey).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(AuthenticationError);
    expect(failure).toMatchObject({ retryable: false });
  });

  it('keeps AuthenticationError when the server drops the connection right after rejecting', async () => {
    const server = await sshServer('reject-then-reset');
    for (let attempt = 0; attempt < 5; attempt++) {
      await expect(connect(server.port, server.hostKey)).rejects.toThrow(AuthenticationError);
    }
  });

  it('maps a server that goes away during authentication to a retryable OperationalError', async () => {
    const server = await sshServer('reset');
    const failure = await connect(server.port, server.hostKey).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OperationalError);
    expect(failure).not.toBeInstanceOf(AuthenticationError);
    expect(failure).toMatchObject({ retryable: true });
  });

  it('maps a server that drops the connection before the handshake to a retryable OperationalError', async () => {
    const server = await droppingListener();
    await expect(connect(server.port, server.hostKey)).rejects.toMatchObject({ name: 'OperationalError', retryable: true });
  });

  it('maps a refused connection to a retryable OperationalError', async () => {
    await expect(connect(await freePort(), `SHA256:${'A'.repeat(43)}`)).rejects.toMatchObject({ name: 'OperationalError', retryable: true });
  });
});
