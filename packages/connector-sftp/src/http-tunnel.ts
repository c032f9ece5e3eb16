/**
 * A TCP connection to an SFTP server through an HTTP proxy: `CONNECT host:port`, with Basic
 * authentication when the local policy names a credential. The SSH session then runs inside the
 * tunnel, end to end: the proxy sees only ciphertext, and the host key is checked as on a direct
 * connection. Which proxy, if any, comes from the local policy entry for the server, never the job.
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { z } from 'zod';
import { AuthenticationError, NotAllowedError, OperationalError, UserError } from '@airlock/errors';

/** The proxy for a server, in its local-policy entry; the credential is a secrets.yaml reference. */
export const sftpProxyPolicy = z.strictObject({
  url: z.url().refine((url) => {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' && parsed.username === '' && parsed.password === '';
  }, 'an http:// proxy URL without a user or password (the credential goes in secrets.yaml)'),
  /** The secrets.yaml entry with the proxy's `username` and `password`. */
  credential: z.string().min(1).optional(),
});
export type SftpProxyPolicy = z.output<typeof sftpProxyPolicy>;

/** A proxy's Basic credential in secrets.yaml. */
export const proxyCredential = z.strictObject({ username: z.string().min(1), password: z.string() });

/** The proxy as it may be shown: scheme, host and port. */
export const shownProxy = (url: string): string => {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}`;
};

/**
 * Opens the tunnel and resolves with its socket once the proxy answered 200. A 407 is an
 * authentication failure (the credential is wrong: retrying will not help), a 403 or other refusal
 * is the proxy's policy, and a proxy that cannot be reached is transient.
 */
export function connectThroughProxy(options: {
  proxy: SftpProxyPolicy;
  host: string;
  port: number;
  credential: Readonly<Record<string, string>> | undefined;
  timeoutMs: number;
  signal: AbortSignal;
}): Promise<Socket> {
  const { proxy, host, port } = options;
  const shown = shownProxy(proxy.url);
  const target = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const headers: Record<string, string> = { host: target };
  if (options.credential !== undefined) {
    const parsed = proxyCredential.safeParse(options.credential);
    if (!parsed.success) throw new UserError(`proxy credential ${JSON.stringify(proxy.credential ?? '')}: expected username and password`);
    headers['proxy-authorization'] = `Basic ${Buffer.from(`${parsed.data.username}:${parsed.data.password}`, 'utf8').toString('base64')}`;
  }
  const parsedProxy = new URL(proxy.url);
  return new Promise<Socket>((resolve, reject) => {
    const req = request({
      host: parsedProxy.hostname.replace(/^\[|\]$/g, ''),
      port: Number(parsedProxy.port || 80),
      method: 'CONNECT',
      path: target,
      headers,
      timeout: options.timeoutMs,
      signal: options.signal,
      agent: false,
    });
    req.once('connect', (response, socket, head) => {
      if (response.statusCode === 200) {
        // Bytes the proxy sent past its answer belong to the SSH stream.
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
        return;
      }
      socket.destroy();
      const status = response.statusCode ?? 0;
      if (status === 407) reject(new AuthenticationError(`proxy ${shown} refused the credential for ${target} (407 Proxy Authentication Required)`, { safeReason: `proxy ${shown} refused the credential (407)` }));
      else reject(new NotAllowedError(`proxy ${shown} refused the tunnel to ${target} (${status})`, { safeReason: `proxy ${shown} refused the tunnel to ${target} (${status})` }));
    });
    req.once('response', (response) => {
      response.resume();
      reject(new OperationalError(`proxy ${shown} answered CONNECT with ${String(response.statusCode)}`, { safeReason: `proxy ${shown} answered CONNECT with ${String(response.statusCode)}` }));
    });
    req.once('timeout', () => req.destroy(new OperationalError(`proxy ${shown} did not open a tunnel to ${target} in time`, { safeReason: `proxy ${shown} timed out` })));
    req.once('error', (error) => reject(error instanceof OperationalError ? error : new OperationalError(`proxy ${shown} cannot be reached: ${error.message}`, { cause: error, safeReason: `proxy ${shown} cannot be reached` })));
    req.end();
  });
}
