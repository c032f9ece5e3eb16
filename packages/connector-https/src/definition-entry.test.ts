import { expect, it, vi } from 'vitest';

// The control plane imports `./definition`; sockets and TLS are the runtime's alone.
vi.mock('node:https', () => {
  throw new Error('node:https was loaded');
});
vi.mock('node:tls', () => {
  throw new Error('node:tls was loaded');
});

it('the definition entry point loads no network module', async () => {
  const { httpsSourceDefinition } = await import('./definition.ts');
  expect(httpsSourceDefinition.id).toBe('https');
});
