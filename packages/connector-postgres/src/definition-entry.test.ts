import { expect, it, vi } from 'vitest';

// The control plane imports `./definition`; the driver is the runtime's alone.
vi.mock('pg', () => {
  throw new Error('pg was loaded');
});
vi.mock('pg-copy-streams', () => {
  throw new Error('pg-copy-streams was loaded');
});

it('the definition entry point loads no database driver', async () => {
  const { postgresSourceDefinition } = await import('./definition.ts');
  expect(postgresSourceDefinition.id).toBe('postgres');
});
