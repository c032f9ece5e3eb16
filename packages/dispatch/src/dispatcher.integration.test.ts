import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '@airlock/testing';
import { connectPostgres, type Database, openPglite } from '@airlock/storage';
import { AGENT_KEY_CHANNEL, Dispatcher, notifyAgents, WAKE_CHANNEL } from './dispatcher.ts';

const AGENT = '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d';
const OTHER = '0b6e4c1d-2f3a-4b5c-8d9e-0f1a2b3c4d5e';
const NO_SWEEP_MS = 600_000;

describe.each([
  ['embedded PGlite', () => openPglite('memory://')],
  ['PostgreSQL', async () => connectPostgres(await createTestDatabase(inject('postgresUrl')), { maxConnections: 2 })],
] as const)('wake-ups through %s', (_name, open) => {
  let db: Database;
  let dispatcher: Dispatcher;

  beforeAll(async () => {
    db = await open();
    dispatcher = new Dispatcher({ db, sweepMs: NO_SWEEP_MS });
    await dispatcher.start();
  });

  afterAll(async () => {
    await dispatcher?.close();
    await db?.close();
  });

  it('wakes a waiting agent on commit, and only that agent', async () => {
    const waiter = dispatcher.waiter(AGENT);
    const bystander = dispatcher.waiter(OTHER);
    const woken = waiter.wait(Date.now() + 10_000);
    const idle = bystander.wait(Date.now() + 1_500);
    await db.transaction((tx) => notifyAgents(tx, WAKE_CHANNEL, [AGENT]));
    expect(await woken).toBe(true);
    expect(await idle).toBe(false);
    waiter.close();
    bystander.close();
  });

  it('sends nothing for a transaction that rolled back', async () => {
    const waiter = dispatcher.waiter(AGENT);
    const waited = waiter.wait(Date.now() + 1_500);
    await expect(
      db.transaction(async (tx) => {
        await notifyAgents(tx, WAKE_CHANNEL, [AGENT]);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(await waited).toBe(false);
    waiter.close();
  });

  it('keeps a wake-up that came before the wait began', async () => {
    const waiter = dispatcher.waiter(AGENT);
    await db.transaction((tx) => notifyAgents(tx, WAKE_CHANNEL, [AGENT]));
    await sleep(300);
    expect(waiter.woken).toBe(true);
    expect(await waiter.wait(Date.now() + 1_000)).toBe(true);
    waiter.close();
  });

  it('tells every listener of a changed agent key', async () => {
    const changed: string[] = [];
    const stop = dispatcher.onAgentKeyChanged((agentId) => changed.push(agentId));
    await db.transaction((tx) => notifyAgents(tx, AGENT_KEY_CHANNEL, [AGENT, AGENT, null]));
    for (let i = 0; i < 50 && changed.length === 0; i++) await sleep(50);
    stop();
    expect(changed).toEqual([AGENT]);
  });
});
