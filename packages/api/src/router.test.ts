import { describe, expect, it } from 'vitest';
import { permissions } from './auth/permissions.ts';
import { appRouter } from './router.ts';

describe('the router', () => {
  const procedures = Object.entries(appRouter._def.procedures as Record<string, { _def: { meta?: { permission?: string } } }>);

  it('declares a permission on every procedure', () => {
    expect(procedures.length).toBeGreaterThan(10);
    const allowed = new Set<string>([...permissions, 'agent', 'public']);
    const undeclared = procedures.filter(([, procedure]) => !allowed.has(procedure._def.meta?.permission ?? '')).map(([path]) => path);
    expect(undeclared).toEqual([]);
  });

  it('leaves only enrollment public and the agent channel to signed agents', () => {
    const by = (permission: string) => procedures.filter(([, p]) => p._def.meta?.permission === permission).map(([path]) => path).sort();
    expect(by('public')).toEqual(['enrollment.enroll']);
    expect(by('agent')).toEqual(['agent.heartbeat', 'agent.nextJob', 'agent.reportRun']);
  });
});
