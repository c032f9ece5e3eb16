import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type DestinationRuntime, type DestinationSession, defineDestination } from './contract.ts';
import { destinationDefinition, type LocalPolicySection } from './definition.ts';
import { mockContext } from './testkit.ts';

const policy: LocalPolicySection<{ paths: string[] }> = {
  entry: z.strictObject({ paths: z.array(z.string()).min(1) }),
  grant: (entry, claim) => (claim.scheme === 'file' ? { paths: entry.paths } : undefined),
};

const definition = destinationDefinition<{ directory: string }, { paths: string[] }>({
  id: 'lazy',
  version: 1,
  title: 'A destination whose runtime loads on first connect',
  config: z.strictObject({ directory: z.string() }),
  claims: (config) => [{ action: 'write', scheme: 'file', path: config.directory }],
  scheme: { name: 'file', form: 'path' },
  policy,
});

const session: DestinationSession = {
  begin: () => Promise.reject(new Error('not used')),
  close: () => Promise.resolve(),
};

describe('a runtime loaded on first connect', () => {
  it('is not loaded by defining or binding the connector, and is loaded once for every connect after', async () => {
    const seen: { directory: string; policy: readonly { paths: string[] }[] }[] = [];
    const runtime: DestinationRuntime<{ directory: string }, { paths: string[] }> = {
      connect(_ctx, config, entries) {
        seen.push({ directory: config.directory, policy: entries });
        return Promise.resolve(session);
      },
    };
    let loads = 0;
    const connector = defineDestination(definition, () => {
      loads += 1;
      return Promise.resolve(runtime);
    });
    const bound = connector.bind({ directory: '/out' });
    expect(bound.claims()).toEqual([{ action: 'write', scheme: 'file', path: '/out' }]);
    expect(loads).toBe(0);

    const ctx = mockContext({ policy: [{ paths: ['/out'] }] });
    await expect(Promise.all([bound.connect(ctx), bound.connect(ctx)])).resolves.toEqual([session, session]);
    await bound.connect(ctx);
    expect(loads).toBe(1);
    // The loaded runtime gets what an eager one gets: the parsed config and the policy entries.
    expect(seen).toEqual(Array.from({ length: 3 }, () => ({ directory: '/out', policy: [{ paths: ['/out'] }] })));
  });

  it('fails the connect when the load fails, and tries again on the next', async () => {
    let loads = 0;
    const connector = defineDestination(definition, () => {
      loads += 1;
      if (loads === 1) return Promise.reject(new Error('Cannot find package @example/sdk'));
      return Promise.resolve({ connect: () => Promise.resolve(session) });
    });
    const bound = connector.bind({ directory: '/out' });
    await expect(bound.connect(mockContext())).rejects.toThrow('Cannot find package @example/sdk');
    await expect(bound.connect(mockContext())).resolves.toBe(session);
    expect(loads).toBe(2);
  });
});
