import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { securityEventInput } from '@airlock/protocol';
import { type SecurityEvent, SecurityLog } from './security-log.ts';

/** What a tRPC client throws for an answer of this class and HTTP status. */
function refusal(errorClass: string, httpStatus: number): Error {
  return Object.assign(new Error(`refused with ${httpStatus}`), { data: { errorClass, httpStatus } });
}

describe('security log', () => {
  let dir: string;
  let log: SecurityLog;
  let warnings: Array<Record<string, unknown>>;
  const warn = (fields: Record<string, unknown>) => void warnings.push(fields);

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'airlock-security-log-'));
    log = new SecurityLog(dir);
    warnings = [];
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('[integrity #19] drops an event the control plane refuses as bad input, with a local warning, and sends the ones behind it', async () => {
    const first = await log.record('policy-violation', 'first');
    const second = await log.record('policy-violation', 'second');
    const sent: string[] = [];
    const send = async (event: SecurityEvent) => {
      if (event.id === first.id) throw refusal('user', 400);
      sent.push(event.id);
    };
    expect(await log.flush(send, warn)).toBe(2);
    expect(sent).toEqual([second.id]);
    expect(warnings).toEqual([expect.objectContaining({ eventId: first.id, errorClass: 'user' })]);
    expect(await log.flush(send, warn)).toBe(0);
  });

  it('[integrity #19] keeps an event behind a transient failure and sends it once the control plane answers', async () => {
    const event = await log.record('policy-violation', 'kept');
    let failing: Error | null = refusal('operational', 503);
    const sent: string[] = [];
    const send = async (next: SecurityEvent) => {
      if (failing) throw failing;
      sent.push(next.id);
    };
    await expect(log.flush(send, warn)).rejects.toThrow(/503/);
    failing = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    await expect(log.flush(send, warn)).rejects.toThrow(/ECONNREFUSED/);
    failing = null;
    expect(await log.flush(send, warn)).toBe(1);
    expect(sent).toEqual([event.id]);
    expect(warnings).toEqual([]);
  });

  it('[integrity #19] records a reason the control plane accepts: unprintable characters escaped, cut by code point', async () => {
    const hostile = await log.record('envelope-bad-signature', 'bad\u001b]0;pwned\u0007\nnext line');
    expect(securityEventInput.safeParse(hostile).success).toBe(true);
    expect(hostile.reason).toBe('bad\\x1b]0;pwned\\x07\\x0anext line');
    const long = await log.record('policy-violation', '😀'.repeat(600));
    expect(long.reason).toBe('😀'.repeat(500));
    expect(securityEventInput.safeParse(long).success).toBe(true);
  });

  it('[integrity #19] still reads and reports an event written raw by an older agent, escaped', async () => {
    const old = { id: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d', kind: 'policy-violation', at: '2026-01-01T00:00:00.000Z', reason: 'old\u202ereason' };
    await appendFile(log.file, `${JSON.stringify(old)}\n`);
    const next = await log.record('policy-violation', 'new');
    const sent: SecurityEvent[] = [];
    expect(await log.flush(async (event) => void sent.push(event), warn)).toBe(2);
    expect(sent.map((event) => [event.id, event.reason])).toEqual([[old.id, 'old\\u202ereason'], [next.id, 'new']]);
  });
});
