import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Database, Queryable } from '@airlock/storage';
import { type RequestLogEntry, RequestLogWriter } from './request-log.ts';

const entry = (callerType: RequestLogEntry['callerType'], procedure: string, status: number, outcome = status < 400 ? 'OK' : 'UNAUTHORIZED'): RequestLogEntry => ({
  at: new Date(),
  tenantId: randomUUID(),
  callerType,
  callerId: randomUUID(),
  procedure,
  method: 'POST',
  status,
  outcome,
  latencyMs: 1,
  sourceIp: '127.0.0.1',
  userAgent: null,
  requestId: randomUUID(),
});

describe('the request log writer', () => {
  it("leaves out an agent's successful heartbeats, long-polls and wake-up streams, and keeps every other call and every failure", async () => {
    const written: string[] = [];
    const system: Queryable = {
      query: async <Row,>(_text: unknown, params?: readonly unknown[]) => {
        const [callers, procedures, statuses] = [params?.[2], params?.[4], params?.[6]] as [string[], string[], number[]];
        procedures.forEach((procedure, i) => written.push(`${callers[i]} ${procedure} ${statuses[i]}`));
        return [] as Row[];
      },
    };
    const writer = new RequestLogWriter({ forSystem: () => system } as unknown as Database, { warn: () => undefined }, { flushMs: 60_000 });
    writer.record(entry('agent', 'agent.heartbeat', 200));
    writer.record(entry('agent', 'agent.nextJob', 200));
    writer.record(entry('agent', 'agent.heartbeat,agent.nextJob', 200));
    writer.record(entry('agent', 'agent.nextJob', 401));
    writer.record(entry('agent', 'agent.heartbeat,agent.reportRun', 200));
    writer.record(entry('agent', 'agent.reportRun', 200));
    writer.record(entry('api-key', 'agent.nextJob', 200));
    writer.record(entry('agent', 'agent.wakeups', 200));
    // A stream refused inside its events went out as 200: its outcome says it failed.
    writer.record(entry('agent', 'agent.wakeups', 200, 'UNAUTHORIZED'));
    await writer.close();
    expect(written).toEqual(['agent agent.nextJob 401', 'agent agent.heartbeat,agent.reportRun 200', 'agent agent.reportRun 200', 'api-key agent.nextJob 200', 'agent agent.wakeups 200']);
    expect(writer.stats()).toEqual({ queued: 0, written: 5, dropped: 0 });
  });
});
