import { createServer, type IncomingMessage, type Server } from 'node:http';
import { describe, expect, it } from 'vitest';
import { forPerson } from '@airlock/errors';
import { generateKeyPair } from '@airlock/identity';
import { heartbeatInput, signedHeaders } from '@airlock/protocol';
import { createAgentClient, createEnrollmentClient, reportedHostname } from './control-channel.ts';

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

describe('the host name the agent reports', () => {
  it('[integrity #18] escapes a host name with control and bidi characters, so heartbeats are not refused for it', () => {
    const hostile = `db01\u001b]0;owned\u0007\n\u202Eevil${'x'.repeat(300)}`;
    const reported = reportedHostname(hostile);
    expect(heartbeatInput.safeParse({ version: '0.1.0', hostname: reported }).success).toBe(true);
    expect([...reported].some((char) => char.charCodeAt(0) < 0x20 || char === '\u202E')).toBe(false);
    expect(reported.startsWith('db01')).toBe(true);
    expect(reportedHostname('plain-host')).toBe('plain-host');
  });
});

describe('signed requests and redirects', () => {
  it('never follows a redirect: a signed request or an enrollment token reaches only the configured URL, and the refusal says why', async () => {
    const elsewhere: IncomingMessage[] = [];
    const other = createServer((req, res) => {
      elsewhere.push(req);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"result":{"data":{"ok":true}}}');
    });
    const asked: Array<string | undefined> = [];
    const redirecting = createServer((req, res) => {
      asked.push(req.headers[signedHeaders.signature]?.toString());
      req.resume();
      res.writeHead(307, { location: `${otherUrl}${req.url ?? '/'}` }).end();
    });
    const otherUrl = await listen(other);
    const url = await listen(redirecting);
    try {
      const client = createAgentClient(url, '0b9c3f1e-6a59-4a8e-9d1e-3c6f7f2b8a10', generateKeyPair());
      const error: unknown = await client.agent.heartbeat.mutate({ version: '0.1.0', hostname: 'h' }).catch((caught: unknown) => caught);
      const shown = forPerson(error);
      expect(shown.code).toBe('network-redirect');
      expect(shown.message).toBe(`cannot reach ${url}/trpc/agent.heartbeat: it answered with a redirect, which is never followed (configure the address the redirect names)`);
      // Enrollment's one-time token is a credential too.
      const enrolling: unknown = await createEnrollmentClient(url)
        .enrollment.enroll.mutate({ token: 'a'.repeat(43), publicKey: 'k', hostname: 'h', version: '0.1.0' })
        .catch((caught: unknown) => caught);
      expect(forPerson(enrolling).code).toBe('network-redirect');
      // Each reached the configured URL once (the heartbeat signed, the enrollment not), and nothing went elsewhere.
      expect(asked).toHaveLength(2);
      expect(asked[0]).toMatch(/^[A-Za-z0-9+/]{86}==$/);
      expect(asked[1]).toBeUndefined();
      expect(elsewhere).toEqual([]);
    } finally {
      await Promise.all([other, redirecting].map((server) => new Promise((resolve) => server.close(resolve))));
    }
  });
});
