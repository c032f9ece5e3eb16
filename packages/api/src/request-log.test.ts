import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Database, Queryable } from '@airlock/storage';
import { type RequestLogEntry, RequestLogWriter } from './request-log.ts';

const entry = (callerType: RequestLogEntry['callerType'], procedure: string, status: number): RequestLogEntry => ({
  at: new Date(),
  tenantId: randomUUID(),
  callerType,
  callerId: randomUUID(),
  procedure,
  method: 'POST',
  status,
  outcome: status < 400 ? 'OK' : 'UNAUTHORIZED',
  latencyMs: 1,
  sourceIp: '127.0.0.1',
  userAgent: null,
  requestId: randomUUID(),
});

describe('the request log writer', () => {
  it("leaves out an agent's successful heartbeats and long-polls, and keeps every other call and every failure", async () => {
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
    await writer.close();
    expect(written).toEqual(['agent agent.nextJob 401', 'agent agent.heartbeat,agent.reportRun 200', 'agent agent.reportRun 200', 'api-key agent.nextJob 200']);
    expect(writer.stats()).toEqual({ queued: 0, written: 4, dropped: 0 });
  });
});
