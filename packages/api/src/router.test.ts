import { describe, expect, it } from 'vitest';
import { permissions } from '@airlock/auth';
import { appRouter } from './router.ts';

function permissionOf(procedure: unknown): string {
  if ((typeof procedure !== 'function' && typeof procedure !== 'object') || procedure === null || !('_def' in procedure)) return '';
  const def = procedure._def;
  if (typeof def !== 'object' || def === null || !('meta' in def) || typeof def.meta !== 'object' || def.meta === null) return '';
  return 'permission' in def.meta && typeof def.meta.permission === 'string' ? def.meta.permission : '';
}

describe('the router', () => {
  // At run time `_def.procedures` is flat, keyed by the full path.
  const procedures = Object.entries(appRouter._def.procedures as Record<string, unknown>).map(([path, procedure]) => ({
    path,
    permission: permissionOf(procedure),
  }));

  it('declares a permission on every procedure', () => {
    expect(procedures.length).toBeGreaterThan(10);
    const allowed = new Set<string>([...permissions, 'agent', 'public']);
    const undeclared = procedures.filter((p) => !allowed.has(p.permission)).map((p) => p.path);
    expect(undeclared).toEqual([]);
  });

  it('leaves only enrollment, console login and its later steps, the login page\'s providers, the public signing key and its rotations public, and the agent channel to signed agents', () => {
    const by = (permission: string) => procedures.filter((p) => p.permission === permission).map((p) => p.path).sort();
    expect(by('public')).toEqual([
      'controlPlane.identity',
      'custody.rotations',
      'enrollment.enroll',
      'session.beginEnrollment',
      'session.beginPasskey',
      'session.changePasswordToContinue',
      'session.confirmEnrollment',
      'session.login',
      'session.logout',
      'session.me',
      'session.verifyPasskey',
      'session.verifySecondFactor',
      'sso.loginProviders',
    ]);
    expect(by('agent')).toEqual([
      'agent.heartbeat',
      'agent.nextJob',
      'agent.progress',
      'agent.releaseChunk',
      'agent.reportRun',
      'agent.reportUpdate',
      'agent.rotateKey',
      'agent.wakeups',
      'custody.auditSegment',
      'custody.checkpoint',
      'custody.reportSecurityEvent',
    ]);
  });
});
