/**
 * The agent behind a corporate proxy: a real squid with Basic authentication and an ACL that lets
 * through only the control plane's port and the SFTP server's. The agent runs as its own uid, and
 * firewall rules refuse that uid any direct connection to either, so enrollment and a run (the
 * control channel, and the SFTP source its local policy routes through the proxy) can only succeed
 * through the proxy; squid's access log shows each tunnel. A wrong proxy password is told
 * as such, without the password.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, startSquid, type TestSquid } from '@airlock/testing';
import { runCommand } from '../src/processes.ts';
import { type AirlockSystem, startSystem } from '../src/system.ts';
import { object, string } from '../src/json.ts';

/** A uid no account uses: the firewall rule below applies to it alone. */
const AGENT_USER = { uid: 64_917, gid: 64_917 };
const PROXY_USER = 'airlock-agent';
const PROXY_CREDENTIAL_REF = 'corporate-proxy';

function firewall(action: '-I' | '-D', port: number): Promise<unknown> {
  const rule = ['OUTPUT', '-o', 'lo', '-p', 'tcp', '--dport', String(port), '-m', 'owner', '--uid-owner', String(AGENT_USER.uid), '-j', 'REJECT', '--reject-with', 'tcp-reset'];
  return runCommand('iptables', ['-w', '5', action, ...rule], { env: process.env, timeoutMs: 10_000 }).then((result) => {
    if (result.code !== 0) throw new Error(`iptables ${action} failed: ${result.stderr.trim()}`);
  });
}

/** What a plain fetch from `user` to the control plane gets: the HTTP status, or the error code. */
async function directAttempt(url: string, user?: { uid: number; gid: number }): Promise<string> {
  const script = `fetch(process.argv[1]).then((r) => console.log(String(r.status)), (e) => console.log(String(e.cause?.code ?? e.message)))`;
  const result = await runCommand(process.execPath, ['-e', script, `${url}/healthz`], { env: { PATH: process.env['PATH'] ?? '' }, timeoutMs: 15_000, user });
  return result.stdout.trim();
}

describe('egress through a proxy [operations:proxy]', () => {
  let system: AirlockSystem;
  let squid: TestSquid;
  let port = 0;
  let sftpPort = 0;
  const rules: number[] = [];
  const password = randomBytes(18).toString('base64url');

  beforeAll(async () => {
    system = await startSystem({
      databaseUrl: await createTestDatabase(inject('postgresUrl')),
      files: { 'through-proxy.csv': 'id,amount\n1,10\n2,20\n' },
      enrollAgent: false,
      agentUser: AGENT_USER,
    });
    port = Number(new URL(system.controlPlaneUrl).port);
    sftpPort = system.sftp?.port ?? 0;
    squid = await startSquid({ allowPorts: [port, sftpPort], username: PROXY_USER, password });
    for (const blocked of [port, sftpPort]) {
      await firewall('-I', blocked);
      rules.push(blocked);
    }
    await system.editAgentFiles({
      secrets: { [PROXY_CREDENTIAL_REF]: { username: PROXY_USER, password } },
      policy: (policy) => {
        const sources = policy['sources'] as { sftp: Array<Record<string, unknown>> };
        for (const entry of sources.sftp) entry['proxy'] = { url: squid.url, credential: PROXY_CREDENTIAL_REF };
      },
    });
  });

  afterAll(async () => {
    for (const blocked of rules) await firewall('-D', blocked);
    await squid?.stop();
    await system?.stop();
  });

  it('blocks the agent user from the control plane directly, and only that user', async () => {
    expect(await directAttempt(system.controlPlaneUrl, AGENT_USER)).toBe('ECONNREFUSED');
    expect(await directAttempt(system.controlPlaneUrl)).toBe('200');
    // The SFTP port too: any answer but a refused connection would mean a direct route.
    expect(await directAttempt(`http://127.0.0.1:${sftpPort}`, AGENT_USER)).toBe('ECONNREFUSED');
  });

  it('enrolls and runs a job through the proxy; squid logs every tunnel, authenticated', async () => {
    const created = object(await system.airlockJson(['token', 'create']), 'airlock token create');
    const token = string(created, 'token', 'token');
    const controlPlaneKey = string(created, 'controlPlaneKey', 'token');
    await system.enrollWithCommand([
      'airlock-agent',
      'enroll',
      '--url',
      system.controlPlaneUrl,
      '--token',
      token,
      '--control-plane-key',
      controlPlaneKey,
      '--proxy',
      squid.url,
      '--proxy-credential',
      PROXY_CREDENTIAL_REF,
    ]);
    const afterEnroll = await squid.accessLog();
    expect(afterEnroll).toMatch(new RegExp(`TCP_TUNNEL/200 \\d+ CONNECT 127\\.0\\.0\\.1:${port} ${PROXY_USER} `));

    const status = await system.agentCommand(['status', '--dir', system.agentDir, '--json']);
    const shown = object(JSON.parse(status.stdout), 'status');
    expect(shown['reachable']).toBe(true);
    expect(shown['proxyInUse']).toBe(squid.url);
    expect(status.stdout).not.toContain(password);

    const integration = await system.createIntegration({ name: 'through-proxy' });
    const runId = await system.runNow(integration.id);
    const agent = await system.runAgentOnce();
    expect(agent.code).toBe(0);
    expect(agent.report?.status).toBe('succeeded');
    expect((await system.waitForRun(runId)).status).toBe('succeeded');
    const [delivered] = await system.decryptDelivered();
    expect(delivered?.sha256).toBe(system.sources[0]?.sha256);

    const log = await squid.accessLog();
    const tunnels = log.split('\n').filter((line) => line.includes(`CONNECT 127.0.0.1:${port} ${PROXY_USER} `));
    expect(tunnels.length).toBeGreaterThan(afterEnroll.split('\n').filter((line) => line.includes(`CONNECT 127.0.0.1:${port}`)).length);
    expect(log).toMatch(new RegExp(`TCP_TUNNEL/200 \\d+ CONNECT 127\\.0\\.0\\.1:${sftpPort} ${PROXY_USER} `));
    expect(log).not.toContain(password);
  });

  it('says a wrong proxy password is one, and never shows it', async () => {
    const wrong = `${password}-wrong`;
    await system.editAgentFiles({ secrets: { [PROXY_CREDENTIAL_REF]: { username: PROXY_USER, password: wrong } } });
    try {
      const status = await system.agentCommand(['status', '--dir', system.agentDir, '--json'], { allowFailure: true });
      expect(status.code).toBe(1);
      const shown = object(JSON.parse(status.stdout), 'status');
      expect(shown['reachable']).toBe(false);
      expect(String(shown['problem'])).toMatch(/^cannot reach http:\/\/127\.0\.0\.1:\d+\/trpc\/agent\.heartbeat: the proxy refused the credential \(407 Proxy Authentication Required\)/);
      expect(status.stdout + status.stderr).not.toContain(wrong);
      expect(await squid.accessLog()).toMatch(new RegExp(`TCP_DENIED/407 \\d+ CONNECT 127\\.0\\.0\\.1:${port} `));
    } finally {
      await system.editAgentFiles({ secrets: { [PROXY_CREDENTIAL_REF]: { username: PROXY_USER, password } } });
    }
  });
});
