import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapTenant } from '@airlock/api';
import { loadServerConfig } from './config.ts';
import { startServer } from './server.ts';
import { airlock } from './testing/cli.ts';

/** Anything that could act on a terminal: C0 but newline, DEL, C1, and the bidi controls. */
// eslint-disable-next-line no-control-regex
const TERMINAL_ACTIVE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/u;

// Text stored before the schemas refused it (or written by a hostile database neighbour): the
// printer must still show it as inert text.
const hostileHostname = 'host-x\n6f1f1a52-0000-4000-8000-000000000000  trusted-host  online  last seen never\u001b]0;owned\u0007\u009b2J';
const hostileReason = 'refused\u001b[2K\r\u202etxt.exe\u2028next';

describe('airlock CLI output', () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'airlock-output-'));
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('[integrity #18] agent list and security-events print agent-chosen text escaped, one row per record, and JSON stays exact JSON', async () => {
    const server = await startServer(loadServerConfig({ AIRLOCK_PORT: '0', AIRLOCK_DATA_DIR: path.join(work, 'db'), AIRLOCK_LOG_LEVEL: 'silent' }));
    try {
      const { tenantId, key } = await bootstrapTenant(server.db, { tenant: 'acme', keyName: 'cli', expiresInDays: 1 });
      const [agent] = await server.db.query<{ id: string }>(
        "INSERT INTO agents (tenant_id, public_key, hostname, version) VALUES ($1, 'cli-output-key', $2, '1') RETURNING id",
        [tenantId, hostileHostname],
      );
      const agentId = agent?.id ?? '';
      await server.db.query(
        "INSERT INTO agent_security_events (id, tenant_id, agent_id, kind, at, reason) VALUES ($1, $2, $3, 'policy-violation', now(), $4)",
        [randomUUID(), tenantId, agentId, hostileReason],
      );
      const env = { AIRLOCK_URL: server.url, AIRLOCK_API_KEY: key };

      const agents = await airlock(['agent', 'list'], env);
      expect(agents.code).toBe(0);
      expect(agents.stdout).not.toMatch(TERMINAL_ACTIVE);
      expect(agents.stdout.trimEnd().split('\n')).toEqual([expect.stringContaining(`${agentId}  host-x\\x0a6f1f1a52`)]);
      expect(agents.stdout).toContain('\\x1b]0;owned\\x07\\x9b2J');

      const events = await airlock(['security-events'], env);
      expect(events.code).toBe(0);
      expect(events.stdout).not.toMatch(TERMINAL_ACTIVE);
      expect(events.stdout.trimEnd().split('\n')).toHaveLength(1);
      expect(events.stdout).toContain('refused\\x1b[2K\\x0d\\u202etxt.exe\\u2028next');

      for (const [args, field, stored] of [
        [['agent', 'list', '--json'], 'hostname', hostileHostname],
        [['security-events', '--json'], 'reason', hostileReason],
      ] as const) {
        const json = await airlock([...args], env);
        expect(json.code).toBe(0);
        expect(json.stdout).not.toMatch(TERMINAL_ACTIVE);
        const rows: unknown = JSON.parse(json.stdout);
        expect(rows).toEqual([expect.objectContaining({ [field]: stored })]);
      }
    } finally {
      await server.close();
    }
  });
});
